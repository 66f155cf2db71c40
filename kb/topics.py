"""Consultation topics (协商议题): what is consulted, in which format, and where it stands
in the eight-step method (八步工作法), with links to earlier consultations and their
minutes (协商纪要), leaders' instructions (批示) and follow-up reviews (回头看).

Topics live in the knowledge base's SQLite file next to the documents (rows in
`kb.storage.topics`). Every change is written together with its audit entry and bumps
the topic's version, so an edit made on an older version can be refused. A topic is
named by its id (a short slug) or by its exact title.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from indexer.metadata import parse_date

from .errors import InvalidTopic, StaleEdit, TopicNotFound
from .roles import User
from .storage import Database, Store
from .storage import audit
from .storage import topics as rows

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

# research: a member's 调研报告 attached to a research task (kb.cycle), indexed as a document
LINK_KINDS = {"consultation": "往期协商及纪要", "instruction": "领导批示", "followup": "回头看", "research": "调研报告"}
_LINK_ALIASES = {"minutes": "consultation", "纪要": "consultation", "往期协商": "consultation",
                 "协商纪要": "consultation", "批示": "instruction", "领导批示": "instruction",
                 "回头看": "followup", "follow-up": "followup", "调研报告": "research"}

_EDITABLE = rows.EDITABLE_COLUMNS

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
    updated_by: str = ""
    version: int = 1  # goes up by one with every edit; an edit may name the version it was made on

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


# -- the service ---------------------------------------------------------------
class TopicService:
    """Add, list, show and edit the topics of one knowledge base (`kb.topics`).

    Every change runs in one `db.write` transaction: the topic is read there, only the
    fields the caller changed are written, its version goes up by one, and the audit
    entry lands with the change. Edits from several processes at once are all kept."""

    def __init__(self, db: Database, user: User, store: Store):
        self.db = db
        self.user = user
        self.store = store  # document lookups for links

    # -- reading ----------------------------------------------------------
    def get(self, ref: str | Topic) -> Topic:
        """The topic with this id or exact title; `TopicNotFound` names close matches."""
        return self._load(self.db.conn, ref)

    def list(self, year: int | None = None) -> list[Topic]:
        conn = self.db.conn
        return [self._topic(conn, row) for row in rows.topic_rows(conn, year)]

    def _load(self, conn, ref: str | Topic) -> Topic:
        key = str((ref.topic_id if isinstance(ref, Topic) else ref) or "").strip()
        row = rows.topic_row(conn, key)
        if row is None:
            raise TopicNotFound(f"没有议题“{key}”", hint=self._suggestion(conn, key))
        return self._topic(conn, row)

    @staticmethod
    def _suggestion(conn, key: str) -> str:
        known = rows.id_titles(conn)
        if not known:
            return "还没有任何议题：用 kb topic add 或 kb topic import corpus/topics.yaml 添加"
        close = [(i, t) for i, t in known if key and (key in t or key in i)]
        names = "；".join(f"{i}（{t}）" for i, t in (close or known)[:5])
        return ("可能是：" if close else "已有议题：") + names + "。用编号或完整标题指定"

    @staticmethod
    def _topic(conn, row: dict) -> Topic:
        links = [TopicLink(r["link_id"], r["kind"], r["doc_id"], r["title"], r["date"], r["author"], r["text"])
                 for r in rows.link_rows(conn, row["topic_id"])]
        return Topic(topic_id=row["topic_id"], title=row["title"], format=row["format"], year=row["year"],
                     lead=row["lead"], sectors=row["sectors"], keywords=row["keywords"],
                     description=row["description"], step=row["step"],
                     step_dates={int(k): v for k, v in row["step_dates"].items()},
                     links=links, extra=row["extra"], created_at=row["created_at"],
                     created_by=row["created_by"], updated_at=row["updated_at"],
                     version=row["version"], updated_by=row["updated_by"] or row["created_by"])

    # -- writing ----------------------------------------------------------
    def add(self, title: str, *, format: str = "其他", year: int | str | None = None, lead: str | None = None,
            sectors: Iterable[str] | str = (), keywords: Iterable[str] | str = (), description: str = "",
            step: int | str = 1, step_dates: dict | None = None, topic_id: str | None = None,
            extra: dict | None = None) -> Topic:
        """Create a topic; the id is `topic_id` if given, else derived from the title."""
        self.user.require("manage_topics")
        values = _validated(dict(title=title, format=format, year=year, lead=lead, sectors=sectors,
                                 keywords=keywords, description=description, step=step,
                                 step_dates=step_dates or {}))
        return self.db.write(lambda conn: self._add(conn, values, topic_id, extra), what="议题")

    def _add(self, conn, values: dict, topic_id: str | None, extra: dict | None) -> Topic:
        topic_id = (topic_id or "").strip() or _slug(values["title"])
        if not re.fullmatch(r"[\w\-.]{1,64}", topic_id):
            raise InvalidTopic(f"议题编号“{topic_id}”含有不能用的字符", hint="只用字母、数字、连字符，例如 laonian-zhucan-2025")
        clash = rows.clashing(conn, topic_id, values["title"])
        if clash:
            raise InvalidTopic(f"议题已存在：{clash[0]}（{clash[1]}）", hint="用 kb topic edit 修改已有议题")
        rows.insert(conn, topic_id, values, user=self.user.name, extra=extra)
        audit.record(conn, self.user, "topic.add", "topic", topic_id, title=values["title"])
        return self._load(conn, topic_id)

    def edit(self, ref: str | Topic, expected_version: int | None = None, step_date: str | None = None,
             **changes) -> Topic:
        """Change fields (title, format, year, lead, sectors, keywords, description, step, step_dates);
        a field given as None is left as it is.

        Moving to another step records `step_date` (default today) for it unless it has a date.
        With `expected_version`, an edit of a topic someone has changed since raises `StaleEdit`."""
        return self._edit(ref, changes, expected_version, step_date)[0]

    def set_step(self, ref: str | Topic, step: int | str, date: str | None = None,
                 expected_version: int | None = None) -> Topic:
        """Move the topic to `step` (number or name), recording the date (default today)."""
        return self.edit(ref, expected_version, step_date=date or time.strftime("%Y-%m-%d"), step=step)

    def _edit(self, ref: str | Topic, changes: dict, expected_version: int | None = None,
              step_date: str | None = None) -> tuple[Topic, dict]:
        """The edited topic and what changed ({field: [old, new]}); nothing is written when nothing changes."""
        self.user.require("manage_topics")
        unknown = set(changes) - set(_EDITABLE)
        if unknown:
            raise InvalidTopic(f"不能修改字段：{'、'.join(sorted(unknown))}", hint="可改：" + "、".join(_EDITABLE))
        values = _validated({k: v for k, v in changes.items() if v is not None}, only_given=True)
        if step_date is not None:
            if "step" not in values:
                raise InvalidTopic("给出步骤日期时要同时给出步骤", hint="例如 --step 3 --step-date 2025-04-01")
            step_date = _parse_date(step_date, "步骤")
        key = ref.topic_id if isinstance(ref, Topic) else ref
        return self.db.write(lambda conn: self._apply_edit(conn, key, values, expected_version, step_date),
                             what="议题修改")

    def _apply_edit(self, conn, key: str, values: dict, expected_version: int | None,
                    step_date: str | None) -> tuple[Topic, dict]:
        """Inside the write transaction: the diff against the row as it is now, and only that written."""
        topic = self._load(conn, key)
        if expected_version is not None and topic.version != int(expected_version):
            raise StaleEdit(f"该议题已被 {topic.updated_by} 于 {topic.updated_at.replace('T', ' ')} 修改，请刷新后再改",
                            hint=f"现在是第 {topic.version} 版，你改的是第 {expected_version} 版")
        new = dict(values)
        if "step" in new:
            dates = new.get("step_dates", topic.step_dates)
            if step_date:
                dates = {**dates, new["step"]: step_date}
            elif new["step"] != topic.step and new["step"] not in dates:
                dates = {**dates, new["step"]: time.strftime("%Y-%m-%d")}
            new["step_dates"] = dates
        diff = {k: [getattr(topic, k), v] for k, v in new.items() if getattr(topic, k) != v}
        if not diff:
            return topic, diff
        if "title" in diff and rows.title_taken(conn, new["title"], topic.topic_id):
            raise InvalidTopic(f"已有同名议题“{new['title']}”", hint="换一个标题")
        rows.update(conn, topic.topic_id, {k: new_value for k, (_old, new_value) in diff.items()},
                    user=self.user.name)
        audit.record(conn, self.user, "topic.edit", "topic", topic.topic_id, changes=diff)
        return self._load(conn, topic.topic_id), diff

    def link(self, ref: str | Topic, kind: str, *, doc_id: str | None = None, title: str | None = None,
             text: str = "", date: str | None = None, author: str | None = None) -> TopicLink:
        """Attach an earlier consultation (doc of its minutes), a 批示 or a 回头看 record."""
        self.user.require("manage_topics")
        kind = _LINK_ALIASES.get(kind, kind)
        if kind not in LINK_KINDS:
            raise InvalidTopic(f"未知关联类型“{kind}”",
                               hint="可选 consultation（往期协商及纪要）、instruction（领导批示）、followup（回头看）")
        if doc_id:
            doc, _chunks = self.store.document_row(doc_id)  # DocumentNotFound names the id
            title = title or doc["title"]
            date = date or doc["date"]
        text = (text or "").strip()
        if not (doc_id or text or title):
            raise InvalidTopic("关联记录为空", hint="给出文档编号（--doc），或批示、回头看的内容（--text）")
        link = TopicLink(0, kind, doc_id, title or "", _parse_date(date, "关联记录") if date else None, author, text)
        key = ref.topic_id if isinstance(ref, Topic) else ref
        return self.db.write(lambda conn: self._link(conn, self._load(conn, key), link), what="关联记录")

    def _link(self, conn, topic: Topic, link: TopicLink) -> TopicLink:
        link.link_id = rows.insert_link(conn, topic.topic_id, link.kind, doc_id=link.doc_id, title=link.title,
                                        date=link.date, author=link.author, text=link.text, user=self.user.name)
        audit.record(conn, self.user, "topic.link", "topic", topic.topic_id, kind=link.kind, doc_id=link.doc_id,
                     title=link.title, link_id=link.link_id)
        return link

    def unlink(self, ref: str | Topic, link_id: int) -> None:
        self.user.require("manage_topics")
        key = ref.topic_id if isinstance(ref, Topic) else ref

        def work(conn) -> None:
            topic = self._load(conn, key)
            if not rows.delete_link(conn, topic.topic_id, int(link_id)):
                raise InvalidTopic(f"议题 {topic.topic_id} 没有编号为 {link_id} 的关联记录",
                                   hint="用 kb topic show 查看关联记录编号")
            audit.record(conn, self.user, "topic.unlink", "topic", topic.topic_id, link_id=int(link_id))

        self.db.write(work, what="取消关联")

    # -- import -----------------------------------------------------------
    def import_yaml(self, path: str | Path) -> ImportReport:
        """Load topics from a YAML file (`topics:` list, as in corpus/topics.yaml); running it again
        changes nothing. Earlier consultations named by title are linked to the minutes documents.
        Each topic is written in one transaction with its links."""
        self.user.require("manage_topics")
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
        for n, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict) or not entry.get("title"):
                raise InvalidTopic(f"议题文件 {path} 第 {n} 条没有标题（title）")
        report = ImportReport()
        for entry in entries:
            self._import_one(entry, report)
        return report

    def _import_one(self, entry: dict, report: ImportReport) -> None:
        known = {"id", "title", "format", "year", "lead", "sectors", "keywords", "description",
                 "current_step", "step", "step_dates", "earlier_consultations", "current_step_name"}
        values = _validated(dict(title=entry["title"], format=entry.get("format"), year=entry.get("year"),
                                 lead=entry.get("lead"), sectors=entry.get("sectors"),
                                 keywords=entry.get("keywords"), description=entry.get("description") or "",
                                 step=entry.get("current_step") or entry.get("step") or 1,
                                 step_dates=entry.get("step_dates") or {}))
        topic_id = str(entry.get("id") or "").strip() or None
        earlier = {name: self.store.documents_titled(name) for name in _parse_list(entry.get("earlier_consultations"))}

        def work(conn) -> tuple[str, str]:  # (the report's list, topic id): the report is filled once it commits
            existing = rows.clashing(conn, topic_id or "", values["title"])
            if existing is None:
                topic = self._add(conn, values, topic_id, {k: v for k, v in entry.items() if k not in known})
                outcome = "added"
            else:
                topic, diff = self._apply_edit(conn, existing[0], values, None, None)
                outcome = "updated" if diff else "unchanged"
            linked = {link.doc_id for link in topic.links_of("consultation")}
            for docs in earlier.values():
                if docs and docs[0]["doc_id"] not in linked:  # the minutes whose title starts with the name, once
                    doc, _chunks = self.store.document_row(docs[0]["doc_id"])
                    self._link(conn, topic, TopicLink(0, "consultation", doc["doc_id"], doc["title"], doc["date"]))
                    linked.add(doc["doc_id"])
            return outcome, topic.topic_id

        outcome, done = self.db.write(work, what="议题导入")
        getattr(report, outcome).append(done)
        report.unresolved += [name for name, docs in earlier.items() if not docs]


def _validated(raw: dict, only_given: bool = False) -> dict:
    """Checked and normalised field values; with `only_given`, just the fields in `raw`."""
    checks = dict(title=_clean_title, format=normalise_format, year=_parse_year,
                  lead=lambda v: (str(v).strip() or None) if v else None,
                  sectors=_parse_list, keywords=_parse_list, description=_clean_description,
                  step=lambda v: parse_step(v or 1), step_dates=_step_dates)
    return {name: check(raw.get(name)) for name, check in checks.items() if not only_given or name in raw}


_CJK_PUNCT = "，。、；：？！“”‘’（）《》〔〕【】"


def _clean_description(value: Any) -> str:
    """Join lines; YAML folding leaves spaces after Chinese punctuation that nobody typed."""
    text = re.sub(r"\s*\n\s*", "", str(value or "")).strip()
    return re.sub(rf"(?<=[{_CJK_PUNCT}])[ \t]+|[ \t]+(?=[{_CJK_PUNCT}])", "", text)


__all__ = ["FORMATS", "STEPS", "LINK_KINDS", "Topic", "TopicLink", "TopicService", "ImportReport",
           "InvalidTopic", "normalise_format", "parse_step"]
