"""The consultation cycle as data: the eight steps as a plan, research tasks, speeches, the
minutes (协商纪要), proposals and what became of them (批示 → 交办 → 办理 → 反馈 → 回头看).

Plain dataclasses with `as_dict` for `--json`; the service (`kb.cycle.service`) builds them
from the rows of `kb.storage.cycle`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from ..errors import InvalidTopic, TopicNotFound
from ..topics import STEPS

class InvalidCycleEdit(InvalidTopic):
    """A change to the plan, the minutes or the outcome chain that cannot be made as given."""


class MinutesNotFound(TopicNotFound):
    """The topic has no drafted minutes (协商纪要) yet, or not this version."""


MEETING_STEP = 6   # 抓好会议服务: the meeting's date is this step's date
MINUTES_STEP = 7   # 报送协商纪要
REVIEW_AFTER_DAYS = 365  # 回头看 a year after the meeting

TASK_KINDS = {"visit": "实地调研", "trip": "考察学习", "material": "资料收集", "report": "调研报告", "other": "其他"}
_TASK_KIND_ALIASES = {label: key for key, label in TASK_KINDS.items()} | {
    "调研": "visit", "视察": "visit", "走访": "visit", "学习": "trip", "考察": "trip", "外出考察": "trip",
    "资料": "material", "收集资料": "material", "报告": "report"}
TASK_STATUSES = ("待办", "进行中", "已完成")
SIGNUP_STATUSES = ("已报名", "已确认")

# The outcome chain of one proposal at one department: 交办 → 办理中 → 已采纳/部分采纳/未采纳 → 已反馈.
ASSIGNED, HANDLING, ADOPTED, PARTLY, REJECTED, ANSWERED = "交办", "办理中", "已采纳", "部分采纳", "未采纳", "已反馈"
STATUSES = (ASSIGNED, HANDLING, ADOPTED, PARTLY, REJECTED, ANSWERED)
OUTCOMES = (ADOPTED, PARTLY, REJECTED)
NEXT_STATUS = {None: (ASSIGNED,), ASSIGNED: (HANDLING,), HANDLING: OUTCOMES,
               ADOPTED: (ANSWERED,), PARTLY: (ANSWERED,), REJECTED: (ANSWERED,), ANSWERED: ()}
NOT_ASSIGNED = "未交办"
RATINGS = ("好", "较好", "一般", "差")
SPEAKER_ROLES = {"member": "委员", "expert": "专家", "leader": "领导", "department": "部门"}


def kind_key(value: str | None) -> str | None:
    text = (value or "visit").strip()
    return text if text in TASK_KINDS else _TASK_KIND_ALIASES.get(text)


def today() -> str:
    return dt.date.today().isoformat()


def add_days(iso: str, days: int) -> str:
    return (dt.date.fromisoformat(iso) + dt.timedelta(days=days)).isoformat()


@dataclass
class PlanStep:
    """One of the eight steps: who owns it, when it is due, when it was done."""

    step: int
    owner: str | None = None
    due: str | None = None
    done: str | None = None
    note: str = ""

    @property
    def name(self) -> str:
        return STEPS[self.step - 1]

    def overdue(self, on: str | None = None) -> bool:
        return bool(self.due and not self.done and self.due < (on or today()))

    def as_dict(self, on: str | None = None) -> dict:
        return dict(asdict(self), name=self.name, overdue=self.overdue(on))


@dataclass
class TaskReport:
    """A 调研报告 file a member attached to a research task: stored in the knowledge base's
    source folder, indexed as a document of type 调研报告 and linked to the topic as material."""

    task_id: str
    doc_id: str
    title: str
    file_name: str
    author: str | None = None
    date: str | None = None
    link_id: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ResearchTask:
    """A task of 实施调研计划: a site visit, a study trip, material to collect, a report to write."""

    task_id: str
    topic_id: str
    kind: str
    title: str
    place: str | None = None
    date: str | None = None
    members: list[str] = field(default_factory=list)
    material: str = ""
    assignee: str | None = None
    status: str = "待办"
    report: str = ""
    reports: list[TaskReport] = field(default_factory=list)   # the 调研报告 files attached

    @property
    def kind_label(self) -> str:
        return TASK_KINDS.get(self.kind, self.kind)

    def involves(self, name: str) -> bool:
        return name == self.assignee or name in self.members

    def as_dict(self) -> dict:
        return dict(asdict(self), kind_label=self.kind_label)


@dataclass
class Signup:
    topic_id: str
    member: str
    status: str
    confirmed_by: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    """A topic's eight steps with their tasks and the members who signed up (履职菜单)."""

    topic_id: str
    title: str
    format: str
    year: int | None
    steps: list[PlanStep]
    tasks: list[ResearchTask] = field(default_factory=list)
    signups: list[Signup] = field(default_factory=list)

    @property
    def done_count(self) -> int:
        return sum(1 for s in self.steps if s.done)

    @property
    def current(self) -> PlanStep:
        """The first step not done (the last one when all are)."""
        return next((s for s in self.steps if not s.done), self.steps[-1])

    def overdue(self, on: str | None = None) -> list[PlanStep]:
        return [s for s in self.steps if s.overdue(on)]

    @property
    def meeting_date(self) -> str | None:
        step = self.steps[MEETING_STEP - 1]
        return step.done or step.due

    def as_dict(self, on: str | None = None) -> dict:
        return {"topic_id": self.topic_id, "title": self.title, "format": self.format, "year": self.year,
                "steps": [s.as_dict(on) for s in self.steps], "done": self.done_count,
                "current": self.current.name, "meeting_date": self.meeting_date,
                "overdue": [s.name for s in self.overdue(on)],
                "tasks": [t.as_dict() for t in self.tasks], "signups": [s.as_dict() for s in self.signups]}


@dataclass
class Speech:
    """What a member or expert said at the meeting (确定委员发言), with the proposals staff marked in it."""

    speech_id: str
    topic_id: str
    ordinal: int
    speaker: str
    speaker_role: str
    text: str
    affiliation: str = ""
    theme: str = ""
    proposals: list[dict] = field(default_factory=list)  # [{text (verbatim from `text`), theme}]

    @property
    def role_label(self) -> str:
        return SPEAKER_ROLES.get(self.speaker_role, self.speaker_role)

    def as_dict(self) -> dict:
        return dict(asdict(self), role_label=self.role_label)


@dataclass
class Instruction:
    """A leader's instruction (批示) on the minutes or on one proposal."""

    instruction_id: str
    topic_id: str
    proposal_id: str | None
    leader: str
    date: str | None
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class HandlingEntry:
    """One step of a department's handling of a proposal, with its reply."""

    entry_id: str
    proposal_id: str
    department: str
    seq: int
    status: str
    date: str | None
    reply: str = ""
    created_by: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Review:
    """回头看: a year on, what became of the consultation; may open next year's topic."""

    review_id: str
    topic_id: str
    date: str | None
    findings: str
    reviewer: str = ""
    rating: str = ""
    followup: str = ""
    next_topic_id: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Proposal:
    """One proposal of the minutes, traced to its speaker and the passage it builds on."""

    proposal_id: str
    topic_id: str
    ordinal: int
    theme: str
    text: str
    source: dict           # speaker, speaker_role, affiliation, speech_id
    citation: dict         # doc_id, title, formatted, quote, start, end (empty when none was found)
    instructions: list[Instruction] = field(default_factory=list)
    handling: list[HandlingEntry] = field(default_factory=list)

    def history(self, department: str) -> list[HandlingEntry]:
        return [h for h in self.handling if h.department == department]

    @property
    def departments(self) -> dict[str, str]:
        """Each department it was sent to → its current status."""
        out: dict[str, str] = {}
        for entry in self.handling:
            out[entry.department] = entry.status
        return out

    def outcome(self, department: str) -> str | None:
        """已采纳 / 部分采纳 / 未采纳 as the department decided (kept once it has 已反馈)."""
        return next((h.status for h in reversed(self.history(department)) if h.status in OUTCOMES), None)

    @property
    def status(self) -> str:
        """The least advanced status among its departments (未交办 when sent nowhere)."""
        current = list(self.departments.values())
        if not current:
            return NOT_ASSIGNED
        return min(current, key=STATUSES.index)

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in ("proposal_id", "topic_id", "ordinal", "theme", "text", "source",
                                                 "citation")},
                "status": self.status, "departments": self.departments,
                "outcomes": {d: self.outcome(d) for d in self.departments},
                "instructions": [i.as_dict() for i in self.instructions],
                "status_history": [h.as_dict() for h in self.handling]}


@dataclass
class MinutesItem:
    proposal_id: str
    text: str
    speaker: str
    speaker_role: str
    affiliation: str = ""
    speech_id: str | None = None
    citation: dict = field(default_factory=dict)
    edited: bool = False

    @property
    def byline(self) -> str:
        role = SPEAKER_ROLES.get(self.speaker_role, self.speaker_role)
        return f"{self.speaker}{role}" + (f"（{self.affiliation}）" if self.affiliation else "")


@dataclass
class MinutesTheme:
    theme: str
    items: list[MinutesItem] = field(default_factory=list)


@dataclass
class Minutes:
    """A version of a topic's 协商纪要: the consultation's facts, then the proposals by theme."""

    topic_id: str
    title: str
    version: int
    facts: list[list[str]]
    themes: list[MinutesTheme]
    change: str = ""
    created_at: str = ""
    created_by: str = ""
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def items(self) -> list[MinutesItem]:
        return [item for theme in self.themes for item in theme.items]

    def content(self) -> dict:
        """What is stored: facts and themes."""
        return {"title": self.title, "facts": self.facts,
                "themes": [{"theme": t.theme, "items": [asdict(i) for i in t.items]} for t in self.themes]}

    @classmethod
    def from_row(cls, row: dict) -> "Minutes":
        content = row["content"]
        themes = [MinutesTheme(t["theme"], [MinutesItem(**i) for i in t["items"]]) for t in content["themes"]]
        return cls(row["topic_id"], content["title"], row["version"], [list(f) for f in content["facts"]], themes,
                   row["change"], row["created_at"], row["created_by"])

    def as_dict(self) -> dict:
        return dict(self.content(), topic_id=self.topic_id, version=self.version, change=self.change,
                    created_at=self.created_at, created_by=self.created_by,
                    instructions=[i.as_dict() for i in self.instructions])
