"""`kb.cycle`: the consultation cycle of each topic, from plan to 回头看.

Every change runs in one `db.write` transaction with its audit entry. Staff manage the plan, the
speeches, the minutes and the outcome chain; members update the research tasks they are assigned
(and their reports) and sign up for topics on the year's menu (履职菜单); everyone signed in reads.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from indexer.metadata import parse_date

from ..errors import PermissionDenied, StaleEdit
from ..roles import User
from ..storage import Database
from ..storage import audit
from ..storage import cycle as rows
from ..storage import topics as topic_rows
from ..topics import STEPS, Topic, parse_step
from . import minutes as drafting
from . import reports as report_files
from .model import (NEXT_STATUS, OUTCOMES, RATINGS, SIGNUP_STATUSES, SPEAKER_ROLES, STATUSES,
                    TASK_KINDS, TASK_STATUSES, HandlingEntry, InvalidCycleEdit, MinutesNotFound, Instruction, Minutes, MinutesTheme, Plan, PlanStep,
                    Proposal, ResearchTask, Review, Signup, Speech, TaskReport, kind_key, today)


def _short_id(prefix: str, *parts: Any) -> str:
    return prefix + hashlib.sha1("\n".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:10]


def _date(value: Any, what: str) -> str | None:
    if value in (None, ""):
        return None
    iso = parse_date(str(value))
    if iso is None or len(iso) != 10:
        raise InvalidCycleEdit(f"{what}日期“{value}”无法识别", hint="写成 2025-04-18 或 2025年4月18日")
    return iso


def _names(value: Any) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).replace("，", ",").replace("、", ",").split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def _text(value: Any, what: str, limit: int = 20_000) -> str:
    text = str(value or "").strip()
    if not text:
        raise InvalidCycleEdit(f"{what}为空", hint=f"写明{what}")
    if len(text) > limit:
        raise InvalidCycleEdit(f"{what}过长（{len(text)} 字）", hint=f"不超过 {limit} 字")
    return text


class CycleService:
    """The plan, speeches, minutes and outcomes of the topics of one knowledge base (`kb.cycle`)."""

    def __init__(self, db: Database, user: User, *, topics, search: Callable | None = None,
                 export_minutes: Callable | None = None, export_report: Callable | None = None,
                 office: str | None = None, home: str | Path | None = None, index_files: Callable | None = None,
                 document: Callable | None = None):
        self.db = db
        self.user = user
        self.topics = topics          # TopicService: topics are named by id or title
        self.search = search          # (query, top_k, **filters) -> hits, for the minutes' policy passages
        self._export_minutes = export_minutes
        self._export_report = export_report
        self.office = office or "政协青溪市委员会办公室"
        # 调研报告 files: kept under `home`, indexed by `index_files(paths) -> IndexReport` (the caller
        # has checked who may attach them), read back with `document(doc_id)`
        self.home = Path(home) if home else None
        self._index_files = index_files
        self._document = document

    def _topic(self, ref: str | Topic) -> Topic:
        return self.topics.get(ref)

    # -- the plan -------------------------------------------------------------------------
    def plan(self, ref: str | Topic) -> Plan:
        """The topic's eight steps (with owner, due, done, note), its research tasks and sign-ups."""
        self.user.require("read")
        return self._plan(self.db.conn, self._topic(ref))

    def plans(self, year: int | None = None) -> list[Plan]:
        self.user.require("read")
        return [self._plan(self.db.conn, t) for t in self.topics.list(year)]

    def _plan(self, conn, topic: Topic) -> Plan:
        stored = {r["step"]: r for r in rows.step_rows(conn, topic.topic_id)}
        steps = []
        for number in range(1, len(STEPS) + 1):
            r = stored.get(number)
            steps.append(PlanStep(number, r["owner"], r["due"], r["done"], r["note"]) if r else PlanStep(number))
        return Plan(topic.topic_id, topic.title, topic.format, topic.year, steps,
                    self._with_reports(conn, [self._task(r) for r in rows.task_rows(conn, topic.topic_id)]),
                    [Signup(r["topic_id"], r["member"], r["status"], r["confirmed_by"])
                     for r in rows.signup_rows(conn, topic.topic_id)])

    def set_step(self, ref: str | Topic, step: int | str, *, owner: str | None = None, due: str | None = None,
                 done: str | None = None, note: str | None = None, undone: bool = False) -> PlanStep:
        """Set a step's owner, due date, done date or note; fields given as None stay as they are."""
        self.user.require("manage_cycle")
        number = parse_step(step)
        given = {"owner": owner, "due": _date(due, "截止"), "done": _date(done, "完成"), "note": note}
        given = {k: v for k, v in given.items() if v is not None}
        if undone:
            given["done"] = None
        topic = self._topic(ref)

        def work(conn) -> PlanStep:
            current = self._plan(conn, topic).steps[number - 1]
            values = {"owner": current.owner, "due": current.due, "done": current.done, "note": current.note}
            changes = {k: [values[k], v] for k, v in given.items() if values[k] != v}
            values.update(given)
            if changes:
                rows.upsert_step(conn, topic.topic_id, number, values, user=self.user.name)
                audit.record(conn, self.user, "plan.step", "plan", topic.topic_id, step=number,
                             name=STEPS[number - 1], changes=changes)
            return PlanStep(number, values["owner"], values["due"], values["done"], values["note"] or "")

        result = self.db.write(work, what="工作步骤")
        if "done" in given:  # the topic's own step number follows the plan (kb topic list shows it)
            current = self.plan(topic).current
            if self.user.can("manage_topics") and current.step != topic.step:
                self.topics.set_step(topic, current.step, date=current.done or result.done or None)
        return result

    # -- research tasks --------------------------------------------------------------------
    @staticmethod
    def _task(r: dict) -> ResearchTask:
        return ResearchTask(r["task_id"], r["topic_id"], r["kind"], r["title"], r["place"], r["date"], r["members"],
                            r["material"], r["assignee"], r["status"], r["report"])

    def add_task(self, ref: str | Topic, title: str, *, kind: str = "visit", place: str | None = None,
                 date: str | None = None, members: Iterable[str] | str = (), material: str = "",
                 assignee: str | None = None, task_id: str | None = None) -> ResearchTask:
        """A research task under 实施调研计划: where, when, which members, what to collect, who is assigned."""
        self.user.require("manage_cycle")
        key = kind_key(kind)
        if key is None:
            raise InvalidCycleEdit(f"未知调研任务类型“{kind}”", hint="可选：" + "、".join(TASK_KINDS.values()))
        topic = self._topic(ref)
        values = {"topic_id": topic.topic_id, "kind": key, "title": _text(title, "任务名称", 200), "place": place,
                  "date": _date(date, "任务"), "members": _names(members), "material": material or "",
                  "assignee": (assignee or "").strip() or None, "status": TASK_STATUSES[0], "report": ""}
        task_id = task_id or _short_id("k-", topic.topic_id, values["title"], values["date"])

        def work(conn) -> ResearchTask:
            if rows.insert_task(conn, task_id, values, user=self.user.name):
                audit.record(conn, self.user, "task.add", "task", task_id, topic_id=topic.topic_id,
                             title=values["title"], assignee=values["assignee"], members=values["members"])
            return self._task(rows.task_row(conn, task_id))

        return self.db.write(work, what="调研任务")

    def task(self, task_id: str) -> ResearchTask:
        self.user.require("read")
        row = rows.task_row(self.db.conn, task_id)
        if row is None:
            raise InvalidCycleEdit(f"没有编号为 {task_id} 的调研任务", hint="用 kb plan show 议题 查看任务编号")
        return self._with_reports(self.db.conn, [self._task(row)])[0]

    def my_tasks(self, name: str | None = None) -> list[ResearchTask]:
        """The tasks the user (or `name`, for staff) is assigned to or goes on."""
        self.user.require("read")
        name = name if name and self.user.can("manage_cycle") else self.user.name
        return self._with_reports(self.db.conn, [t for t in map(self._task, rows.task_rows(self.db.conn))
                                                 if t.involves(name)])

    def _with_reports(self, conn, tasks: list[ResearchTask]) -> list[ResearchTask]:
        """Each task with the 调研报告 files attached to it: the topic's 调研报告 links whose
        document lies in the task's folder."""
        if self.home is None:
            return tasks
        links: dict[str, list[dict]] = {}
        for task in tasks:
            if task.topic_id not in links:
                links[task.topic_id] = [r for r in topic_rows.link_rows(conn, task.topic_id)
                                        if r["kind"] == "research" and r["doc_id"]]
            files = report_files.files_of(report_files.task_folder(self.home, task.task_id))
            task.reports = [TaskReport(task.task_id, r["doc_id"], r["title"], files[r["doc_id"]], r["author"],
                                       r["date"], r["link_id"]) for r in links[task.topic_id] if r["doc_id"] in files]
        return tasks

    def update_task(self, task_id: str, *, status: str | None = None, report: str | None = None,
                    assignee: str | None = None, members: Iterable[str] | str | None = None,
                    title: str | None = None, kind: str | None = None, place: str | None = None,
                    date: str | None = None, material: str | None = None) -> ResearchTask:
        """Members update the tasks they are on (status, their 调研报告); staff change any task and
        any of its fields (title, kind, place, date, material, assignee, members)."""
        self.user.require("update_own_tasks")
        if status is not None and status not in TASK_STATUSES:
            raise InvalidCycleEdit(f"未知任务状态“{status}”", hint="可选：" + "、".join(TASK_STATUSES))
        staff_fields = {"assignee": assignee, "members": members, "title": title, "kind": kind, "place": place,
                        "date": date, "material": material}
        if any(v is not None for v in staff_fields.values()):
            self.user.require("manage_cycle")
        key = kind_key(kind) if kind is not None else None
        if kind is not None and key is None:
            raise InvalidCycleEdit(f"未知调研任务类型“{kind}”", hint="可选：" + "、".join(TASK_KINDS.values()))
        given = {"status": status, "report": report.strip() if report is not None else None,
                 "assignee": assignee.strip() or None if assignee is not None else None,
                 "members": _names(members) if members is not None else None,
                 "title": _text(title, "任务名称", 200) if title is not None else None, "kind": key,
                 "place": place.strip() if place is not None else None,
                 "date": _date(date, "任务") if date else None, "material": material}
        given = {k: v for k, v in given.items() if v is not None}
        if assignee is not None and not assignee.strip():
            given["assignee"] = None

        def work(conn) -> ResearchTask:
            row = rows.task_row(conn, task_id)
            if row is None:
                raise InvalidCycleEdit(f"没有编号为 {task_id} 的调研任务", hint="用 kb plan show 议题 查看任务编号")
            task = self._task(row)
            if not self.user.can("manage_cycle") and not task.involves(self.user.name):
                raise PermissionDenied(f"{self.user.role_label}（{self.user.name}）不能修改别人的调研任务",
                                       hint="只能更新分派给自己的任务；其他任务请找工作人员")
            changes = {k: [row[k], v] for k, v in given.items() if row[k] != v}
            if changes:
                rows.update_task(conn, task_id, {k: v for k, (_o, v) in changes.items()}, user=self.user.name)
                verb = "task.report" if "report" in changes else "task.edit"
                audit.record(conn, self.user, verb, "task", task_id, topic_id=task.topic_id,
                             changes={k: v if k != "report" else [len(v[0] or ""), len(v[1])]
                                      for k, v in changes.items()})
            return self._task(rows.task_row(conn, task_id))

        return self.db.write(work, what="调研任务")

    def attach_report(self, task_id: str, source: str | Path, *, content: bytes | None = None,
                      title: str | None = None, date: str | None = None) -> ResearchTask:
        """Attach a 调研报告 file to a research task: kept in the knowledge base's source folder,
        indexed as a document of type 调研报告 and linked to the task's topic as material (so the
        pack can take its passages). `content` is the file's bytes (an upload); without it the
        file is read from `source`. Members attach to the tasks they are on, staff to any; audited."""
        self.user.require("update_own_tasks")
        task = self.task(task_id)
        if not self.user.can("manage_cycle") and not task.involves(self.user.name):
            raise PermissionDenied(f"{self.user.role_label}（{self.user.name}）不能给别人的调研任务上传报告",
                                   hint="只能给分派给自己的任务上传；其他任务请找工作人员")
        if self.home is None or self._index_files is None:
            raise InvalidCycleEdit("这里不能接收调研报告文件", hint="在知识库所在的电脑或团队服务器上上传")
        name = report_files.check_file_name(Path(str(source)).name)
        title = report_files.check_title(title)
        if content is None:
            try:
                path = Path(source).expanduser()
                report_files.check_size(name, path.stat().st_size)   # before reading it all
                content = path.read_bytes()
            except (OSError, ValueError) as exc:
                raise InvalidCycleEdit(f"无法读取调研报告文件 {source}（{getattr(exc, 'strerror', None) or exc}）",
                                       hint="检查文件路径") from exc
        content = bytes(content)
        report_files.check_size(name, len(content))
        topic = self._topic(task.topic_id)
        folder = report_files.task_folder(self.home, task.task_id)
        self._check_new_report(topic, folder, name, content)
        on = _date(date, "报告") or today()
        path = report_files.save_report(folder, name, content,
                                        author=self.user.name, date=on, topic=topic.title, task=task.title,
                                        title=title)
        try:
            indexed = self._index_files([path])
        except BaseException:
            report_files.remove_report(path)
            raise
        doc_id = report_files.doc_id_of(path)
        problem = next((reason for where, reason in indexed.skipped if Path(where).name == name), None)
        if problem:
            report_files.remove_report(path)
            raise InvalidCycleEdit(f"调研报告《{name}》无法索引：{problem}", hint="另存为 .docx、.pdf 或 UTF-8 的 .txt 后再上传")
        report_files.keep_report(path)
        doc = self._document(doc_id)

        def work(conn) -> None:
            known = [r for r in topic_rows.link_rows(conn, topic.topic_id)
                     if r["kind"] == "research" and r["doc_id"] == doc_id]
            if not known:
                topic_rows.insert_link(conn, topic.topic_id, "research", doc_id=doc_id, title=doc.title, date=on,
                                       author=self.user.name, text=f"{task.kind_label}：{task.title}",
                                       user=self.user.name)
            audit.record(conn, self.user, "task.attach", "task", task.task_id, topic_id=topic.topic_id,
                         doc_id=doc_id, file=name, title=doc.title, replaced=bool(known))

        # The role check is above; on PostgreSQL a member's own role may not write topic links.
        self.db.for_user(User(self.user.name, "staff")).write(work, what="调研报告")
        return self.task(task.task_id)

    def _check_new_report(self, topic: Topic, folder: Path, name: str, content: bytes) -> None:
        """Refuse the same bytes already attached under another name (to any task of the topic), a
        name whose stem another report of the task has (they would share one sidecar), and a
        member replacing a report someone else attached."""
        folders = [report_files.task_folder(self.home, t.task_id) for t in self._plan(self.db.conn, topic).tasks]
        twin = report_files.same_file(folders, content, name)
        if twin:
            raise InvalidCycleEdit(f"这份调研报告已经上传过：《{twin}》与《{name}》内容相同",
                                   hint="修订后的报告请用原来的文件名上传，会替换旧版本")
        sharing = report_files.clash(folder, name)
        if sharing:
            raise InvalidCycleEdit(f"这项任务已有同名的调研报告《{sharing}》，《{name}》会与它混淆",
                                   hint="换一个文件名；修订后的报告请用原来的文件名上传")
        author = report_files.author_of(folder / name)
        if author and author != self.user.name and not self.user.can("manage_cycle"):
            raise PermissionDenied(f"《{name}》是{author}上传的，{self.user.role_label}（{self.user.name}）不能替换",
                                   hint="换一个文件名上传自己的报告，或请工作人员替换")

    # -- 履职菜单 ------------------------------------------------------------------------------
    def menu(self, year: int | None = None) -> list[dict]:
        """The year's topics with who signed up for each (履职菜单)."""
        self.user.require("read")
        return [{"topic_id": p.topic_id, "title": p.title, "format": p.format, "year": p.year,
                 "meeting_date": p.meeting_date, "signups": [s.as_dict() for s in p.signups]}
                for p in self.plans(year)]

    def sign_up(self, ref: str | Topic, member: str | None = None) -> Signup:
        """A member takes part in a topic of the menu; staff may sign up a member by name."""
        self.user.require("sign_up")
        name = (member if member and self.user.can("manage_cycle") else self.user.name).strip()
        topic = self._topic(ref)

        def work(conn) -> Signup:
            existing = {r["member"]: r for r in rows.signup_rows(conn, topic.topic_id)}
            if name in existing:
                r = existing[name]
                return Signup(topic.topic_id, name, r["status"], r["confirmed_by"])
            rows.upsert_signup(conn, topic.topic_id, name, SIGNUP_STATUSES[0])
            audit.record(conn, self.user, "plan.signup", "plan", topic.topic_id, member=name)
            return Signup(topic.topic_id, name, SIGNUP_STATUSES[0])

        return self.db.write(work, what="报名")

    def confirm_signup(self, ref: str | Topic, member: str) -> Signup:
        self.user.require("manage_cycle")
        topic = self._topic(ref)

        def work(conn) -> Signup:
            found = {r["member"]: r for r in rows.signup_rows(conn, topic.topic_id)}
            if member not in found:
                raise InvalidCycleEdit(f"{member} 没有报名议题 {topic.topic_id}", hint="先报名，再确认")
            if found[member]["status"] == SIGNUP_STATUSES[1]:
                return Signup(topic.topic_id, member, SIGNUP_STATUSES[1], found[member]["confirmed_by"])
            rows.upsert_signup(conn, topic.topic_id, member, SIGNUP_STATUSES[1], confirmed_by=self.user.name)
            audit.record(conn, self.user, "plan.confirm", "plan", topic.topic_id, member=member)
            return Signup(topic.topic_id, member, SIGNUP_STATUSES[1], self.user.name)

        return self.db.write(work, what="确认报名")

    # -- speeches ---------------------------------------------------------------------------
    def speeches(self, ref: str | Topic) -> list[Speech]:
        self.user.require("read")
        return self._speeches(self.db.conn, self._topic(ref).topic_id)

    @staticmethod
    def _speeches(conn, topic_id: str) -> list[Speech]:
        return [Speech(r["speech_id"], r["topic_id"], r["ordinal"], r["speaker"], r["speaker_role"], r["text"],
                       r["affiliation"], r["theme"], r["proposals"]) for r in rows.speech_rows(conn, topic_id)]

    def add_speech(self, ref: str | Topic, speaker: str, text: str, *, role: str = "member", affiliation: str = "",
                   theme: str = "", proposals: Iterable[dict | str] = ()) -> Speech:
        """Record a speech at the meeting (确定委员发言). `proposals` marks the spans of `text` that are
        proposals (each verbatim, optionally with its theme); without them the minutes take its
        proposing sentences."""
        self.user.require("manage_cycle")
        if role not in SPEAKER_ROLES:
            role = {label: key for key, label in SPEAKER_ROLES.items()}.get(role, "")
            if not role:
                raise InvalidCycleEdit("发言人身份只能是委员、专家、领导或部门", hint="member / expert / leader / department")
        text = _text(text, "发言内容")
        marked = []
        for p in proposals or ():
            p = {"text": p} if isinstance(p, str) else dict(p)
            span = str(p.get("text") or "").strip()
            if span not in text or not span:
                raise InvalidCycleEdit(f"标出的建议“{span[:30]}”不在 {speaker} 的发言原文中",
                                       hint="建议须逐字摘自发言原文")
            marked.append({"text": span, "theme": str(p.get("theme") or theme or "").strip()})
        topic = self._topic(ref)
        speech_id = _short_id("s-", topic.topic_id, speaker, text)
        values = {"speaker": _text(speaker, "发言人", 100), "speaker_role": role, "affiliation": affiliation,
                  "theme": theme, "text": text, "proposals": marked}

        def work(conn) -> Speech:
            if rows.insert_speech(conn, speech_id, topic.topic_id, values, user=self.user.name):
                audit.record(conn, self.user, "speech.add", "speech", speech_id, topic_id=topic.topic_id,
                             speaker=speaker, chars=len(text))
            return next(s for s in self._speeches(conn, topic.topic_id) if s.speech_id == speech_id)

        return self.db.write(work, what="发言")

    def remove_speech(self, ref: str | Topic, speech_id: str) -> None:
        self.user.require("manage_cycle")
        topic = self._topic(ref)

        def work(conn) -> None:
            if not rows.delete_speech(conn, topic.topic_id, speech_id):
                raise InvalidCycleEdit(f"议题 {topic.topic_id} 没有编号为 {speech_id} 的发言", hint="用 kb minutes speeches 查看")
            audit.record(conn, self.user, "speech.remove", "speech", speech_id, topic_id=topic.topic_id)

        self.db.write(work, what="删除发言")

    # -- minutes ------------------------------------------------------------------------------
    def minutes(self, ref: str | Topic, version: int | None = None) -> Minutes:
        """The newest (or a given) version of the topic's 协商纪要, with the instructions on it."""
        self.user.require("read")
        topic = self._topic(ref)
        row = rows.minutes_row(self.db.conn, topic.topic_id, version)
        if row is None:
            raise MinutesNotFound(f"议题“{topic.title}”还没有协商纪要" + (f"第 {version} 版" if version else ""),
                                  hint=f"先登记发言，再运行 kb minutes draft {topic.topic_id}")
        found = Minutes.from_row(row)
        found.instructions = [self._instruction(r) for r in rows.instruction_rows(self.db.conn, topic.topic_id)]
        return found

    def minutes_history(self, ref: str | Topic) -> list[dict]:
        self.user.require("read")
        return rows.minutes_versions(self.db.conn, self._topic(ref).topic_id)

    def draft_minutes(self, ref: str | Topic, expected_version: int | None = None) -> Minutes:
        """Draft (or redraft) the minutes from the speeches: facts, then proposals by theme, each with
        its speaker and the policy passage it builds on. Items staff edited or regrouped in the
        previous version stay as they left them. Saved as a new version."""
        self.user.require("manage_cycle")
        topic = self._topic(ref)
        conn = self.db.conn
        speeches = self._speeches(conn, topic.topic_id)
        if not speeches:
            raise InvalidCycleEdit(f"议题“{topic.title}”还没有登记发言，无法起草纪要",
                                   hint=f"先用 kb minutes speech {topic.topic_id} --speaker 姓名 --text 发言 登记")
        previous = rows.minutes_row(conn, topic.topic_id)
        keep, given_facts = {}, None
        if previous is not None:
            old = Minutes.from_row(previous)
            keep = {i.proposal_id: (i, t.theme) for t in old.themes for i in t.items}
            given_facts = old.facts
        # searching takes a while: done before the write transaction
        new_ids = {drafting.proposal_id(topic.topic_id, text) for s in speeches
                   for text, _theme in drafting.proposal_spans(s)}
        themes = drafting.draft_themes(topic.topic_id, speeches, self.search,
                                       keep={k: v for k, v in keep.items() if k in new_ids})
        plan = self._plan(conn, topic)
        content = Minutes(topic.topic_id, f"协商纪要：{topic.title}", 0,
                          drafting.facts(topic, plan, speeches, given_facts), themes)
        return self._save_minutes(topic, content, "重新起草" if previous else "起草", expected_version,
                                  "minutes.redraft" if previous else "minutes.draft")

    def _save_minutes(self, topic: Topic, minutes: Minutes, change: str, expected_version: int | None,
                      action: str) -> Minutes:
        def work(conn) -> Minutes:
            current = rows.minutes_row(conn, topic.topic_id)
            have = current["version"] if current else 0
            if expected_version is not None and have != int(expected_version):
                raise StaleEdit(f"该纪要已被 {current['created_by']} 于 {current['created_at'].replace('T', ' ')} 修改，请刷新后再改",
                                hint=f"现在是第 {have} 版，你改的是第 {expected_version} 版")
            ordinal = 0
            for theme in minutes.themes:
                for item in theme.items:
                    ordinal += 1
                    rows.upsert_proposal(conn, item.proposal_id, topic.topic_id, ordinal, theme.theme, item.text,
                                         {"speaker": item.speaker, "speaker_role": item.speaker_role,
                                          "affiliation": item.affiliation, "speech_id": item.speech_id},
                                         item.citation, user=self.user.name)
            rows.delete_unused_proposals(conn, topic.topic_id, [i.proposal_id for i in minutes.items])
            version = rows.insert_minutes(conn, topic.topic_id, minutes.content(), change, user=self.user.name)
            audit.record(conn, self.user, action, "minutes", topic.topic_id, version=version, change=change,
                         proposals=ordinal)
            return Minutes.from_row(rows.minutes_row(conn, topic.topic_id, version))

        return self.db.write(work, what="协商纪要")

    def edit_minutes(self, ref: str | Topic, *, expected_version: int | None = None, fact: tuple[str, str] | None = None,
                     move: tuple[str, str] | None = None, drop: str | None = None,
                     text: tuple[str, str] | None = None) -> Minutes:
        """Staff's edits, each a new version: set a fact (label, value; empty value removes it), move a
        proposal to another theme (proposal id or number, theme), drop a proposal, or reword one
        (marked as edited by staff, so it no longer counts as the speaker's verbatim words)."""
        self.user.require("manage_cycle")
        topic = self._topic(ref)
        minutes = self.minutes(topic)
        changes = []
        if fact:
            label, value = (str(x).strip() for x in fact)
            minutes.facts = [f for f in minutes.facts if f[0] != label] + ([[label, value]] if value else [])
            changes.append(f"{'修改' if value else '删除'}“{label}”")
        if move:
            item, old_theme = self._find_item(minutes, move[0])
            new_theme = _text(move[1], "主题", 60)
            old_theme.items.remove(item)
            target = next((t for t in minutes.themes if t.theme == new_theme), None)
            if target is None:
                target = MinutesTheme(new_theme)
                minutes.themes.append(target)
            target.items.append(item)
            changes.append(f"第{move[0]}条移到“{new_theme}”")
        if drop:
            item, theme = self._find_item(minutes, drop)
            theme.items.remove(item)
            changes.append(f"删去 {item.speaker} 的一条建议")
        if text:
            item, _theme = self._find_item(minutes, text[0])
            item.text, item.edited = _text(text[1], "建议文字", 2000), True
            changes.append(f"修改 {item.speaker} 的一条建议的文字")
        if not changes:
            raise InvalidCycleEdit("没有要改的内容", hint="给出 --fact、--move、--drop 或 --text")
        minutes.themes = [t for t in minutes.themes if t.items]
        return self._save_minutes(topic, minutes, "；".join(changes), expected_version, "minutes.edit")

    @staticmethod
    def _find_item(minutes: Minutes, ref: str):
        ref = str(ref).strip()
        number = int(ref) if ref.isdigit() else None
        n = 0
        for theme in minutes.themes:
            for item in theme.items:
                n += 1
                if item.proposal_id == ref or n == number:
                    return item, theme
        raise InvalidCycleEdit(f"纪要中没有第 {ref} 条建议", hint="用 kb minutes show 议题 查看建议序号或编号")

    def export_minutes(self, ref: str | Topic, fmt: str, out: str | Path, version: int | None = None):
        """The minutes as Word (docx), HTML or Markdown; the export is audited."""
        self.user.require("read")
        minutes = self.minutes(ref, version)
        result = self._export_minutes(minutes, fmt, out, office=self.office, user=self.user.name)
        self.db.write(lambda conn: audit.record(conn, self.user, "minutes.export", "minutes", minutes.topic_id,
                                                version=minutes.version, format=fmt, path=str(result.path)),
                      what="审计记录")
        return result

    # -- proposals and their outcomes ---------------------------------------------------------
    @staticmethod
    def _instruction(r: dict) -> Instruction:
        return Instruction(r["instruction_id"], r["topic_id"], r["proposal_id"], r["leader"], r["date"], r["text"])

    def proposals(self, ref: str | Topic | None = None) -> list[Proposal]:
        """The proposals of a topic's minutes (of every topic when `ref` is None), each with its
        instructions and handling history."""
        self.user.require("read")
        conn = self.db.conn
        topic_id = self._topic(ref).topic_id if ref is not None else None
        found = [Proposal(r["proposal_id"], r["topic_id"], r["ordinal"], r["theme"], r["text"], r["source"],
                          r["citation"]) for r in rows.proposal_rows(conn, topic_id)]
        by_id = {p.proposal_id: p for p in found}
        for r in rows.instruction_rows(conn, topic_id):
            if r["proposal_id"] in by_id:
                by_id[r["proposal_id"]].instructions.append(self._instruction(r))
        for r in rows.handling_rows(conn, list(by_id) if topic_id else None):
            if r["proposal_id"] in by_id:
                by_id[r["proposal_id"]].handling.append(HandlingEntry(
                    r["entry_id"], r["proposal_id"], r["department"], r["seq"], r["status"], r["date"], r["reply"],
                    r["created_by"]))
        return found

    def proposal(self, proposal_id: str) -> Proposal:
        self.user.require("read")
        row = rows.proposal_row(self.db.conn, proposal_id)
        if row is None:
            raise InvalidCycleEdit(f"没有编号为 {proposal_id} 的建议", hint="用 kb outcome list 议题 查看建议编号")
        return next(p for p in self.proposals(row["topic_id"]) if p.proposal_id == proposal_id)

    def resolve_proposal(self, ref: str | Topic, proposal: str | int) -> str:
        """A proposal's id from its number in the topic's newest minutes (1, 2, …) or its id."""
        text = str(proposal).strip()
        if not text.isdigit():
            return self.proposal(text).proposal_id
        items = self.minutes(ref).items
        if not 1 <= int(text) <= len(items):
            raise InvalidCycleEdit(f"纪要中没有第 {text} 条建议（共 {len(items)} 条）", hint="用 kb minutes show 议题 查看序号")
        return items[int(text) - 1].proposal_id

    def instructions(self, ref: str | Topic) -> list[Instruction]:
        self.user.require("read")
        return [self._instruction(r) for r in rows.instruction_rows(self.db.conn, self._topic(ref).topic_id)]

    def add_instruction(self, ref: str | Topic, leader: str, text: str, *, date: str | None = None,
                        proposal_id: str | None = None) -> Instruction:
        """A leader's instruction (批示) on the minutes, or on one proposal."""
        self.user.require("manage_cycle")
        topic = self._topic(ref)
        if proposal_id:
            proposal = self.proposal(proposal_id)
            if proposal.topic_id != topic.topic_id:
                raise InvalidCycleEdit(f"建议 {proposal_id} 不属于议题 {topic.topic_id}")
        leader, text, date = _text(leader, "批示领导", 100), _text(text, "批示内容"), _date(date, "批示")
        instruction_id = _short_id("i-", topic.topic_id, proposal_id, leader, date, text)

        def work(conn) -> Instruction:
            if rows.insert_instruction(conn, instruction_id, topic.topic_id, proposal_id, leader, date, text,
                                       user=self.user.name):
                audit.record(conn, self.user, "proposal.instruct", "proposal", proposal_id or topic.topic_id,
                             topic_id=topic.topic_id, leader=leader, date=date)
            return Instruction(instruction_id, topic.topic_id, proposal_id, leader, date, text)

        return self.db.write(work, what="批示")

    def assign(self, proposal_id: str, departments: Iterable[str] | str, *, date: str | None = None,
               note: str = "") -> Proposal:
        """Send a proposal to departments (交办)."""
        depts = _names(departments)
        if not depts:
            raise InvalidCycleEdit("没有给出交办部门", hint="例如 --dept 市民政局,市财政局")
        for dept in depts:
            self.set_status(proposal_id, dept, "交办", date=date, reply=note)
        return self.proposal(proposal_id)

    def set_status(self, proposal_id: str, department: str, status: str, *, date: str | None = None,
                   reply: str = "") -> Proposal:
        """Move a department's handling of a proposal on: 交办 → 办理中 → 已采纳/部分采纳/未采纳 → 已反馈.
        Any other move is refused; the reply (办理答复) is kept with the step."""
        self.user.require("manage_cycle")
        if status not in STATUSES:
            raise InvalidCycleEdit(f"未知办理状态“{status}”", hint="可选：" + " → ".join(STATUSES))
        department = _text(department, "部门", 100)
        date = _date(date, "办理") or None

        def work(conn) -> None:
            row = rows.proposal_row(conn, proposal_id)
            if row is None:
                raise InvalidCycleEdit(f"没有编号为 {proposal_id} 的建议", hint="用 kb outcome list 议题 查看建议编号")
            history = [h for h in rows.handling_rows(conn, [proposal_id]) if h["department"] == department]
            current = history[-1]["status"] if history else None
            if status not in NEXT_STATUS[current]:
                allowed = "、".join(NEXT_STATUS[current]) or "（已办结，不能再改）"
                raise InvalidCycleEdit(f"{department} 办理这条建议的状态不能从“{current or '未交办'}”改为“{status}”",
                                       hint=f"下一步可以是：{allowed}")
            rows.insert_handling(conn, "h-" + uuid.uuid4().hex[:12], proposal_id, department, status, date,
                                 (reply or "").strip(), user=self.user.name)
            verb = "proposal.assign" if status == "交办" else "proposal.status"
            audit.record(conn, self.user, verb, "proposal", proposal_id, topic_id=row["topic_id"],
                         department=department, status=[current, status], date=date)

        self.db.write(work, what="办理状态")
        return self.proposal(proposal_id)

    # -- 回头看 ------------------------------------------------------------------------------------
    def reviews(self, ref: str | Topic | None = None) -> list[Review]:
        self.user.require("read")
        topic_id = self._topic(ref).topic_id if ref is not None else None
        return [Review(r["review_id"], r["topic_id"], r["date"], r["findings"], r["reviewer"], r["rating"],
                       r["followup"], r["next_topic_id"]) for r in rows.review_rows(self.db.conn, topic_id)]

    def add_review(self, ref: str | Topic, findings: str, *, date: str | None = None, reviewer: str = "",
                   rating: str = "", followup: str = "", next_topic: str | None = None) -> Review:
        """A 回头看 record; `next_topic` (id or title of next year's topic or supervision theme) links
        the whole history forward."""
        self.user.require("manage_cycle")
        if rating and rating not in RATINGS:
            raise InvalidCycleEdit(f"未知评价“{rating}”", hint="可选：" + "、".join(RATINGS))
        topic = self._topic(ref)
        next_id = self._topic(next_topic).topic_id if next_topic else None
        values = {"date": _date(date, "回头看"), "reviewer": reviewer, "findings": _text(findings, "回头看发现"),
                  "rating": rating, "followup": followup, "next_topic_id": next_id}
        review_id = _short_id("r-", topic.topic_id, values["date"], values["findings"])

        def work(conn) -> tuple[Review, bool]:
            added = rows.insert_review(conn, review_id, topic.topic_id, values, user=self.user.name)
            if added:
                audit.record(conn, self.user, "review.add", "review", review_id, topic_id=topic.topic_id,
                             rating=rating, next_topic_id=next_id)
            return Review(review_id, topic.topic_id, values["date"], values["findings"], reviewer, rating, followup,
                          next_id), added

        review, added = self.db.write(work, what="回头看")
        if added and next_id and self.user.can("manage_topics"):
            # next year's topic carries the history: its dossier's 编辑说明 lists the topic's links
            self.topics.link(next_id, "followup", title=topic.title, date=review.date, author=reviewer or None,
                             text=self._outcome_summary(topic, review))
        return review

    def _outcome_summary(self, topic: Topic, review: Review) -> str:
        proposals = self.proposals(topic)
        adopted = sum(1 for p in proposals if any(p.outcome(d) in OUTCOMES[:2] for d in p.departments))
        leaders = "、".join(dict.fromkeys(i.leader for i in self.instructions(topic)))
        parts = [f"协商纪要建议 {len(proposals)} 条，已采纳或部分采纳 {adopted} 条"]
        if leaders:
            parts.append(f"{leaders}作出批示")
        parts.append(f"回头看{('（' + review.rating + '）') if review.rating else ''}：{review.findings}")
        if review.followup:
            parts.append(f"后续：{review.followup}")
        return "；".join(parts)

    def history(self, ref: str | Topic) -> list[dict]:
        """Earlier consultations whose 回头看 opened this topic: their proposals, outcomes and reviews
        (for the dossier's 往期协商 and 编辑说明)."""
        self.user.require("read")
        topic = self._topic(ref)
        out = []
        for review in self.reviews():
            if review.next_topic_id != topic.topic_id:
                continue
            earlier = self._topic(review.topic_id)
            proposals = self.proposals(earlier)
            out.append({"topic_id": earlier.topic_id, "title": earlier.title, "year": earlier.year,
                        "proposals": len(proposals),
                        "adopted": sum(1 for p in proposals if any(p.outcome(d) in OUTCOMES[:2] for d in p.departments)),
                        "instructions": [i.as_dict() for i in self.instructions(earlier)],
                        "review": review.as_dict()})
        return out

    def topic_record(self, ref: str | Topic) -> dict:
        """Everything about a topic's cycle (`kb plan show --json`): steps, tasks, speeches, proposals
        with instructions, status history and reviews."""
        topic = self._topic(ref)
        plan = self.plan(topic)
        return dict(plan.as_dict(), speeches=[s.as_dict() for s in self.speeches(topic)],
                    proposals=[p.as_dict() for p in self.proposals(topic)],
                    instructions=[i.as_dict() for i in self.instructions(topic)],
                    reviews=[r.as_dict() for r in self.reviews(topic)], history=self.history(topic))

    # -- the dashboard ---------------------------------------------------------------------------
    def dashboard(self, year: int | None = None, on: str | None = None):
        """The year's figures (`kb.cycle.dashboard.Dashboard`): plan by format, step progress and
        overdue steps, proposals by status, adoption by department and by year, 回头看 due."""
        from .dashboard import dashboard_for

        self.user.require("read")
        return dashboard_for(self, self.topics, year, on)

    def export_report(self, year: int | None, fmt: str, out: str | Path, on: str | None = None):
        """The year's report (HTML or Word) with the dashboard's charts as images; audited."""
        self.user.require("read")
        board = self.dashboard(year, on)
        result = self._export_report(board, fmt, out, office=self.office, user=self.user.name)
        self.db.write(lambda conn: audit.record(conn, self.user, "report.export", "report", str(board.year),
                                                format=fmt, path=str(result.path)), what="审计记录")
        return result

    # -- import -----------------------------------------------------------------------------------
    def import_yaml(self, path: str | Path) -> dict:
        """Load plans, tasks, sign-ups, speeches, minutes, instructions, handling and reviews from a
        YAML file (format: the `earlier_topics` and `cycle` parts of corpus/topics.yaml). Running it again adds nothing twice."""
        from .importer import import_cycle

        self.user.require("manage_cycle")
        report = import_cycle(self, Path(path))
        self.db.write(lambda conn: audit.record(conn, self.user, "cycle.import", "cycle", None, path=str(path),
                                                topics=report["topics"], added=report["topics_added"]),
                      what="审计记录")
        return report
