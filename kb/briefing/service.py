"""`PackService` (`kb.packs`): draft, open, edit, version and export topics' briefing packs.

Every change saves a new version — a full snapshot, so any version can be opened and
exported again — and its audit entry, in one write transaction that first reads the
latest version. Two editors at once therefore both get their change in, one after the
other. An edit made on what the editor saw passes `expected_version`; when someone
else has saved a version since, the edit is refused with `StaleEdit` and nothing changes.

A redraft replaces only the automatically chosen items: items added by hand, marked key,
given an editor's note or moved keep their places (`draft(keep_manual=True)`, the default).

Expert notes reach an export only once staff accepted them (采纳入汇编): under the item whose
passage they are about, or — for notes on the topic's documents whose passage is in no item —
in a part of their own (其他论证意见). `outside_notes` lists those for staff to pull in
(`add_note_passage`).

The service gets its collaborators (the database, the user, the topic and note services,
the search and document lookup) from `KnowledgeBase`; it never holds the knowledge base.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import InvalidPackEdit, PackNotFound, StaleEdit
from ..search import Hit
from ..storage import audit
from ..storage import packs as pack_rows
from ..topics import Topic
from .drafting import (DEFAULT_PER_SECTION, PER_DOCUMENT, DocumentLookup, Relevance, Search, draft_sections,
                       hit_for_span, item_from_hit, passage_span)
from .model import (MAX_QUOTE_CHARS, SECTION_LABELS, BriefingPack, PackSection, PackVersion, clean_note, now,
                    section_key)

if TYPE_CHECKING:
    from indexer.keywords import Tokenizer

    from ..annotations import Annotation, Notes
    from ..exports import ExportResult
    from ..roles import User
    from ..storage import Database, Store
    from ..topics import TopicService

DEFAULT_OFFICE = "政协青溪市委员会办公室"  # the sample corpus's office; settings.toml `office = "…"` overrides

Edit = Callable[[BriefingPack], tuple[str, dict]]  # changes the pack in place; returns (change, audit detail)


class PackService:
    """Draft, open, edit, version and export topics' briefing packs (`kb.packs`)."""

    def __init__(self, db: "Database", user: "User", *, store: "Store", topics: "TopicService", notes: "Notes",
                 search: Search, document: DocumentLookup, tokenizer: Callable[[], "Tokenizer"],
                 index_state: Callable[[], dict], office: str | None = None):
        self.db = db
        self.user = user
        self.store = store
        self.topics = topics
        self.notes = notes
        self.search = search
        self.document = document
        self.tokenizer = tokenizer  # zero-argument: the tokenizer loads on first use
        self.index_state = index_state
        self.office = office or DEFAULT_OFFICE

    # -- reading ----------------------------------------------------------
    def get(self, topic_ref: str | Topic, version: int | None = None) -> BriefingPack:
        """The latest (or the given) version, with each item's source checked against the index."""
        topic = self.topics.get(topic_ref)
        if version is None:
            row = pack_rows.latest(self.db.conn, topic.topic_id)
        else:
            row = pack_rows.version(self.db.conn, topic.topic_id, version)
        if row is None:
            if version is not None and pack_rows.exists(self.db.conn, topic.topic_id):
                raise PackNotFound(f"议题“{topic.title}”的汇编没有第 {version} 版",
                                   hint=f"用 kb pack history {topic.topic_id} 查看已有版本")
            raise _no_pack(topic)
        pack = _pack(row)
        self._check_sources(pack)
        return pack

    def exists(self, topic_ref: str | Topic) -> bool:
        return pack_rows.exists(self.db.conn, self.topics.get(topic_ref).topic_id)

    def history(self, topic_ref: str | Topic) -> list[PackVersion]:
        """Every saved version, newest first: who, when, what changed."""
        topic = self.topics.get(topic_ref)
        rows = pack_rows.history(self.db.conn, topic.topic_id)
        if not rows:
            raise _no_pack(topic)
        return [PackVersion(r.version, r.created_at, r.user, r.role, r.change, r.detail) for r in rows]

    def doc_ids(self, topic_ref: str | Topic) -> set[str]:
        """Documents quoted in the topic's latest pack (empty when there is none)."""
        try:
            return self.get(topic_ref).doc_ids()
        except PackNotFound:
            return set()

    def outside_notes(self, topic_ref: str | Topic | BriefingPack, *, version: int | None = None,
                      review: str | None = None) -> list["Annotation"]:
        """Notes on the topic's documents (those in the pack and those mentioning its keywords) whose
        passage is in no item of the pack — what staff may pull in. What the user may read, narrowed
        to one review state by `review` ("accepted" for exports)."""
        pack = topic_ref if isinstance(topic_ref, BriefingPack) else self.get(topic_ref, version)
        spans: dict[str, list[tuple[int, int]]] = {}
        for _, _, item in pack.items():
            spans.setdefault(item.doc_id, []).append((item.start, item.end))
        related = self.notes.related_doc_ids(pack.topic_id)
        return [n for n in self.notes.find(review=review) if n.doc_id in related
                and not any(start < n.end and n.start < end for start, end in spans.get(n.doc_id, ()))]

    def _check_sources(self, pack: BriefingPack) -> None:
        """Mark items whose document is gone (来源缺失) or whose passage changed; relocate moved ones."""
        texts: dict[str, str | None] = {}
        for _, _, item in pack.items():
            if item.doc_id not in texts:
                stored = self.store.text_of(item.doc_id)
                texts[item.doc_id] = stored[0] if stored else None
            text = texts[item.doc_id]
            if text is None:
                item.source_status = "missing"
            elif text[item.start:item.end] == item.quote:
                item.source_status = "ok"
            elif item.quote and text.count(item.quote) == 1:
                item.start = text.index(item.quote)
                item.end = item.start + len(item.quote)
                chunk = self.store.chunk_at(item.doc_id, item.start, item.start + 1)  # the chunk it starts in
                if chunk:
                    item.label, item.page = chunk["label"], chunk["page"]
                item.source_status = "moved"
            else:
                item.source_status = "changed"

    # -- drafting ---------------------------------------------------------
    def draft(self, topic_ref: str | Topic, per_section: int = DEFAULT_PER_SECTION, *, keep_manual: bool = True,
              expected_version: int | None = None) -> BriefingPack:
        """Draft (or redraft) the pack from searches. A redraft replaces the automatic items only:
        items added by hand, moved, given an editor's note or marked key stay, in their places and
        order (`keep_manual=False` starts afresh without them); dropped items stay out."""
        self.user.require("manage_packs")
        if not 1 <= int(per_section) <= 50:
            raise InvalidPackEdit(f"每部分条数 {per_section} 超出范围", hint="取 1 到 50 之间")
        topic = self.topics.get(topic_ref)
        previous = pack_rows.latest(self.db.conn, topic.topic_id)
        _check_version(topic, previous, expected_version)  # before the searches; checked again when saving
        started = time.perf_counter()
        relevance = Relevance(topic, self.tokenizer().tokenize, self.store)
        drafted, queries = draft_sections(topic, search=self.search, document=self.document, relevance=relevance,
                                          user=self.user.name, per_section=int(per_section),
                                          exclude=set(_pack(previous).dropped) if previous else set())
        seconds = round(time.perf_counter() - started, 2)

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            sections = [PackSection(s.key, list(s.items), dict(s.found)) for s in drafted]
            kept = 0
            if pack.version and keep_manual:  # merge with the hand-made parts of the latest version
                touched_ids = {item.item_id for _, _, item in pack.items() if item.touched}
                for new, old in zip(sections, pack.sections):
                    fresh = [item for item in new.items
                             if item.item_id not in touched_ids and item.item_id not in pack.dropped]
                    kept += sum(item.touched for item in old.items)
                    new.items = _merge_kept(old.items, fresh)
            redraft = bool(pack.version)
            pack.sections = sections
            pack.queries = queries
            pack.settings = {"per_section": int(per_section), "per_document": PER_DOCUMENT}
            summary = "、".join(f"{s.label}{len(s.items)}条" for s in sections)
            change = ("重新起草" if redraft else "自动起草") + f"：{summary}" + (f"（保留手工条目 {kept} 条）" if kept else "")
            if redraft and not keep_manual:
                change += "（未保留手工条目）"
            return change, {"counts": {s.key: len(s.items) for s in sections},
                            "thin": [s.key for s in sections if s.thin], "seconds": seconds, "kept": kept,
                            "keep_manual": keep_manual}

        return self._save(topic, lambda pack: "pack.redraft" if pack.version else "pack.draft", apply,
                          expected_version, allow_new=True)

    # -- editing ----------------------------------------------------------
    def add_hit(self, topic_ref: str | Topic, hit: Hit, section: str | None = None, *, note: str = "",
                key: bool = False, position: int | None = None, expected_version: int | None = None) -> BriefingPack:
        """Add a search hit's passage; the section follows the document type unless given."""
        return self._add(topic_ref, hit.doc_id, hit.start, hit.end, section, note, key, position, expected_version,
                         hit=hit)

    def add_span(self, topic_ref: str | Topic, doc_id: str, start: int, end: int, section: str | None = None, *,
                 note: str = "", key: bool = False, position: int | None = None,
                 expected_version: int | None = None) -> BriefingPack:
        """Add `document.text[start:end]` of a document (e.g. a passage chosen in the document viewer)."""
        return self._add(topic_ref, doc_id, start, end, section, note, key, position, expected_version)

    def _add(self, topic_ref, doc_id, start, end, section, note, key, position, expected_version,
             hit: Hit | None = None) -> BriefingPack:
        self.user.require("manage_packs")
        doc = self.document(doc_id)
        start, end = int(start), int(end)
        if not 0 <= start < end <= len(doc.text):
            raise InvalidPackEdit(f"摘录范围 {start}–{end} 超出文档《{doc.title}》（共 {len(doc.text)} 字）",
                                  hint="用检索结果里的字符范围")
        if end - start > MAX_QUOTE_CHARS:
            raise InvalidPackEdit(f"摘录过长（{end - start} 字，上限 {MAX_QUOTE_CHARS} 字）",
                                  hint="选取最相关的一段，或分成几条添加")
        item = item_from_hit(hit or hit_for_span(doc, start, end), doc.text, origin="manual", user=self.user.name,
                             start=start, end=end)
        item.note, item.key = clean_note(note), bool(key)
        target = section_key(section) if section else (doc.doc_type if doc.doc_type in SECTION_LABELS else None)
        if target is None:
            raise InvalidPackEdit(f"《{doc.title}》的类型是“{doc.type_label}”，不对应汇编的任何部分",
                                  hint="指定放入哪一部分（命令行加 --section）")

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            for s_no, pos, other in pack.items():
                if other.item_id == item.item_id:
                    raise InvalidPackEdit(f"这段文字已在汇编中（{s_no}.{pos}）", hint="用 kb pack move 调整位置")
            items = pack.section(target).items
            at = len(items) if position is None else max(0, min(int(position) - 1, len(items)))
            items.insert(at, item)
            if item.item_id in pack.dropped:
                pack.dropped.remove(item.item_id)
            return (f"添加到{SECTION_LABELS[target]}：{item.heading}",
                    {"item": item.item_id, "section": target, "doc_id": doc_id, "start": start, "end": end})

        # a pack may also start by hand, without a draft
        return self._save(self.topics.get(topic_ref), "pack.add", apply, expected_version, allow_new=True)

    def add_note_passage(self, topic_ref: str | Topic, note_id: str, section: str | None = None, *,
                         position: int | None = None, expected_version: int | None = None) -> BriefingPack:
        """Pull the passage an expert note is about into the pack (加入汇编): the chunk holding the
        note's quote, in the section of the document's type (专家论证意见 for other types)."""
        self.user.require("manage_packs")
        note = self.notes.get(note_id)
        if note.orphaned:
            raise InvalidPackEdit("这条论证意见所指的原文已改动或移除，无法加入汇编",
                                  hint="打开原文找到相应段落后手工添加")
        doc = self.document(note.doc_id)
        start, end = note.start, note.end
        chunk = self.store.chunk_at(doc.doc_id, note.start, note.end)
        if chunk is not None and chunk["end"] - chunk["start"] <= MAX_QUOTE_CHARS:
            span = passage_span(doc, chunk["start"], chunk["end"], chunk["label"], chunk["page"])
            if span is not None and span[0] <= note.start and note.end <= span[1]:
                start, end = span[0], span[1]
        if section is None and doc.doc_type not in SECTION_LABELS:
            section = "expert"
        return self.add_span(topic_ref, doc.doc_id, start, end, section, position=position,
                             expected_version=expected_version)

    def drop(self, topic_ref: str | Topic, item_ref: str, *, expected_version: int | None = None) -> BriefingPack:
        """Take an item out; a later redraft will not bring it back."""
        def apply(pack: BriefingPack) -> tuple[str, dict]:
            section, index, item = pack.find(item_ref)
            section.items.pop(index)
            if item.item_id not in pack.dropped:
                pack.dropped.append(item.item_id)
            return f"删除{section.label}第{index + 1}条：{item.heading}", {"item": item.item_id, "section": section.key}

        return self._edit(topic_ref, "pack.drop", apply, expected_version)

    def move(self, topic_ref: str | Topic, item_ref: str, section: str | None = None, position: int | None = None,
             *, expected_version: int | None = None) -> BriefingPack:
        """Move an item to another section and/or position (1-based; default: end of the section)."""
        if section is None and position is None:
            raise InvalidPackEdit("没有说明移到哪里", hint="给出 --section（部分）或 --position（序号），或两者")

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            old_section, index, item = pack.find(item_ref)
            target = pack.section(section_key(section)) if section else old_section
            old_section.items.pop(index)
            at = len(target.items) if position is None else max(0, min(int(position) - 1, len(target.items)))
            target.items.insert(at, item)
            item.pinned = True
            where = f"{target.label}第{at + 1}条"
            return (f"移动 {item.heading}：{old_section.label}第{index + 1}条 → {where}",
                    {"item": item.item_id, "from": [old_section.key, index + 1], "to": [target.key, at + 1]})

        return self._edit(topic_ref, "pack.move", apply, expected_version)

    def reorder(self, topic_ref: str | Topic, section: str, order: list[str], *,
                expected_version: int | None = None) -> BriefingPack:
        """Put a section's items in the given order (item ids or positions within the pack)."""
        key = section_key(section)

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            target = pack.section(key)
            wanted = []
            for ref in order:
                found_section, _, item = pack.find(ref)
                if found_section is not target:
                    raise InvalidPackEdit(f"条目“{ref}”不在{target.label}部分", hint="先用 kb pack move 移过来")
                if item not in wanted:
                    wanted.append(item)
            target.items = wanted + [item for item in target.items if item not in wanted]
            for item in wanted:
                item.pinned = True
            return f"调整{target.label}顺序", {"section": key, "order": [i.item_id for i in target.items]}

        return self._edit(topic_ref, "pack.reorder", apply, expected_version)

    def note(self, topic_ref: str | Topic, item_ref: str, text: str, *,
             expected_version: int | None = None) -> BriefingPack:
        """Write (or, with empty text, remove) the editor's note (编者按) on an item."""
        text = clean_note(text)

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            _, _, item = pack.find(item_ref)
            old, item.note = item.note, text
            action = "删除编者按" if not text else ("修改编者按" if old else "添加编者按")
            return f"{action}：{item.heading}", {"item": item.item_id, "old": old, "new": text}

        return self._edit(topic_ref, "pack.note", apply, expected_version)

    def mark_key(self, topic_ref: str | Topic, item_ref: str, key: bool = True, *,
                 expected_version: int | None = None) -> BriefingPack:
        """Mark (or unmark) an item as key reading (重点阅读)."""
        def apply(pack: BriefingPack) -> tuple[str, dict]:
            _, _, item = pack.find(item_ref)
            item.key = bool(key)
            return ("标为重点阅读" if key else "取消重点阅读") + f"：{item.heading}", {"item": item.item_id, "key": bool(key)}

        return self._edit(topic_ref, "pack.key", apply, expected_version)

    # -- saving -----------------------------------------------------------
    def _edit(self, topic_ref, action: str, apply: Edit, expected_version: int | None) -> BriefingPack:
        self.user.require("manage_packs")
        return self._save(self.topics.get(topic_ref), action, apply, expected_version)

    def _save(self, topic: Topic, action: str | Callable[[BriefingPack], str], apply: Edit,
              expected_version: int | None, *, allow_new: bool = False) -> BriefingPack:
        """Apply an edit to the latest version and store the result as the next one, with its audit
        entry, in one transaction. `action` may depend on the latest version (draft or redraft)."""
        snapshot = _topic_snapshot(topic)
        index_state = self.index_state()

        def work(conn) -> BriefingPack:
            latest = pack_rows.latest(conn, topic.topic_id)
            _check_version(topic, latest, expected_version)
            if latest is None and not allow_new:
                raise _no_pack(topic)
            pack = _pack(latest) if latest else BriefingPack(topic_id=topic.topic_id, topic={})
            name = action(pack) if callable(action) else action
            change, detail = apply(pack)
            pack.topic, pack.index_state = snapshot, index_state
            pack.version += 1
            pack.created_at, pack.created_by, pack.change = now(), self.user.name, change
            pack_rows.insert(conn, pack_rows.PackRow(topic.topic_id, pack.version, pack.created_at, self.user.name,
                                                     self.user.role, change, detail, pack.to_json()))
            audit.record(conn, self.user, name, "pack", topic.topic_id, version=pack.version, change=change, **detail)
            return pack

        pack = self.db.write(work, what="汇编的修改")
        self._check_sources(pack)
        return pack

    # -- export -----------------------------------------------------------
    def export(self, topic_ref: str | Topic, fmt: str, out: str | Path, *, version: int | None = None,
               office: str | None = None,
               notes_for: Callable[[str, int, int], list] | None = None) -> "ExportResult":
        """Write the pack (latest or `version`) as docx, pdf, html or md; see `kb.exports`.
        Experts' notes on each passage come from `notes_for` (default: the notes staff accepted);
        accepted notes on the topic's documents outside the pack's items get a part of their own."""
        from ..exports import export_pack

        self.user.require("read")
        pack = self.get(topic_ref, version)
        accepted = notes_for or (lambda doc_id, start, end: self.notes.for_span(doc_id, start, end, review="accepted"))
        result = export_pack(pack, fmt, out, office=office or self.office, notes_for=accepted,
                             index_now=self.index_state(), user=self.user.name,
                             other_notes=self.outside_notes(pack, review="accepted"), titles=self.store.titles())
        self.db.write(lambda conn: audit.record(conn, self.user, "pack.export", "pack", pack.topic_id,
                                                version=pack.version, format=result.format, path=str(result.path)),
                      what="导出记录")
        return result


def _merge_kept(old: list, fresh: list) -> list:
    """A redrafted section: the items kept from `old` (`touched`) stay at their places and in their
    order; the automatic items' places go to `fresh` ones in turn, and the rest follow."""
    fresh = iter(fresh)
    merged = []
    for item in old:
        if item.touched:
            merged.append(item)
        elif (new := next(fresh, None)) is not None:
            merged.append(new)
    return merged + list(fresh)


def _pack(row: pack_rows.PackRow) -> BriefingPack:
    return BriefingPack.from_json(row.content, version=row.version, created_at=row.created_at,
                                  created_by=row.user, change=row.change)


def _check_version(topic: Topic, latest: pack_rows.PackRow | None, expected: int | None) -> None:
    """Refuse an edit made on a version other than the latest (0: made when there was no pack)."""
    if expected is None or (latest.version if latest else 0) == int(expected):
        return
    if latest is None:
        raise _no_pack(topic)
    raise StaleEdit(f"该汇编已被 {latest.user} 于 {latest.created_at.replace('T', ' ')} 修改（第 {latest.version} 版），"
                    "请刷新后再改", hint="本次修改没有保存")


def _no_pack(topic: Topic) -> PackNotFound:
    return PackNotFound(f"议题“{topic.title}”还没有调研资料汇编", hint=f"先运行 kb pack draft {topic.topic_id}")


def _topic_snapshot(topic: Topic) -> dict:
    data = topic.as_dict()
    data.pop("extra", None)
    return data
