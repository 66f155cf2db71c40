"""Expert notes (专家论证意见) anchored to passages of documents, with replies, export and import.

A note points at a span of a document's normalised text by doc id, the content hash of the
chunk holding it, the quoted text, the text around it and character offsets (see
`kb.anchoring`). Doc ids are stable across re-indexing while chunks are not, so the
note stores the document's `text_hash` as of its last anchoring: after indexing,
every note whose document text changed is looked up again and ends up anchored,
reanchored (the passage moved or its wording changed a little) or orphaned (the
passage is gone, or the document was removed). A file renamed with its text unchanged
gets a new doc id; its notes follow it (`Notes.move_document`). Notes are never deleted.

Every note waits for staff review (待审) whoever wrote it; staff accept it for the briefing pack
(采纳入汇编) or keep it for internal reference (仅内部参考), and may change their mind. Members
read and reply to waiting and accepted notes, not internal ones; experts and staff read them all.
Pack exports take accepted notes only.

The rows live in `kb.storage.notes`. Each change runs in one `Database.write`
transaction (retried while another process writes) together with its audit entry.
"""
from __future__ import annotations

import csv
import html
import io
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from indexer.errors import LoadError
from indexer.store import atomic_write_text

from .anchoring import CONTEXT_CHARS, TextAnchor, anchor_at, choose, find_loose, occurrences, relocate
from .errors import ExportError, InvalidNote, NoteNotFound
from .roles import ROLES, User
from .storage import audit
from .storage import notes as rows
from .storage.database import Connection, Database
from .textsafety import csv_cell, from_csv_cell, strip_bidi_all

if TYPE_CHECKING:
    from .documents import Document
    from .storage import Store
    from .topics import Topic

STANCES = ("支持", "质疑", "补充", "存疑")
_STANCE_ALIASES = {"support": "支持", "challenge": "质疑", "question": "质疑", "supplement": "补充",
                   "doubt": "存疑"}
# CSS class per stance, so HTML never carries user-chosen class names.
STANCE_CSS = {"支持": "support", "质疑": "challenge", "补充": "supplement", "存疑": "doubt"}
STATUS_LABELS = {"anchored": "已锚定", "reanchored": "已重新锚定", "orphaned": "原文已改动或移除，未能定位"}
REVIEW_LABELS = {"pending": "待审", "accepted": "采纳入汇编", "internal": "仅内部参考"}
_REVIEW_ALIASES = {"accept": "accepted", "采纳": "accepted", "内部参考": "internal", "内部": "internal",
                   "待审核": "pending"}


@dataclass
class Reply:
    """An answer in a note's thread; any role that may `reply` can write one."""

    note_id: str
    parent_id: str
    author: str
    author_role: str
    text: str
    created: str

    @property
    def role_label(self) -> str:
        return ROLES.get(self.author_role, self.author_role)


@dataclass
class Annotation:
    """An expert note anchored to `quote` at `[start, end)` of document `doc_id`.

    `original_quote` is what the author selected; `quote` is the passage the note points at
    now (it differs after a fuzzy re-anchoring). `text_hash` is the document text the
    anchor was last checked against; `anchor_info` says how the anchor was chosen.
    """

    note_id: str
    doc_id: str
    quote: str
    start: int
    end: int
    author: str
    author_role: str
    stance: str
    text: str
    created: str
    prefix: str = ""
    suffix: str = ""
    chunk_hash: str | None = None
    text_hash: str | None = None
    status: str = "anchored"
    original_quote: str = ""
    anchor_info: str = ""
    anchored_at: str | None = None
    review: str = "pending"           # pending | accepted | internal (see REVIEW_LABELS)
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    review_reason: str = ""
    replies: list[Reply] = field(default_factory=list)

    @property
    def orphaned(self) -> bool:
        return self.status == "orphaned"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def role_label(self) -> str:
        return ROLES.get(self.author_role, self.author_role)

    @property
    def review_label(self) -> str:
        return REVIEW_LABELS.get(self.review, self.review)

    @property
    def anchor(self) -> TextAnchor:
        return TextAnchor(self.quote, self.start, self.end, self.prefix, self.suffix)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["status_label"] = self.status_label
        data["review_label"] = self.review_label
        return data


@dataclass
class ReanchorReport:
    """What re-checking the notes of changed documents did, by note id."""

    kept: list[str] = field(default_factory=list)
    reanchored: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    def extend(self, other: "ReanchorReport") -> None:
        self.kept += other.kept
        self.reanchored += other.reanchored
        self.orphaned += other.orphaned

    def as_dict(self) -> dict:
        return {"kept": len(self.kept), "reanchored": len(self.reanchored), "orphaned": len(self.orphaned)}


@dataclass
class ImportReport:
    imported: int = 0
    already_present: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    def as_dict(self) -> dict:
        return {"imported": self.imported, "already_present": self.already_present,
                "problems": [{"row": n, "reason": r} for n, r in self.problems]}


def normalise_stance(stance: str) -> str:
    """The stance as one of `STANCES`; English aliases are accepted for scripts."""
    value = (stance or "").strip()
    value = _STANCE_ALIASES.get(value.lower(), value)
    if value not in STANCES:
        raise InvalidNote(f"未知的论证立场“{stance}”", hint="立场可选：" + "、".join(STANCES))
    return value


def normalise_review(decision: str) -> str:
    """A review decision as one of `REVIEW_LABELS`' keys; the Chinese labels are accepted too."""
    value = (decision or "").strip()
    value = {label: key for key, label in REVIEW_LABELS.items()}.get(value, value)
    value = _REVIEW_ALIASES.get(value.lower(), value.lower())
    if value not in REVIEW_LABELS:
        raise InvalidNote(f"未知的审核结论“{decision}”",
                          hint="可选：" + "、".join(f"{k}（{v}）" for k, v in REVIEW_LABELS.items()))
    return value


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def _new_id(kind: str) -> str:
    # Random rather than derived from content: two processes never collide, and an
    # imported note keeps its id, which makes import idempotent.
    return kind + uuid.uuid4().hex[:12]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _not_found(note_id: str) -> NoteNotFound:
    return NoteNotFound(f"没有编号为 {note_id} 的论证意见", hint="用 kb note list 查看编号")


class Notes:
    """The expert notes of one knowledge base; reach it as `kb.notes`.

    It gets what it works with rather than the knowledge base: the database and the
    current user, the document store (texts, chunks, titles), `document(doc_id)`, the
    knowledge-base folder (stamped on exports), and for `find(topic=…)` the doc ids of a
    topic's briefing pack and the topic itself (its title and keywords)."""

    def __init__(self, db: Database, user: User, *, store: "Store", document: Callable[[str], "Document"],
                 home: Path, pack_doc_ids: Callable[[str], Iterable[str]] | None = None,
                 topic: Callable[[str], "Topic"] | None = None):
        self.db = db
        self.user = user
        self.store = store
        self.document = document
        self.home = Path(home)
        self.pack_doc_ids = pack_doc_ids
        self.topic = topic

    # -- writing ----------------------------------------------------------
    def add(self, doc_id: str, quote: str | None = None, *, stance: str, text: str,
            start: int | None = None, end: int | None = None, before: str = "", after: str = "") -> Annotation:
        """Anchor a new note on `quote` (or on `[start, end)`) in document `doc_id`.

        When the quote occurs several times, `before`/`after` (text just around the wanted
        occurrence) or `start` pick one; otherwise the first is taken and `anchor_info` says so.
        """
        user = self.user
        user.require("annotate")
        stance = normalise_stance(stance)
        if not (text or "").strip():
            raise InvalidNote("论证意见内容为空", hint="用 --text 写明意见")

        def work(conn: Connection) -> Annotation:
            doc = self.document(doc_id)
            anchor, info = _initial_anchor(doc.text, quote, start, end, before, after)
            now = _now()
            note = Annotation(
                note_id=_new_id("n"), doc_id=doc_id, quote=anchor.quote, start=anchor.start, end=anchor.end,
                author=user.name, author_role=user.role, stance=stance, text=text.strip(), created=now,
                prefix=anchor.prefix, suffix=anchor.suffix, chunk_hash=self._chunk_hash(doc_id, anchor),
                text_hash=doc.text_hash, status="anchored", original_quote=anchor.quote, anchor_info=info,
                anchored_at=now)
            rows.insert_note(conn, asdict(note))
            audit.record(conn, user, "note.add", "note", note.note_id, doc_id=doc_id, stance=stance,
                         quote=_short(note.quote), start=note.start, end=note.end)
            return note

        return self.db.write(work, what="论证意见")

    def reply(self, note_id: str, text: str) -> Reply:
        """Answer note `note_id` (a reply to a reply joins the same thread)."""
        user = self.user
        user.require("reply")
        if not (text or "").strip():
            raise InvalidNote("回复内容为空", hint="用 --text 写明回复")

        def work(conn: Connection) -> Reply:
            thread = rows.thread_of(conn, note_id)
            if thread is None:
                raise _not_found(note_id)
            root, doc_id = thread
            reply = Reply(_new_id("r"), root, user.name, user.role, text.strip(), _now())
            rows.insert_reply(conn, asdict(reply), doc_id)
            audit.record(conn, user, "note.reply", "note", reply.note_id, parent_id=root, text=_short(reply.text))
            return reply

        return self.db.write(work, what="回复")

    def review(self, note_id: str, decision: str, *, reason: str = "") -> Annotation:
        """Staff's decision on note `note_id`: "accepted" (采纳入汇编), "internal" (仅内部参考) or back to
        "pending" (待审); the Chinese labels work too. Stored with who and when, and audited."""
        user = self.user
        user.require("review_notes")
        decision = normalise_review(decision)
        reason = (reason or "").strip()

        def work(conn: Connection) -> None:
            row = rows.note(conn, note_id)
            if row is None:
                raise _not_found(note_id)
            rows.set_review(conn, note_id, review=decision, by=user.name, at=_now(), reason=reason)
            audit.record(conn, user, "note.review", "note", note_id, doc_id=row["doc_id"], decision=decision,
                         label=REVIEW_LABELS[decision], previous=row["review"], reason=reason,
                         text=_short(row["text"]))

        self.db.write(work, what="审核结论")
        return self.get(note_id)

    def pending(self, topic: str | None = None) -> list[Annotation]:
        """Notes waiting for staff review (待审); with `topic`, those on any of the topic's documents
        (in its pack or mentioning its keywords, see `related_doc_ids`)."""
        self.user.require("review_notes")
        waiting = self.find(review="pending")
        if topic:
            related = self.related_doc_ids(topic)
            waiting = [n for n in waiting if n.doc_id in related]
        return waiting

    def move_document(self, old_doc_id: str, new_doc_id: str) -> dict[str, int]:
        """A file renamed with its text unchanged has a new doc id: its notes (with their replies)
        and topic links move to it, with an audit entry. Returns how many rows of each moved."""
        def work(conn: Connection) -> dict[str, int]:
            moved = rows.move_document(conn, old_doc_id, new_doc_id)
            audit.record(conn, self.user, "document.move", "document", new_doc_id, from_doc_id=old_doc_id, **moved)
            return moved

        return self.db.write(work, what="文件改名后的关联迁移")

    # -- re-anchoring -----------------------------------------------------
    def reanchor(self, doc_id: str) -> ReanchorReport:
        """Look up again every note of `doc_id` whose anchor was made on other text than the current one."""
        return self.db.write(lambda conn: self._reanchor_in(conn, doc_id), what="论证意见的重新锚定")

    def reanchor_all(self) -> ReanchorReport:
        """Re-check the notes of every document whose text changed or which left the knowledge base."""
        report = ReanchorReport()
        for doc_id in rows.docs_to_recheck(self.db.conn):
            report.extend(self.reanchor(doc_id))
        return report

    def _reanchor_in(self, conn: Connection, doc_id: str) -> ReanchorReport:
        report = ReanchorReport()
        current = self.store.text_of(doc_id)
        now = _now()
        for note in (Annotation(**r) for r in rows.notes(conn, doc_id=doc_id)):
            if current is None:
                if not note.orphaned:
                    rows.set_orphaned(conn, note.note_id, text_hash=None, info="文档已从知识库移除；保留原引文", at=now)
                    report.orphaned.append(note.note_id)
                continue
            doc_text, text_hash = current
            if note.text_hash == text_hash:
                continue
            found = relocate(note.anchor, doc_text)
            if found.anchor is None:
                info = f"原文改动后找不到引文（最接近的段落相似度 {found.score:.0f}）；保留原引文"
                rows.set_orphaned(conn, note.note_id, text_hash=text_hash, info=info, at=now)
                report.orphaned.append(note.note_id)
                continue
            new = found.anchor
            moved = found.method != "same_offset" or note.orphaned
            status = "reanchored" if moved or note.status == "reanchored" else "anchored"
            info = note.anchor_info
            if found.method == "exact":
                info = f"原文改动后引文位置由 {note.start} 移到 {new.start}"
                if found.occurrences > 1:
                    info += f"（引文出现 {found.occurrences} 次，按上下文和原位置选定）"
            elif found.method == "fuzzy":
                info = f"原文措辞有改动，按相似度 {found.score:.0f} 重新锚定"
            elif note.orphaned:
                info = "引文重新出现在原位置"
            rows.set_anchor(conn, note.note_id, quote=new.quote, prefix=new.prefix, suffix=new.suffix,
                            start=new.start, end=new.end, chunk_hash=self._chunk_hash(doc_id, new),
                            text_hash=text_hash, status=status, info=info, at=now)
            (report.reanchored if moved else report.kept).append(note.note_id)
        if report.reanchored or report.orphaned:
            audit.record(conn, self.user, "note.reanchor", "document", doc_id, **report.as_dict(),
                         reanchored_ids=report.reanchored, orphaned_ids=report.orphaned)
        return report

    def _chunk_hash(self, doc_id: str, anchor: TextAnchor) -> str | None:
        """Content hash of the chunk that overlaps the anchor most."""
        chunks = self.store.chunks_overlapping(doc_id, anchor.start, max(anchor.end, anchor.start + 1))
        if not chunks:
            return None
        best = max(chunks, key=lambda c: min(c["end"], anchor.end) - max(c["start"], anchor.start))
        return best["content_hash"]

    # -- reading ----------------------------------------------------------
    def get(self, note_id: str) -> Annotation:
        row = rows.note(self.db.conn, note_id)
        if row is None or not self._may_read(row):
            raise _not_found(note_id)
        return self._with_replies([Annotation(**row)])[0]

    def _reviews(self, review: str | None) -> tuple[str, ...] | None:
        """The review states this user may read, narrowed to `review` when given (None: all)."""
        wanted = (normalise_review(review),) if review else None
        if self.user.can("read_internal_notes"):
            return wanted
        return tuple(r for r in (wanted or REVIEW_LABELS) if r != "internal")

    def _may_read(self, row: dict | None) -> bool:
        return row is not None and (self.user.can("read_internal_notes") or row["review"] != "internal")

    def find(self, *, doc_id: str | None = None, author: str | None = None, stance: str | None = None,
             topic: str | None = None, orphaned: bool | None = None, review: str | None = None) -> list[Annotation]:
        """Notes (with their replies) by document, author, stance, topic, orphaned and review state.
        Members do not get notes staff kept for internal reference (仅内部参考); experts and staff
        get every note. What reaches the exported pack is decided by the review (accepted only)."""
        found = rows.notes(self.db.conn, doc_id=doc_id, author=author,
                           stance=normalise_stance(stance) if stance else None, orphaned=orphaned,
                           reviews=self._reviews(review))
        notes = [Annotation(**r) for r in found]
        if topic:
            wanted = self.topic_doc_ids(topic)
            notes = [n for n in notes if n.doc_id in wanted]
        return self._with_replies(notes)

    def for_span(self, doc_id: str, start: int, end: int, *, review: str | None = None) -> list[Annotation]:
        """Notes whose anchor overlaps `[start, end)` of `doc_id`: anchored ones in text order, then
        orphaned ones whose last known place overlapped it (their `status` says so). Members do not
        get internal notes; `review` narrows to one review state (exports pass "accepted")."""
        found = rows.overlapping(self.db.conn, doc_id, start, end, reviews=self._reviews(review))
        return self._with_replies([Annotation(**r) for r in found])

    def topic_doc_ids(self, topic: str) -> set[str]:
        """Documents of a topic: those in its briefing pack when one exists, else those whose title,
        tags or text mention one of the topic's keywords (or the words of `topic` itself)."""
        packed = set(self.pack_doc_ids(topic)) if self.pack_doc_ids else set()
        if packed:
            return packed
        keywords = self._topic_words(topic)
        return {doc["doc_id"] for doc in self.store.iter_texts()
                if any(k in f"{doc['title']} {doc['tags']} {doc['text']}" for k in keywords)}

    def related_doc_ids(self, topic: str) -> set[str]:
        """Every document of a topic: those in its briefing pack and those whose title, tags or text
        mention one of its keywords (where `topic_doc_ids` prefers the pack alone)."""
        packed = set(self.pack_doc_ids(topic)) if self.pack_doc_ids else set()
        keywords = self._topic_words(topic)
        return packed | {doc["doc_id"] for doc in self.store.iter_texts()
                         if any(k in f"{doc['title']} {doc['tags']} {doc['text']}" for k in keywords)}

    def _topic_words(self, topic: str) -> list[str]:
        """The topic's keywords and title (raises `TopicNotFound` with close matches), or without a
        topic service the words of `topic`."""
        if self.topic is not None:
            found = self.topic(topic)
            return [k for k in [*found.keywords, found.title] if k]
        words = topic.replace("、", " ").replace("，", " ").replace(",", " ").split()
        return words or [topic]

    def _with_replies(self, notes: list[Annotation]) -> list[Annotation]:
        by_id = {n.note_id: n for n in notes}
        for r in rows.replies(self.db.conn, by_id):
            by_id[r["parent_id"]].replies.append(Reply(**r))
        return notes

    # -- export and import --------------------------------------------
    def export(self, path: str | Path, fmt: str | None = None, notes: list[Annotation] | None = None) -> int:
        """Write notes (all by default) with their replies as JSON or CSV; returns the number of notes."""
        self.user.require("read")
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "json").lower()
        notes = self.find() if notes is None else notes
        titles = self.store.titles()
        if fmt == "json":
            payload = {"kind": "expert_notes", "format_version": 1, "exported_at": _now(),
                       "exported_by": self.user.name, "knowledge_base": str(self.home.resolve()),
                       "count": len(notes),
                       "notes": [dict(n.as_dict(), title=titles.get(n.doc_id)) for n in notes]}
            content = json.dumps(strip_bidi_all(payload), ensure_ascii=False, indent=1)
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for note in notes:
                rows_out = [dict(asdict(note), parent_id="", title=titles.get(note.doc_id, ""))]
                rows_out += [dict(asdict(reply), doc_id=note.doc_id, title=titles.get(note.doc_id, ""))
                             for reply in note.replies]
                for row in rows_out:
                    writer.writerow({key: csv_cell(value) for key, value in row.items()})
            # A byte-order mark makes Excel read the file as UTF-8 instead of the local code page.
            content = "\ufeff" + buffer.getvalue()
        else:
            raise ExportError(f"不支持的导出格式 {fmt}", hint="可选 json 或 csv")
        try:
            atomic_write_text(path, content)
        except OSError as exc:
            raise ExportError(f"无法写入 {path}：{exc.strerror or exc}", hint="换一个可写的位置") from exc
        return len(notes)

    def import_file(self, path: str | Path) -> ImportReport:
        """Add the notes and replies of a JSON or CSV export; ids already present are skipped."""
        user = self.user
        user.require("annotate")
        items = _read_rows(Path(path))

        def work(conn: Connection) -> ImportReport:
            report = ImportReport()  # made afresh on each attempt: a retried write starts from the start
            known = rows.note_ids(conn)
            added: list[str] = []
            # Notes before replies, so every reply finds its thread.
            for number, item in sorted(items, key=lambda entry: bool(entry[1].get("parent_id"))):
                note_id = str(item.get("note_id") or "").strip()
                if note_id in known:
                    report.already_present += 1
                    continue
                try:
                    _insert_imported(conn, item, known)
                except InvalidNote as exc:
                    report.problems.append((number, exc.user_message()))
                    continue
                known.add(note_id)
                added.append(note_id)
            report.imported = len(added)
            if added:
                audit.record(conn, user, "note.import", "note", None, file=str(path), imported=len(added),
                             note_ids=added)
            return report

        report = self.db.write(work, what="导入的论证意见")
        self.reanchor_all()  # imported anchors may come from another version of the text
        return report


CSV_FIELDS = ["note_id", "parent_id", "doc_id", "title", "stance", "author", "author_role", "created", "text",
              "quote", "original_quote", "prefix", "suffix", "start", "end", "status", "anchor_info",
              "chunk_hash", "text_hash", "anchored_at", "review", "reviewed_by", "reviewed_at", "review_reason"]


def _initial_anchor(text: str, quote: str | None, start: int | None, end: int | None,
                    before: str, after: str) -> tuple[TextAnchor, str]:
    """The anchor of a new note and a remark on how it was chosen (empty when unambiguous)."""
    if start is not None or end is not None:
        if start is None or end is None or not 0 <= start < end <= len(text):
            raise InvalidNote(f"字符位置 {start}–{end} 不在文档范围内（共 {len(text)} 字）",
                              hint="同时给出 --start 和 --end，且 start < end")
        if quote and text[start:end] != quote:
            raise InvalidNote(f"字符 {start}–{end} 处的原文是“{_short(text[start:end])}”，与引文不一致",
                              hint="去掉 --start/--end 让程序查找引文，或改正位置")
        return anchor_at(text, start, end), ""
    quote = (quote or "").strip()
    if not quote:
        raise InvalidNote("没有给出引文", hint="用 --quote 摘录文档中的原句")
    spans = [(s, s + len(quote)) for s in occurrences(text, quote)]
    remark = ""
    if not spans:
        spans = find_loose(text, quote)
        remark = "引文与原文的空白或换行不同，已按原文摘录" if spans else ""
    if not spans:
        raise InvalidNote(f"文档中找不到引文“{_short(quote)}”", hint="引文须是原文中的一段原话，可用 kb show 查看全文")
    if len(spans) == 1:
        return anchor_at(text, *spans[0]), remark
    if before or after:
        chosen = choose(text, spans, before[-CONTEXT_CHARS:], after[:CONTEXT_CHARS])
        how = f"按上下文选定第 {spans.index(chosen) + 1} 处"
    else:
        chosen = spans[0]
        how = "已取第 1 处（可用 --before/--after 给出上下文或用 --start/--end 指定位置）"
    return anchor_at(text, *chosen), "；".join(filter(None, [remark, f"引文在文中出现 {len(spans)} 次，{how}"]))


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """(row number, fields) of every note and reply in an export file; replies of JSON notes are flattened."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LoadError(path, "文件不存在") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(path, f"无法读取（{exc}）", hint="导入文件应是 kb note export 生成的 UTF-8 JSON 或 CSV") from None
    if path.suffix.lower() == ".json" or raw.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LoadError(path, f"不是有效的 JSON（第 {exc.lineno} 行）") from None
        items = data.get("notes", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise LoadError(path, "JSON 中没有 notes 列表", hint="导入文件应是 kb note export 生成的文件")
        rows: list[tuple[int, dict]] = []
        for n, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                rows.append((n, {}))
                continue
            rows.append((n, item))
            for reply in item.get("replies") or []:
                rows.append((n, dict(reply, doc_id=item.get("doc_id"), parent_id=item.get("note_id"))))
        return rows
    reader = csv.DictReader(io.StringIO(raw))
    if not reader.fieldnames or "note_id" not in reader.fieldnames:
        raise LoadError(path, "CSV 缺少 note_id 列", hint="导入文件应是 kb note export --format csv 生成的文件")
    return [(n, {key: from_csv_cell(value) for key, value in row.items()}) for n, row in enumerate(reader, start=2)]


def _int_or_none(value) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidNote(f"字符位置 {value} 不是整数") from None


def _insert_imported(conn: Connection, row: dict, known: set[str]) -> None:
    """Insert one imported note or reply after checking it; raises `InvalidNote` for a bad row."""
    def text_of(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value)

    note_id, parent_id = text_of("note_id").strip(), text_of("parent_id").strip()
    if not note_id:
        raise InvalidNote("缺少 note_id")
    if not text_of("text").strip():
        raise InvalidNote(f"{note_id}：内容为空")
    author, role = text_of("author").strip(), text_of("author_role").strip()
    if not author or role not in ROLES:
        raise InvalidNote(f"{note_id}：作者或角色不明（{author or '空'}，{role or '空'}）")
    created = text_of("created") or _now()
    if parent_id:
        if parent_id not in known:
            raise InvalidNote(f"回复 {note_id} 所属的论证意见 {parent_id} 不存在")
        root, doc_id = rows.thread_of(conn, parent_id)
        rows.insert_reply(conn, asdict(Reply(note_id, root, author, role, text_of("text"), created)), doc_id)
        return
    start, end = _int_or_none(row.get("start")), _int_or_none(row.get("end"))
    quote = text_of("quote")
    if not text_of("doc_id") or not quote or start is None or end is None:
        raise InvalidNote(f"{note_id}：缺少文档编号、引文或字符位置")
    status = text_of("status") if text_of("status") in STATUS_LABELS else "anchored"
    rows.insert_note(conn, asdict(Annotation(
        note_id=note_id, doc_id=text_of("doc_id"), quote=quote, start=start, end=end, author=author,
        author_role=role, stance=normalise_stance(text_of("stance")), text=text_of("text"), created=created,
        prefix=text_of("prefix"), suffix=text_of("suffix"), chunk_hash=text_of("chunk_hash") or None,
        text_hash=text_of("text_hash") or None, status=status, original_quote=text_of("original_quote") or quote,
        anchor_info=text_of("anchor_info"), anchored_at=text_of("anchored_at") or None)))


def note_html(note: Annotation) -> str:
    """An HTML fragment for one note and its thread; every user-written string is escaped."""
    esc = html.escape
    css = f"expert-note stance-{STANCE_CSS.get(note.stance, 'other')} status-{esc(note.status)}"
    status = "" if note.status == "anchored" else f' <span class="status">{esc(note.status_label)}</span>'
    status += f' <span class="review review-{esc(note.review)}">{esc(note.review_label)}</span>'
    parts = [
        f'<article class="{css}" data-note-id="{esc(note.note_id)}">',
        f'<header><span class="stance">{esc(note.stance)}</span> '
        f'<span class="author">{esc(note.author)}（{esc(note.role_label)}）</span> '
        f'<time>{esc(note.created)}</time>{status}</header>',
        f'<blockquote class="quote">{esc(note.quote)}</blockquote>',
        f'<div class="note-text">{_paragraphs(note.text)}</div>',
    ]
    if note.replies:
        parts.append('<ol class="replies">')
        for reply in note.replies:
            parts.append(f'<li><span class="author">{esc(reply.author)}（{esc(reply.role_label)}）</span> '
                         f'<time>{esc(reply.created)}</time><div>{_paragraphs(reply.text)}</div></li>')
        parts.append("</ol>")
    parts.append("</article>")
    return "\n".join(parts)


def _paragraphs(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.splitlines())
