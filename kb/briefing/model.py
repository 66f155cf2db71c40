"""The briefing pack as data: sections of items, each a verbatim passage with its citation.

A `BriefingPack` is one saved version of a topic's 调研资料汇编. It serialises to JSON
(the snapshot kept for every version) and back; nothing here reads or writes storage.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Iterator

from ..citations import Citation
from ..errors import InvalidPackEdit

SECTIONS: tuple[tuple[str, str], ...] = (
    ("policy", "政策法规"), ("speech", "领导讲话"), ("case", "案例模式"),
    ("expert", "专家论证意见"), ("minutes", "往期协商"))
SECTION_LABELS = dict(SECTIONS)
SECTION_KEYS = tuple(key for key, _ in SECTIONS)
_SECTION_ALIASES = {"专家论证": "expert", "专家意见": "expert", "协商纪要": "minutes", "往期协商纪要": "minutes",
                    "纪要": "minutes", "政策": "policy", "法规": "policy", "讲话": "speech", "案例": "case"}

THIN_BELOW = 2            # fewer items than this and the section is marked as thin
MAX_QUOTE_CHARS = 5000
MAX_NOTE_CHARS = 2000

SOURCE_STATUS = {"ok": "", "moved": "原文位置已变动，已按现行文本重新定位",
                 "changed": "原文已变更：现行文本中找不到这段文字，以下为收录时的原文",
                 "missing": "来源缺失：该文档已从知识库移除，以下为收录时的原文"}


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
    origin: str = "auto"          # auto (drafted: a redraft replaces it) | manual (add_hit, add_span)
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
    """A saved version as listed in the history: who, when, what changed."""

    version: int
    created_at: str
    user: str
    role: str
    change: str
    detail: dict

    def as_dict(self) -> dict:
        return asdict(self)


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


def clean_note(text: str | None) -> str:
    """An editor's note (编者按) trimmed and checked against the length limit."""
    text = (text or "").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidPackEdit(f"编者按过长（{len(text)} 字，上限 {MAX_NOTE_CHARS} 字）", hint="精简到要点，详细意见另附材料")
    return text


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
