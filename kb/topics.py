"""Consultation topics (协商议题): what is consulted, in which format, and where it stands
in the eight-step method (八步工作法), with links to earlier consultations and their
minutes (协商纪要), leaders' instructions (批示) and follow-up reviews (回头看).

Topics live in the knowledge base's SQLite file next to the documents; every change
is written together with its audit entry. A topic is named by its id (a short slug)
or by its exact title.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from indexer.errors import KBError
from indexer.metadata import parse_date

from . import audit
from .errors import TopicNotFound

if TYPE_CHECKING:
    from .knowledge_base import KnowledgeBase

FORMATS = ("全体会议", "面对面协商", "常委会专题协商", "双月座谈", "界别协商", "网络协商", "其他")
_FORMAT_ALIASES = {
    "plenary": "全体会议", "全会": "全体会议", "全体会议协商": "全体会议",
    "face_to_face": "面对面协商", "面对面": "面对面协商", "请你来协商": "面对面协商",
    "thematic": "常委会专题协商", "专题协商": "常委会专题协商", "常委会专题协商会": "常委会专题协商",
    "biweekly": "双月座谈", "双月座谈会": "双月座谈", "双月协商座谈会": "双月座谈",
    "sector": "界别协商", "界别": "界别协商", "界别协商会": "界别协商",
    "online": "网络协商", "network": "网络协商", "远程协商": "网络协商", "网络议政": "网络协商",
    "other": "其他",
}

STEPS = ("精选协商议题", "制定工作方案", "实施调研计划", "审议协商方案",
         "确定委员发言", "抓好会议服务", "报送协商纪要", "加强新闻宣传")

LINK_KINDS = {"consultation": "往期协商及纪要", "instruction": "领导批示", "followup": "回头看"}
_LINK_ALIASES = {"minutes": "consultation", "纪要": "consultation", "往期协商": "consultation",
                 "协商纪要": "consultation", "批示": "instruction", "领导批示": "instruction",
                 "回头看": "followup", "follow-up": "followup"}

_EDITABLE = ("title", "format", "year", "lead", "sectors", "keywords", "description", "step", "step_dates")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    topic_id TEXT PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL,
    year INTEGER,
    lead TEXT,
    sectors TEXT NOT NULL DEFAULT '[]',
    keywords TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 1,
    step_dates TEXT NOT NULL DEFAULT '{}',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS topic_links (
    link_id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic_id TEXT NOT NULL REFERENCES topics(topic_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    doc_id TEXT,
    title TEXT NOT NULL DEFAULT '',
    date TEXT,
    author TEXT,
    text TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS topic_links_topic ON topic_links(topic_id);
"""


class InvalidTopic(KBError):
    """A topic field has a value we cannot store (unknown format, step, bad year…)."""


@dataclass
class TopicLink:
    """An earlier consultation / its minutes, a leader's instruction (批示) or a follow-up (回头看)."""

    link_id: int
    kind: str
    doc_id: str | None = None
    title: str = ""
    date: str | None = None
    author: str | None = None
    text: str = ""

    @property
    def kind_label(self) -> str:
        return LINK_KINDS.get(self.kind, self.kind)


@dataclass
class Topic:
    """A consultation topic (协商议题) and its place in the eight-step method."""

    topic_id: str
    title: str
    format: str = "其他"
    year: int | None = None
    lead: str | None = None          # 牵头的专委会或界别
    sectors: list[str] = field(default_factory=list)  # 参与界别
    keywords: list[str] = field(default_factory=list)
    description: str = ""
    step: int = 1
    step_dates: dict[int, str] = field(default_factory=dict)
    links: list[TopicLink] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""

    @property
    def step_name(self) -> str:
        return STEPS[self.step - 1]

    def links_of(self, kind: str) -> list[TopicLink]:
        return [link for link in self.links if link.kind == kind]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["step_name"] = self.step_name
        data["step_dates"] = {str(k): v for k, v in self.step_dates.items()}
        for link, raw in zip(self.links, data["links"]):
            raw["kind_label"] = link.kind_label
        return data


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # earlier consultations not found among the documents

    def as_dict(self) -> dict:
        return asdict(self)


# -- value checks ------------------------------------------------------------
def normalise_format(value: str | None) -> str:
    """One of `FORMATS`; accepts common variants (双月座谈会, 面对面, plenary…)."""
    text = str(value or "其他").strip()
    if text in FORMATS:
        return text
    found = _FORMAT_ALIASES.get(text) or _FORMAT_ALIASES.get(text.lower())
    if found:
        return found
    raise InvalidTopic(f"未知协商形式“{text}”", hint="可选：" + "、".join(FORMATS))


def parse_step(value: Any) -> int:
    """Step number 1–8 from a number or a step name (精选协商议题 … 加强新闻宣传)."""
    text = str(value).strip()
    if text.isdigit() and 1 <= int(text) <= len(STEPS):
        return int(text)
    for number, name in enumerate(STEPS, start=1):
        if text and (text == name or (len(text) >= 2 and text in name)):
            return number
    raise InvalidTopic(f"未知工作步骤“{text}”",
                       hint="八步工作法：" + "、".join(f"{n}.{s}" for n, s in enumerate(STEPS, start=1)))


def _parse_year(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        year = int(str(value).strip().rstrip("年"))
    except ValueError:
        raise InvalidTopic(f"年度“{value}”不是年份", hint="例如 2025") from None
    if not 1949 <= year <= 2100:
        raise InvalidTopic(f"年度 {year} 超出范围", hint="例如 2025")
    return year


def _parse_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, (list, tuple)) else re.split(r"[;；,，、\n]+", str(value))
    out: list[str] = []
    for item in items:
        item = str(item).strip()
        if item and item not in out:
            out.append(item)
    return out


def _parse_date(value: Any, what: str) -> str:
    iso = parse_date(value)
    if iso is None:
        raise InvalidTopic(f"{what}日期“{value}”无法识别", hint="写成 2025-04-18 或 2025年4月18日")
    return iso


def _step_dates(value: Any) -> dict[int, str]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidTopic("各步骤日期应为“步骤: 日期”形式", hint="例如 step_dates: {1: 2025-01-10, 2: 2025-02-20}")
    return {parse_step(k): _parse_date(v, f"第{parse_step(k)}步") for k, v in value.items()}


def _clean_title(value: Any) -> str:
    title = re.sub(r"\s+", " ", str(value or "")).strip()
    if not title:
        raise InvalidTopic("议题标题为空", hint="给出议题全称，例如“推进老年助餐服务提质扩面”双月座谈会")
    if len(title) > 200:
        raise InvalidTopic(f"议题标题过长（{len(title)} 字）", hint="标题不超过 200 字，背景写进说明（description）")
    return title


def _slug(title: str) -> str:
    return "t-" + hashlib.sha1(title.encode("utf-8")).hexdigest()[:8]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# -- the service ---------------------------------------------------------------
class TopicService:
    """Add, list, show and edit topics of one knowledge base (`kb.topics`)."""

    def __init__(self, kb: "KnowledgeBase"):
        self.kb = kb
        self.conn = kb.store.conn
        self.conn.executescript(_SCHEMA)

    # -- reading ----------------------------------------------------------
    def get(self, ref: str | Topic) -> Topic:
        """The topic with this id or exact title; `TopicNotFound` names close matches."""
        if isinstance(ref, Topic):
            ref = ref.topic_id
        key = str(ref or "").strip()
        row = self.conn.execute("SELECT * FROM topics WHERE topic_id=? OR title=? ORDER BY topic_id=? DESC LIMIT 1",
                                (key, key, key)).fetchone()
        if row is None:
            raise TopicNotFound(f"没有议题“{key}”", hint=self._suggestion(key))
        return self._topic(row)

    def list(self, year: int | None = None) -> list[Topic]:
        sql = "SELECT * FROM topics" + (" WHERE year=?" if year else "") + " ORDER BY year DESC, rowid"
        return [self._topic(r) for r in self.conn.execute(sql, (year,) if year else ())]

    def _suggestion(self, key: str) -> str:
        rows = self.conn.execute("SELECT topic_id, title FROM topics ORDER BY created_at").fetchall()
        if not rows:
            return "还没有任何议题：用 kb topic add 或 kb topic import corpus/topics.yaml 添加"
        close = [r for r in rows if key and (key in r["title"] or key in r["topic_id"])]
        shown = close or rows
        names = "；".join(f"{r['topic_id']}（{r['title']}）" for r in shown[:5])
        return ("可能是：" if close else "已有议题：") + names + "。用编号或完整标题指定"

    def _topic(self, row) -> Topic:
        links = [TopicLink(r["link_id"], r["kind"], r["doc_id"], r["title"], r["date"], r["author"], r["text"])
                 for r in self.conn.execute("SELECT * FROM topic_links WHERE topic_id=? ORDER BY date, link_id",
                                            (row["topic_id"],))]
        return Topic(topic_id=row["topic_id"], title=row["title"], format=row["format"], year=row["year"],
                     lead=row["lead"], sectors=json.loads(row["sectors"]), keywords=json.loads(row["keywords"]),
                     description=row["description"], step=row["step"],
                     step_dates={int(k): v for k, v in json.loads(row["step_dates"]).items()},
                     links=links, extra=json.loads(row["extra"]), created_at=row["created_at"],
                     created_by=row["created_by"], updated_at=row["updated_at"])

    # -- writing ----------------------------------------------------------
    def add(self, title: str, *, format: str = "其他", year: int | str | None = None, lead: str | None = None,
            sectors: Iterable[str] | str = (), keywords: Iterable[str] | str = (), description: str = "",
            step: int | str = 1, step_dates: dict | None = None, topic_id: str | None = None,
            extra: dict | None = None) -> Topic:
        """Create a topic; the id is `topic_id` if given, else derived from the title."""
        self.kb.user.require("manage_topics")
        values = self._validated(dict(title=title, format=format, year=year, lead=lead, sectors=sectors,
                                      keywords=keywords, description=description, step=step,
                                      step_dates=step_dates or {}))
        topic_id = (topic_id or "").strip() or _slug(values["title"])
        if not re.fullmatch(r"[\w\-.]{1,64}", topic_id):
            raise InvalidTopic(f"议题编号“{topic_id}”含有不能用的字符", hint="只用字母、数字、连字符，例如 laonian-zhucan-2025")
        with self.kb.store.transaction() as conn:
            clash = conn.execute("SELECT topic_id, title FROM topics WHERE topic_id=? OR title=?",
                                 (topic_id, values["title"])).fetchone()
            if clash:
                raise InvalidTopic(f"议题已存在：{clash['topic_id']}（{clash['title']}）",
                                   hint="用 kb topic edit 修改已有议题")
            now = _now()
            conn.execute(
                "INSERT INTO topics(topic_id, title, format, year, lead, sectors, keywords, description, step,"
                " step_dates, extra, created_at, created_by, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (topic_id, values["title"], values["format"], values["year"], values["lead"],
                 _json(values["sectors"]), _json(values["keywords"]), values["description"], values["step"],
                 _json({str(k): v for k, v in values["step_dates"].items()}), _json(extra or {}), now,
                 self.kb.user.name, now))
            audit.record(conn, self.kb.user, "topic.add", "topic", topic_id, title=values["title"])
        return self.get(topic_id)

    def edit(self, ref: str | Topic, **changes) -> Topic:
        """Change fields (title, format, year, lead, sectors, keywords, description, step, step_dates).

        Moving to another step without a date for it records today's date for that step.
        """
        return self._edit(ref, changes)[0]

    def _edit(self, ref: str | Topic, changes: dict) -> tuple[Topic, dict]:
        """The edited topic and what changed ({field: [old, new]}); nothing is written when nothing changes."""
        self.kb.user.require("manage_topics")
        unknown = set(changes) - set(_EDITABLE)
        if unknown:
            raise InvalidTopic(f"不能修改字段：{'、'.join(sorted(unknown))}", hint="可改：" + "、".join(_EDITABLE))
        topic = self.get(ref)
        new = self._validated({**{k: getattr(topic, k) for k in _EDITABLE},
                               **{k: v for k, v in changes.items() if v is not None}})
        if new["step"] != topic.step and new["step"] not in new["step_dates"]:
            new["step_dates"] = {**new["step_dates"], new["step"]: time.strftime("%Y-%m-%d")}
        diff = {k: [getattr(topic, k), new[k]] for k in _EDITABLE if getattr(topic, k) != new[k]}
        if not diff:
            return topic, diff
        with self.kb.store.transaction() as conn:
            if "title" in diff and conn.execute("SELECT 1 FROM topics WHERE title=? AND topic_id<>?",
                                                (new["title"], topic.topic_id)).fetchone():
                raise InvalidTopic(f"已有同名议题“{new['title']}”", hint="换一个标题")
            conn.execute(
                "UPDATE topics SET title=?, format=?, year=?, lead=?, sectors=?, keywords=?, description=?, step=?,"
                " step_dates=?, updated_at=? WHERE topic_id=?",
                (new["title"], new["format"], new["year"], new["lead"], _json(new["sectors"]),
                 _json(new["keywords"]), new["description"], new["step"],
                 _json({str(k): v for k, v in new["step_dates"].items()}), _now(), topic.topic_id))
            audit.record(conn, self.kb.user, "topic.edit", "topic", topic.topic_id, changes=diff)
        return self.get(topic.topic_id), diff

    def set_step(self, ref: str | Topic, step: int | str, date: str | None = None) -> Topic:
        """Move the topic to `step` (number or name), recording the date (default today)."""
        topic = self.get(ref)
        number = parse_step(step)
        dates = {**topic.step_dates, number: _parse_date(date, "步骤") if date else time.strftime("%Y-%m-%d")}
        return self.edit(topic, step=number, step_dates=dates)

    def link(self, ref: str | Topic, kind: str, *, doc_id: str | None = None, title: str | None = None,
             text: str = "", date: str | None = None, author: str | None = None) -> TopicLink:
        """Attach an earlier consultation (doc of its minutes), a 批示 or a 回头看 record."""
        self.kb.user.require("manage_topics")
        topic = self.get(ref)
        kind = _LINK_ALIASES.get(kind, kind)
        if kind not in LINK_KINDS:
            raise InvalidTopic(f"未知关联类型“{kind}”",
                               hint="可选 consultation（往期协商及纪要）、instruction（领导批示）、followup（回头看）")
        if doc_id:
            doc = self.kb.document(doc_id)  # DocumentNotFound names the id
            title = title or doc.title
            date = date or doc.date
        text = (text or "").strip()
        if not (doc_id or text or title):
            raise InvalidTopic("关联记录为空", hint="给出文档编号（--doc），或批示、回头看的内容（--text）")
        iso = _parse_date(date, "关联记录") if date else None
        with self.kb.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO topic_links(topic_id, kind, doc_id, title, date, author, text, created_at, created_by)"
                " VALUES(?,?,?,?,?,?,?,?,?)",
                (topic.topic_id, kind, doc_id, title or "", iso, author, text, _now(), self.kb.user.name))
            audit.record(conn, self.kb.user, "topic.link", "topic", topic.topic_id, kind=kind, doc_id=doc_id,
                         title=title, link_id=cursor.lastrowid)
        return TopicLink(cursor.lastrowid, kind, doc_id, title or "", iso, author, text)

    def unlink(self, ref: str | Topic, link_id: int) -> None:
        self.kb.user.require("manage_topics")
        topic = self.get(ref)
        with self.kb.store.transaction() as conn:
            gone = conn.execute("DELETE FROM topic_links WHERE link_id=? AND topic_id=?",
                                (int(link_id), topic.topic_id)).rowcount
            if not gone:
                raise InvalidTopic(f"议题 {topic.topic_id} 没有编号为 {link_id} 的关联记录",
                                   hint="用 kb topic show 查看关联记录编号")
            audit.record(conn, self.kb.user, "topic.unlink", "topic", topic.topic_id, link_id=int(link_id))

    # -- import -----------------------------------------------------------
    def import_yaml(self, path: str | Path) -> ImportReport:
        """Load topics from a YAML file (`topics:` list, as in corpus/topics.yaml); running it again
        changes nothing. Earlier consultations named by title are linked to the minutes documents."""
        self.kb.user.require("manage_topics")
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InvalidTopic(f"找不到议题文件 {path}", hint="例如 kb topic import corpus/topics.yaml") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InvalidTopic(f"议题文件 {path} 格式错误（{type(exc).__name__}）", hint="检查 YAML 缩进与冒号") from exc
        entries = data.get("topics") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise InvalidTopic(f"议题文件 {path} 里没有 topics 列表", hint="格式见 corpus/topics.yaml")
        report = ImportReport()
        for n, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict) or not entry.get("title"):
                raise InvalidTopic(f"议题文件 {path} 第 {n} 条没有标题（title）")
            self._import_one(entry, report)
        return report

    def _import_one(self, entry: dict, report: ImportReport) -> None:
        known = {"id", "title", "format", "year", "lead", "sectors", "keywords", "description",
                 "current_step", "step", "step_dates", "earlier_consultations", "current_step_name"}
        fields_ = dict(title=entry["title"], format=entry.get("format"), year=entry.get("year"),
                       lead=entry.get("lead"), sectors=entry.get("sectors"), keywords=entry.get("keywords"),
                       description=entry.get("description") or "",
                       step=entry.get("current_step") or entry.get("step") or 1,
                       step_dates=entry.get("step_dates") or {})
        values = self._validated(fields_)
        topic_id = str(entry.get("id") or "").strip() or None
        row = self.conn.execute("SELECT topic_id FROM topics WHERE topic_id=? OR title=?",
                                (topic_id or "", values["title"])).fetchone()
        if row is None:
            topic = self.add(**values, topic_id=topic_id,
                             extra={k: v for k, v in entry.items() if k not in known})
            report.added.append(topic.topic_id)
        else:
            topic, diff = self._edit(row["topic_id"], values)
            (report.updated if diff else report.unchanged).append(topic.topic_id)
        for name in _parse_list(entry.get("earlier_consultations")):
            self._link_earlier(topic, name, report)

    def _link_earlier(self, topic: Topic, name: str, report: ImportReport) -> None:
        """Link the minutes document whose title starts with (or equals) `name`, once."""
        rows = self.conn.execute("SELECT doc_id, title FROM documents WHERE title=? OR title LIKE ? "
                                 "ORDER BY doc_type='minutes' DESC, length(title)",
                                 (name, name.replace("%", "") + "%")).fetchall()
        if not rows:
            report.unresolved.append(name)
            return
        if rows[0]["doc_id"] not in {link.doc_id for link in topic.links_of("consultation")}:
            self.link(topic, "consultation", doc_id=rows[0]["doc_id"])

    def _validated(self, raw: dict) -> dict:
        return dict(title=_clean_title(raw.get("title")), format=normalise_format(raw.get("format")),
                    year=_parse_year(raw.get("year")), lead=(str(raw.get("lead")).strip() or None)
                    if raw.get("lead") else None,
                    sectors=_parse_list(raw.get("sectors")), keywords=_parse_list(raw.get("keywords")),
                    description=_clean_description(raw.get("description")),
                    step=parse_step(raw.get("step") or 1), step_dates=_step_dates(raw.get("step_dates")))


_CJK_PUNCT = "，。、；：？！“”‘’（）《》〔〕【】"


def _clean_description(value: Any) -> str:
    """Join lines; YAML folding leaves spaces after Chinese punctuation that nobody typed."""
    text = re.sub(r"\s*\n\s*", "", str(value or "")).strip()
    return re.sub(rf"(?<=[{_CJK_PUNCT}])[ \t]+|[ \t]+(?=[{_CJK_PUNCT}])", "", text)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


__all__ = ["FORMATS", "STEPS", "LINK_KINDS", "Topic", "TopicLink", "TopicService", "ImportReport",
           "InvalidTopic", "normalise_format", "parse_step"]
