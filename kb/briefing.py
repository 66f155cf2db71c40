"""Briefing packs (调研资料汇编): the dossier staff compile for a consultation topic.

A pack has five sections — 政策法规, 领导讲话, 案例模式, 专家论证意见, 往期协商 — of
items, each a verbatim passage of a document (`document.text[start:end]`) with its
citation. `PackService.draft` fills the sections from searches built from the topic;
staff then add, drop, move, reorder, annotate and mark items. Every change saves a
new version (a full snapshot, so any version can be opened and exported again) and
an audit entry in the same transaction.

Drafting never pads: a passage only gets in when the search found it by its words
(not by vector similarity alone) and it, and its document, mention the topic's
specific terms. A section with too little material says so instead.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from indexer.errors import KBError

from . import audit
from .citations import Citation
from .search import Hit, SearchFilters
from .topics import Topic

if TYPE_CHECKING:
    from .exports import ExportResult
    from .knowledge_base import KnowledgeBase

SECTIONS: tuple[tuple[str, str], ...] = (
    ("policy", "政策法规"), ("speech", "领导讲话"), ("case", "案例模式"),
    ("expert", "专家论证意见"), ("minutes", "往期协商"))
SECTION_LABELS = dict(SECTIONS)
SECTION_KEYS = tuple(key for key, _ in SECTIONS)
_SECTION_ALIASES = {"专家论证": "expert", "专家意见": "expert", "协商纪要": "minutes", "往期协商纪要": "minutes",
                    "纪要": "minutes", "政策": "policy", "法规": "policy", "讲话": "speech", "案例": "case"}

DEFAULT_OFFICE = "政协青溪市委员会办公室"  # the sample corpus's office; settings.toml `office = "…"` overrides
DEFAULT_PER_SECTION = 6
PER_DOCUMENT = 3          # passages of one document per section, so a section is not one long file
THIN_BELOW = 2            # fewer items than this and the section is marked as thin
CANDIDATES_PER_QUERY = 20
MAX_QUOTE_CHARS = 5000
MAX_NOTE_CHARS = 2000
# A topic term found in more than this share of all documents says nothing about the topic.
GENERIC_SHARE = 0.5
# A document must mention the topic's specific terms this often, or this densely (per 1000 characters).
DOC_MIN_MENTIONS = 10
DOC_MIN_DENSITY = 4.0
# A passage whose fused score is below this share of the section's best is too far off to list.
RELATIVE_FLOOR = 0.35
_DF_SAMPLE = 2000         # documents sampled to estimate how common a term is

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pack_versions (
    topic_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    change TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    content TEXT NOT NULL,
    PRIMARY KEY (topic_id, version)
);
"""

SOURCE_STATUS = {"ok": "", "moved": "原文位置已变动，已按现行文本重新定位",
                 "changed": "原文已变更：现行文本中找不到这段文字，以下为收录时的原文",
                 "missing": "来源缺失：该文档已从知识库移除，以下为收录时的原文"}


class PackNotFound(KBError):
    """The topic has no briefing pack yet (or not this version)."""


class InvalidPackEdit(KBError):
    """An edit that cannot be applied: unknown item or section, quote too long, duplicate…"""


# -- the domain model --------------------------------------------------------------
@dataclass
class PackItem:
    """One passage in a pack: where it is, what it says, how to cite it, and the editor's marks."""

    item_id: str
    doc_id: str
    start: int
    end: int
    quote: str
    title: str
    doc_type: str
    issuer: str | None = None
    doc_number: str | None = None
    date: str | None = None
    page: int | None = None
    label: str | None = None
    source: str | None = None
    validity: str | None = None
    chunk_id: int | None = None
    score: float = 0.0
    origin: str = "auto"          # auto | manual
    query: str = ""               # the search that found it
    note: str = ""                # 编者按
    key: bool = False             # 重点阅读
    pinned: bool = False          # moved or placed by hand: a redraft leaves it where it is
    added_by: str = ""
    added_at: str = ""
    source_status: str = "ok"     # computed on load: ok | moved | changed | missing

    @property
    def citation(self) -> Citation:
        return Citation(doc_id=self.doc_id, title=self.title, doc_type=self.doc_type, issuer=self.issuer,
                        doc_number=self.doc_number, date=self.date, page=self.page, label=self.label,
                        start=self.start, end=self.end, quote=self.quote, source=self.source,
                        validity=self.validity)

    @property
    def heading(self) -> str:
        """《标题》 plus the article/paragraph label — how the item is listed."""
        return f"《{self.title}》" + (f"{self.label}" if self.label else "")

    @property
    def status_note(self) -> str:
        return SOURCE_STATUS.get(self.source_status, "")

    @property
    def touched(self) -> bool:
        """Placed, moved or marked by an editor — kept as it is by a redraft."""
        return self.origin == "manual" or self.pinned or bool(self.note) or self.key

    def as_dict(self) -> dict:
        data = asdict(self)
        data["citation"] = self.citation.formatted()
        data["status_note"] = self.status_note
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PackItem":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class PackSection:
    """A section and what the draft found for it (so a thin section can say why)."""

    key: str
    items: list[PackItem] = field(default_factory=list)
    found: dict = field(default_factory=dict)  # candidates, weak, off_topic, duplicates

    @property
    def label(self) -> str:
        return SECTION_LABELS[self.key]

    @property
    def thin(self) -> bool:
        return len(self.items) < THIN_BELOW

    @property
    def note(self) -> str:
        """Why a thin section is thin, in the office's words; empty when it is not thin."""
        if not self.thin:
            return ""
        left_out = self.found.get("weak", 0) + self.found.get("off_topic", 0)
        why = f"自动检索时另有 {left_out} 条弱相关结果未收入。" if left_out else ""
        if not self.items:
            return f"知识库中暂未找到与本议题直接相关的{self.label}材料。{why}建议补充收集后重新起草，或手动添加。"
        return f"本部分仅有 {len(self.items)} 条材料，{why}建议补充收集{self.label}材料。"

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "thin": self.thin, "note": self.note, "found": self.found,
                "items": [item.as_dict() for item in self.items]}


@dataclass
class BriefingPack:
    """One version of a topic's 调研资料汇编."""

    topic_id: str
    topic: dict                    # the topic as it was when this version was saved
    version: int = 0
    created_at: str = ""
    created_by: str = ""
    change: str = ""
    sections: list[PackSection] = field(default_factory=lambda: [PackSection(k) for k in SECTION_KEYS])
    dropped: list[str] = field(default_factory=list)   # item ids a redraft must not bring back
    queries: list[str] = field(default_factory=list)
    index_state: dict = field(default_factory=dict)    # manifest generation, updated, model
    settings: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.topic.get("title", self.topic_id)

    def section(self, key: str) -> PackSection:
        return next(s for s in self.sections if s.key == key)

    def items(self) -> Iterator[tuple[int, int, PackItem]]:
        """(section number, position, item), both 1-based, in reading order."""
        for s_no, section in enumerate(self.sections, start=1):
            for pos, item in enumerate(section.items, start=1):
                yield s_no, pos, item

    @property
    def item_count(self) -> int:
        return sum(len(s.items) for s in self.sections)

    def is_empty(self) -> bool:
        return self.item_count == 0

    def doc_ids(self) -> set[str]:
        return {item.doc_id for _, _, item in self.items()}

    def find(self, ref: str) -> tuple[PackSection, int, PackItem]:
        """An item by position (“2.3”: section 2, item 3) or by id (or a unique id prefix of 4+ characters)."""
        ref = str(ref or "").strip()
        match = re.fullmatch(r"(\d+)[.．](\d+)", ref)
        if match:
            s_no, pos = int(match.group(1)), int(match.group(2))
            if 1 <= s_no <= len(self.sections) and 1 <= pos <= len(self.sections[s_no - 1].items):
                section = self.sections[s_no - 1]
                return section, pos - 1, section.items[pos - 1]
        else:
            hits = [(s, i, item) for s in self.sections for i, item in enumerate(s.items)
                    if item.item_id == ref or (len(ref) >= 4 and item.item_id.startswith(ref))]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidPackEdit(f"条目编号“{ref}”不唯一", hint="多写几位编号，或用“部分.序号”（如 2.3）")
        raise InvalidPackEdit(f"汇编里没有条目“{ref}”",
                              hint="用 kb pack show 查看条目：可写“部分.序号”（如 2.3）或条目编号")

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k not in ("version", "created_at", "created_by", "change")}
        for section in data["sections"]:
            for item in section["items"]:
                item.pop("source_status", None)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, **header) -> "BriefingPack":
        data = json.loads(text)
        sections = [PackSection(s["key"], [PackItem.from_dict(i) for i in s.get("items", [])], s.get("found", {}))
                    for s in data.pop("sections")]
        return cls(sections=sections, **data, **header)

    def as_dict(self) -> dict:
        return {"topic_id": self.topic_id, "topic": self.topic, "version": self.version,
                "created_at": self.created_at, "created_by": self.created_by, "change": self.change,
                "item_count": self.item_count, "index_state": self.index_state, "queries": self.queries,
                "sections": [s.as_dict() for s in self.sections]}


@dataclass
class PackVersion:
    version: int
    created_at: str
    user: str
    role: str
    change: str
    detail: dict

    def as_dict(self) -> dict:
        return asdict(self)


# -- helpers ---------------------------------------------------------------------------
def section_key(value: str | None) -> str:
    """A section key from a key, a Chinese label or a section number (1–5)."""
    text = str(value or "").strip()
    if text in SECTION_LABELS:
        return text
    if text.isdigit() and 1 <= int(text) <= len(SECTIONS):
        return SECTIONS[int(text) - 1][0]
    for key, label in SECTIONS:
        if text == label:
            return key
    if text in _SECTION_ALIASES:
        return _SECTION_ALIASES[text]
    raise InvalidPackEdit(f"未知部分“{text}”",
                          hint="可选：" + "、".join(f"{k}（{label}）" for k, label in SECTIONS))


def item_id_for(doc_id: str, start: int, end: int) -> str:
    return hashlib.sha1(f"{doc_id}:{start}:{end}".encode()).hexdigest()[:8]


def _quote_hash(text: str) -> str:
    return hashlib.sha1(re.sub(r"\s+", "", text).encode("utf-8")).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def core_title(title: str) -> str:
    """The subject of a topic title: the quoted part of 2025年“推进老年助餐服务提质扩面”双月座谈会."""
    quoted = re.findall(r"[“\"「『]([^”\"」』]{2,})[”\"」』]", title)
    if quoted:
        return max(quoted, key=len)
    return re.sub(r"^\d{4}年度?|(?:双月座谈会?|界别协商|网络协商|专题协商|面对面协商|全体会议)$", "", title).strip() or title


def topic_queries(topic: Topic) -> list[str]:
    """The searches a draft runs: the subject, subject plus keywords, each keyword, and the
    description's sentences."""
    subject = core_title(topic.title)
    queries = [subject]
    if topic.keywords:
        queries.append(subject + " " + " ".join(topic.keywords[:6]))
        queries += topic.keywords
    sentences = [s.strip() for s in re.split(r"[。；;！？\n]", topic.description) if len(s.strip()) >= 8]
    queries += [s[:200] for s in sentences[:4]]
    seen: list[str] = []
    for query in queries:
        if query and query not in seen:
            seen.append(query)
    return seen


# -- drafting ------------------------------------------------------------------------
@dataclass
class _Candidate:
    """A passage found by one or more of the draft's searches, with its fused score."""

    hit: Hit
    score: float = 0.0
    query: str = ""
    start: int = 0
    end: int = 0
    label: str | None = None
    page: int | None = None


class _Relevance:
    """Topic terms (keywords and words of the subject) that are specific to the topic. Terms
    common to most of the knowledge base (协商, 推进, 服务 …) are ignored."""

    def __init__(self, kb: "KnowledgeBase", topic: Topic):
        words = [t for t in kb.tokenizer.tokenize(core_title(topic.title)) if len(t) >= 2 and not t.isdigit()]
        terms: list[str] = []
        for term in [*topic.keywords, *words]:
            if term not in terms:
                terms.append(term)
        self.terms = terms
        conn = kb.store.conn
        total = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        if total >= 10:  # shares are meaningless in a handful of documents
            step = max(1, math.ceil(total / _DF_SAMPLE))
            sampled = max(1, conn.execute("SELECT COUNT(*) FROM documents WHERE rowid % ? = 0", (step,)).fetchone()[0])
            self.terms = [t for t in terms if conn.execute(
                "SELECT COUNT(*) FROM documents WHERE rowid % ? = 0 AND instr(text, ?) > 0",
                (step, t)).fetchone()[0] / sampled <= GENERIC_SHARE]

    def mentions(self, text: str) -> int:
        """How many times `text` mentions a specific term (nested terms count for each)."""
        return sum(text.count(t) for t in self.terms)

    def on_topic(self, text: str) -> bool:
        """A document is on topic when it mentions the topic's terms often, or densely.
        (Other topics' documents in the sample corpus stay under 3 per 1000 characters,
        on-topic ones are above 5.)"""
        if not self.terms:
            return True  # nothing specific to judge by; the search's own floor has to do
        hits = self.mentions(text)
        return hits >= DOC_MIN_MENTIONS or hits * 1000 / max(len(text), 1) >= DOC_MIN_DENSITY

    def in_passage(self, text: str) -> bool:
        return not self.terms or self.mentions(text) > 0


_HEADER_LINE = re.compile(r"^(?:#+\s*)?(?:[\u4e00-\u9fa5]{2,6}[：:]\s*\S.{0,150}|【[^】]{1,10}】.*)$")
_PARAGRAPHS_LABEL = re.compile(r"^第1(?:–(\d+))?段$")


def passage_span(doc, start: int, end: int, label: str | None, page: int | None):
    """The span to quote for a chunk: the opening chunk of a document loses its title and header
    lines (发文机关：…, 讲话人：…, 【示例材料】…), which the citation already gives. Returns
    (start, end, label, page), or None when nothing but header is left."""
    first = len(doc.text) - len(doc.text.lstrip())
    match = _PARAGRAPHS_LABEL.match(label or "")
    if start > first or not match:
        return start, end, label, page
    pos, skipped = start, 0
    title = re.sub(r"\s+", "", doc.title)
    while pos < end:
        line_end = doc.text.find("\n", pos, end)
        line_end = end if line_end == -1 else line_end
        line = doc.text[pos:line_end].strip()
        if line:
            bare = re.sub(r"\s+", "", line.lstrip("#"))
            if not (_HEADER_LINE.match(line) or (bare and bare in title)):
                break
            skipped += 1
        pos = line_end + 1
    if pos >= end or len(doc.text[pos:end].strip()) < 20:
        return None
    if skipped:
        last = int(match.group(1) or 1)
        label = f"第{skipped + 1}段" if skipped + 1 >= last else f"第{skipped + 1}–{last}段"
        page = next((number for number, s, e in doc.pages if s <= pos < e + 1), page)
    return pos, end, label, page


def _gather(kb: "KnowledgeBase", key: str, queries: list[str], linked: set[str]) -> dict[int, _Candidate]:
    """Run every query against one section's documents and fuse the rankings (reciprocal rank)."""
    searches = [(q, SearchFilters(doc_types=[key])) for q in queries]
    if key == "minutes" and linked:  # earlier consultations linked to the topic are searched directly
        searches += [(q, SearchFilters(doc_ids=sorted(linked))) for q in queries[:2]]
    candidates: dict[int, _Candidate] = {}
    for query, filters in searches:
        for rank, hit in enumerate(kb.search(query, top_k=CANDIDATES_PER_QUERY, filters=filters), start=1):
            cand = candidates.setdefault(hit.chunk_id, _Candidate(hit, query=query))
            cand.score += 1.0 / (60 + rank)
            cand.hit.weak = cand.hit.weak and hit.weak
    return candidates


def _round_robin(kept: list[_Candidate], per_section: int) -> list[_Candidate]:
    """Best passage of each document first, then second-best, … so one long document does not
    fill a section; at most `PER_DOCUMENT` per document."""
    by_doc: dict[str, list[_Candidate]] = {}
    for cand in kept:  # kept is sorted best first, so documents come in order of their best passage
        by_doc.setdefault(cand.hit.doc_id, []).append(cand)
    chosen: list[_Candidate] = []
    for round_ in range(PER_DOCUMENT):
        for passages in by_doc.values():
            if round_ < len(passages) and len(chosen) < per_section:
                chosen.append(passages[round_])
    best = {doc_id: n for n, doc_id in enumerate(by_doc)}
    chosen.sort(key=lambda c: (best[c.hit.doc_id], c.start))  # reading order within a document
    return chosen


def draft_sections(kb: "KnowledgeBase", topic: Topic, per_section: int = DEFAULT_PER_SECTION,
                   exclude: set[str] = frozenset()) -> tuple[list[PackSection], list[str]]:
    """Search every section for the topic; keep relevant, non-duplicate passages; rank and cap."""
    queries = topic_queries(topic)
    relevance = _Relevance(kb, topic)
    linked = {link.doc_id for link in topic.links if link.doc_id}
    docs: dict = {}
    doc_on_topic: dict[str, bool] = {}
    seen_hashes: set[str] = set()
    sections = []

    def document(doc_id: str):
        if doc_id not in docs:
            docs[doc_id] = kb.document(doc_id)
        return docs[doc_id]

    for key, _label in SECTIONS:
        candidates = _gather(kb, key, queries, linked)
        found = {"candidates": len(candidates), "weak": 0, "off_topic": 0, "duplicates": 0}
        kept: list[_Candidate] = []
        for cand in sorted(candidates.values(), key=lambda c: (-c.score, c.hit.doc_id, c.hit.start)):
            hit = cand.hit
            if hit.doc_type != key and hit.doc_id not in linked:
                continue
            if hit.weak:  # found by vector similarity alone: no words in common with the topic
                found["weak"] += 1
                continue
            doc = document(hit.doc_id)
            span = passage_span(doc, hit.start, hit.end, hit.label, hit.page)
            if span is None:
                continue
            cand.start, cand.end, cand.label, cand.page = span
            text = doc.text[cand.start:cand.end]
            if hit.doc_id not in linked:
                if hit.doc_id not in doc_on_topic:
                    doc_on_topic[hit.doc_id] = relevance.on_topic(doc.text)
                if not doc_on_topic[hit.doc_id] or not relevance.in_passage(text):
                    found["off_topic"] += 1
                    continue
            if kept and cand.score < RELATIVE_FLOOR * kept[0].score:
                found["off_topic"] += 1
                continue
            if any(c.hit.doc_id == hit.doc_id and c.start < cand.end and cand.start < c.end for c in kept) \
                    or _quote_hash(text) in seen_hashes:
                found["duplicates"] += 1
                continue
            if item_id_for(hit.doc_id, cand.start, cand.end) in exclude:
                continue
            if hit.citation.validity in ("repealed", "amended"):  # superseded texts go after current ones
                cand.score *= 0.5 if hit.citation.validity == "repealed" else 0.8
            kept.append(cand)
            seen_hashes.add(_quote_hash(text))
        kept.sort(key=lambda c: -c.score)
        items = []
        for cand in _round_robin(kept, per_section):
            item = item_from_hit(cand.hit, document(cand.hit.doc_id).text, origin="auto", query=cand.query,
                                 score=cand.score, user=kb.user.name, start=cand.start, end=cand.end)
            item.label, item.page = cand.label, cand.page
            items.append(item)
        sections.append(PackSection(key, items, found))
    return sections, queries


def item_from_hit(hit: Hit, text: str, *, origin: str, user: str, query: str = "", score: float | None = None,
                  start: int | None = None, end: int | None = None) -> PackItem:
    """A pack item quoting `text[start:end]` (the hit's span by default) with the hit's citation."""
    start = hit.start if start is None else start
    end = hit.end if end is None else end
    c = hit.citation
    return PackItem(item_id=item_id_for(hit.doc_id, start, end), doc_id=hit.doc_id, start=start, end=end,
                    quote=text[start:end], title=c.title, doc_type=c.doc_type, issuer=c.issuer,
                    doc_number=c.doc_number, date=c.date, page=c.page, label=c.label, source=c.source,
                    validity=c.validity, chunk_id=hit.chunk_id,
                    score=round(hit.score if score is None else score, 6), origin=origin, query=query,
                    added_by=user, added_at=_now())


# -- the service -----------------------------------------------------------------------
class PackService:
    """Draft, open, edit, version and export topics' briefing packs (`kb.packs`)."""

    def __init__(self, kb: "KnowledgeBase"):
        self.kb = kb
        self.conn = kb.store.conn
        self.conn.executescript(_SCHEMA)

    # -- reading ----------------------------------------------------------
    def get(self, topic_ref: str | Topic, version: int | None = None) -> BriefingPack:
        """The latest (or the given) version, with each item's source checked against the index."""
        topic = self.kb.topics.get(topic_ref)
        pack = self._load(self.conn, topic, version)
        self._check_sources(pack)
        return pack

    def exists(self, topic_ref: str | Topic) -> bool:
        topic = self.kb.topics.get(topic_ref)
        return self.conn.execute("SELECT 1 FROM pack_versions WHERE topic_id=? LIMIT 1",
                                 (topic.topic_id,)).fetchone() is not None

    def history(self, topic_ref: str | Topic) -> list[PackVersion]:
        """Every saved version, newest first: who, when, what changed."""
        topic = self.kb.topics.get(topic_ref)
        rows = self.conn.execute("SELECT version, created_at, user, role, change, detail FROM pack_versions "
                                 "WHERE topic_id=? ORDER BY version DESC", (topic.topic_id,)).fetchall()
        if not rows:
            raise self._no_pack(topic)
        return [PackVersion(r["version"], r["created_at"], r["user"], r["role"], r["change"], json.loads(r["detail"]))
                for r in rows]

    def doc_ids(self, topic_ref: str | Topic) -> set[str]:
        """Documents quoted in the topic's latest pack (empty when there is none)."""
        try:
            return self.get(topic_ref).doc_ids()
        except PackNotFound:
            return set()

    def _load(self, conn, topic: Topic, version: int | None) -> BriefingPack:
        if version is None:
            row = conn.execute("SELECT * FROM pack_versions WHERE topic_id=? ORDER BY version DESC LIMIT 1",
                               (topic.topic_id,)).fetchone()
        else:
            row = conn.execute("SELECT * FROM pack_versions WHERE topic_id=? AND version=?",
                               (topic.topic_id, int(version))).fetchone()
        if row is None:
            if version is not None and conn.execute("SELECT 1 FROM pack_versions WHERE topic_id=?",
                                                    (topic.topic_id,)).fetchone():
                raise PackNotFound(f"议题“{topic.title}”的汇编没有第 {version} 版",
                                   hint=f"用 kb pack history {topic.topic_id} 查看已有版本")
            raise self._no_pack(topic)
        return BriefingPack.from_json(row["content"], version=row["version"], created_at=row["created_at"],
                                      created_by=row["user"], change=row["change"])

    @staticmethod
    def _no_pack(topic: Topic) -> PackNotFound:
        return PackNotFound(f"议题“{topic.title}”还没有调研资料汇编", hint=f"先运行 kb pack draft {topic.topic_id}")

    def _check_sources(self, pack: BriefingPack) -> None:
        """Mark items whose document is gone (来源缺失) or whose passage changed; relocate moved ones."""
        texts: dict[str, str | None] = {}
        for _, _, item in pack.items():
            if item.doc_id not in texts:
                row = self.conn.execute("SELECT text FROM documents WHERE doc_id=?", (item.doc_id,)).fetchone()
                texts[item.doc_id] = row["text"] if row else None
            text = texts[item.doc_id]
            if text is None:
                item.source_status = "missing"
            elif text[item.start:item.end] == item.quote:
                item.source_status = "ok"
            elif item.quote and text.count(item.quote) == 1:
                item.start = text.index(item.quote)
                item.end = item.start + len(item.quote)
                chunk = self.conn.execute("SELECT label, page FROM chunks WHERE doc_id=? AND start<=? AND end>? "
                                          "ORDER BY start DESC LIMIT 1", (item.doc_id, item.start, item.start)).fetchone()
                if chunk:
                    item.label, item.page = chunk["label"], chunk["page"]
                item.source_status = "moved"
            else:
                item.source_status = "changed"

    # -- drafting ---------------------------------------------------------
    def draft(self, topic_ref: str | Topic, per_section: int = DEFAULT_PER_SECTION) -> BriefingPack:
        """Draft (or redraft) the pack from searches. A redraft refreshes the automatic items;
        items added, moved, annotated or marked by hand stay, and dropped items stay out."""
        self.kb.user.require("manage_packs")
        if not 1 <= int(per_section) <= 50:
            raise InvalidPackEdit(f"每部分条数 {per_section} 超出范围", hint="取 1 到 50 之间")
        topic = self.kb.topics.get(topic_ref)
        started = time.perf_counter()
        previous = self._latest_or_none(topic)
        exclude = set(previous.dropped) if previous else set()
        sections, queries = draft_sections(self.kb, topic, int(per_section), exclude)
        seconds = round(time.perf_counter() - started, 2)

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            kept = 0
            if pack.version:  # merge with the hand-made parts of the previous version
                touched_ids = {item.item_id for _, _, item in pack.items() if item.touched}
                for new, old in zip(sections, pack.sections):
                    touched = [item for item in old.items if item.touched]
                    kept += len(touched)
                    new.items = touched + [item for item in new.items
                                           if item.item_id not in touched_ids and item.item_id not in pack.dropped]
            pack.sections = sections
            pack.queries = queries
            pack.settings = {"per_section": int(per_section), "per_document": PER_DOCUMENT}
            counts = {s.key: len(s.items) for s in sections}
            summary = "、".join(f"{s.label}{len(s.items)}条" for s in sections)
            change = ("重新起草" if pack.version else "自动起草") + f"：{summary}" + (f"（保留手工条目 {kept} 条）" if kept else "")
            return change, {"counts": counts, "thin": [s.key for s in sections if s.thin], "seconds": seconds,
                            "kept": kept}

        return self._save(topic, "pack.draft", apply, allow_new=True)

    def _latest_or_none(self, topic: Topic) -> BriefingPack | None:
        try:
            return self._load(self.conn, topic, None)
        except PackNotFound:
            return None

    # -- editing ----------------------------------------------------------
    def add_hit(self, topic_ref: str | Topic, hit: Hit, section: str | None = None, *, note: str = "",
                key: bool = False, position: int | None = None) -> BriefingPack:
        """Add a search hit's passage; the section follows the document type unless given."""
        return self._add(topic_ref, hit.doc_id, hit.start, hit.end, section, note, key, position, hit=hit)

    def add_span(self, topic_ref: str | Topic, doc_id: str, start: int, end: int, section: str | None = None, *,
                 note: str = "", key: bool = False, position: int | None = None) -> BriefingPack:
        """Add `document.text[start:end]` of a document (e.g. a passage chosen in the document viewer)."""
        return self._add(topic_ref, doc_id, start, end, section, note, key, position)

    def _add(self, topic_ref, doc_id, start, end, section, note, key, position, hit: Hit | None = None) -> BriefingPack:
        self.kb.user.require("manage_packs")
        doc = self.kb.document(doc_id)
        start, end = int(start), int(end)
        if not 0 <= start < end <= len(doc.text):
            raise InvalidPackEdit(f"摘录范围 {start}–{end} 超出文档《{doc.title}》（共 {len(doc.text)} 字）",
                                  hint="用检索结果里的字符范围")
        if end - start > MAX_QUOTE_CHARS:
            raise InvalidPackEdit(f"摘录过长（{end - start} 字，上限 {MAX_QUOTE_CHARS} 字）",
                                  hint="选取最相关的一段，或分成几条添加")
        if hit is None:
            hit = self._hit_for_span(doc, start, end)
        item = item_from_hit(hit, doc.text, origin="manual", user=self.kb.user.name, start=start, end=end)
        item.note, item.key = _clean_note(note), bool(key)
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

        return self._save(self.kb.topics.get(topic_ref), "pack.add", apply, allow_new=True)  # a pack may start by hand

    def _hit_for_span(self, doc, start: int, end: int) -> Hit:
        """Citation fields for an arbitrary span: page and label of the chunk it starts in."""
        chunk = next((c for c in doc.chunks if c.start <= start < max(c.end, c.start + 1)), None)
        if chunk is None:
            chunk = min(doc.chunks, key=lambda c: abs(c.start - start), default=None)
        page, label = (chunk.page, chunk.label) if chunk else (None, None)
        citation = Citation(doc_id=doc.doc_id, title=doc.title, doc_type=doc.doc_type, issuer=doc.issuer,
                            doc_number=doc.doc_number, date=doc.date, page=page, label=label, start=start,
                            end=end, quote=doc.text[start:end], source=doc.source, validity=doc.validity)
        return Hit(chunk_id=chunk.chunk_id if chunk else -1, doc_id=doc.doc_id, title=doc.title,
                   doc_type=doc.doc_type, score=0.0, text=doc.text[start:end], page=page, label=label or "",
                   start=start, end=end, citation=citation)

    def drop(self, topic_ref: str | Topic, item_ref: str) -> BriefingPack:
        """Take an item out; a later redraft will not bring it back."""
        def apply(pack: BriefingPack) -> tuple[str, dict]:
            section, index, item = pack.find(item_ref)
            section.items.pop(index)
            if item.item_id not in pack.dropped:
                pack.dropped.append(item.item_id)
            return f"删除{section.label}第{index + 1}条：{item.heading}", {"item": item.item_id, "section": section.key}

        return self._edit(topic_ref, "pack.drop", apply)

    def move(self, topic_ref: str | Topic, item_ref: str, section: str | None = None,
             position: int | None = None) -> BriefingPack:
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

        return self._edit(topic_ref, "pack.move", apply)

    def reorder(self, topic_ref: str | Topic, section: str, order: list[str]) -> BriefingPack:
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

        return self._edit(topic_ref, "pack.reorder", apply)

    def note(self, topic_ref: str | Topic, item_ref: str, text: str) -> BriefingPack:
        """Write (or, with empty text, remove) the editor's note (编者按) on an item."""
        text = _clean_note(text)

        def apply(pack: BriefingPack) -> tuple[str, dict]:
            _, _, item = pack.find(item_ref)
            old, item.note = item.note, text
            action = "删除编者按" if not text else ("修改编者按" if old else "添加编者按")
            return f"{action}：{item.heading}", {"item": item.item_id, "old": old, "new": text}

        return self._edit(topic_ref, "pack.note", apply)

    def mark_key(self, topic_ref: str | Topic, item_ref: str, key: bool = True) -> BriefingPack:
        """Mark (or unmark) an item as key reading (重点阅读)."""
        def apply(pack: BriefingPack) -> tuple[str, dict]:
            _, _, item = pack.find(item_ref)
            item.key = bool(key)
            return ("标为重点阅读" if key else "取消重点阅读") + f"：{item.heading}", {"item": item.item_id, "key": bool(key)}

        return self._edit(topic_ref, "pack.key", apply)

    # -- saving -----------------------------------------------------------
    def _edit(self, topic_ref, action: str, apply: Callable[[BriefingPack], tuple[str, dict]]) -> BriefingPack:
        self.kb.user.require("manage_packs")
        return self._save(self.kb.topics.get(topic_ref), action, apply)

    def _save(self, topic: Topic, action: str, apply: Callable[[BriefingPack], tuple[str, dict]],
              allow_new: bool = False) -> BriefingPack:
        """Apply an edit to the latest version and store the result as the next one, with its audit
        entry, in one transaction — two editors at once both get their change in."""
        with self.kb.store.transaction() as conn:
            try:
                pack = self._load(conn, topic, None)
            except PackNotFound:
                if not allow_new:
                    raise
                pack = BriefingPack(topic_id=topic.topic_id, topic={})
            change, detail = apply(pack)
            pack.topic = _topic_snapshot(topic)
            pack.index_state = index_state(self.kb)
            pack.version += 1
            pack.created_at, pack.created_by, pack.change = _now(), self.kb.user.name, change
            conn.execute("INSERT INTO pack_versions(topic_id, version, created_at, user, role, change, detail, content)"
                         " VALUES(?,?,?,?,?,?,?,?)",
                         (topic.topic_id, pack.version, pack.created_at, self.kb.user.name, self.kb.user.role,
                          change, json.dumps(detail, ensure_ascii=False), pack.to_json()))
            audit.record(conn, self.kb.user, action, "pack", topic.topic_id, version=pack.version, change=change,
                         **detail)
        self._check_sources(pack)
        return pack

    # -- export -----------------------------------------------------------
    def export(self, topic_ref: str | Topic, fmt: str, out: str | Path, *, version: int | None = None,
               office: str | None = None,
               notes_for: Callable[[str, int, int], list] | None = None) -> "ExportResult":
        """Write the pack (latest or `version`) as docx, pdf, html or md; see `kb.exports`."""
        from .exports import export_pack

        self.kb.user.require("read")
        pack = self.get(topic_ref, version)
        if notes_for is None:
            notes = getattr(self.kb, "notes", None)
            notes_for = getattr(notes, "for_span", None)
        office = office or self.kb.settings.extra.get("office") or DEFAULT_OFFICE
        result = export_pack(pack, fmt, out, office=office, notes_for=notes_for,
                             index_now=index_state(self.kb), user=self.kb.user.name)
        with self.kb.store.transaction() as conn:
            audit.record(conn, self.kb.user, "pack.export", "pack", pack.topic_id, version=pack.version,
                         format=result.format, path=str(result.path))
        return result



def index_state(kb: "KnowledgeBase") -> dict:
    """What the index looked like: generation, when it was published, which model made it."""
    manifest = kb.store.read_manifest() or {}
    return {"generation": manifest.get("generation"), "updated": manifest.get("updated"),
            "model": manifest.get("model"), "documents": (manifest.get("counts") or {}).get("documents")}


def _topic_snapshot(topic: Topic) -> dict:
    data = topic.as_dict()
    data.pop("extra", None)
    return data


def _clean_note(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidPackEdit(f"编者按过长（{len(text)} 字，上限 {MAX_NOTE_CHARS} 字）", hint="精简到要点，详细意见另附材料")
    return text


__all__ = ["SECTIONS", "SECTION_LABELS", "BriefingPack", "PackItem", "PackSection", "PackVersion", "PackService",
           "PackNotFound", "InvalidPackEdit", "section_key", "topic_queries", "core_title",
           "draft_sections", "index_state"]
