"""The 协商工作台's forms for one topic: research tasks (staff add and edit them; members and
staff attach 调研报告 files), leaders' instructions (批示) and the 回头看 review.

Each form is a small `Panel` with its own status line, shown under the topic in
`kb.widgets.dashboard.CycleDashboard`. They only call `kb.cycle`, which checks the role again
(a hidden form is a courtesy, not the protection); in team mode the same calls go to the
service through `kb.remote`.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
from traitlets import Unicode

from indexer.loaders import SUPPORTED_SUFFIXES

from kb.cycle import TASK_KINDS
from kb.cycle.model import RATINGS
from kb.cycle.reports import check_file_name
from kb.textsafety import strip_bidi

from ._common import Panel, action, button, esc, status_html

NEW_TASK = ""
LABEL_WIDTH = "40px"
_ROW = widgets.Layout(grid_gap="8px", flex_flow="row wrap", align_items="center")


def _text(label: str, placeholder: str, width: str = "180px", *, first: bool = False) -> widgets.Text:
    """A text box with a Chinese label before it (a placeholder is gone once the box is filled);
    the `first` of a row lines its label up with the dropdowns' (任务, 对象) above and below."""
    return widgets.Text(description=label, placeholder=placeholder,
                        style={"description_width": LABEL_WIDTH if first else "initial"},
                        layout=widgets.Layout(width=width))


def _short(text: str, limit: int = 22) -> str:
    """An option's label cut to fit its dropdown, with an ellipsis rather than half a character."""
    return text if len(text) <= limit else text[:limit] + "…"


def _form_head(title: str) -> widgets.HTML:
    return widgets.HTML(f'<div class="xs-section-head" style="font-size:14px">{esc(title)}</div>')


class _TopicForm(Panel):
    """A form about the topic shown in the workbench; `changed` is called after a save."""

    topic_id = Unicode("", help="the topic the form writes to")

    def __init__(self, kb, changed: Callable[[], None] | None = None, **kwargs):
        super().__init__(kb, **kwargs)
        self.changed = changed or (lambda: None)
        self.layout.width = "100%"
        self.observe(lambda _c: self.load(), "topic_id")

    def load(self) -> None:
        """Fill the choices from the topic (subclasses)."""


class TaskForm(_TopicForm):
    """Staff: add a research task to the topic, or change one (title, kind, place, date,
    members, assignee, material)."""

    def __init__(self, kb, changed=None, **kwargs):
        super().__init__(kb, changed, **kwargs)
        self.task_choice = widgets.Dropdown(description="任务", style={"description_width": "40px"},
                                            layout=widgets.Layout(width="400px"))
        self.title = _text("名称", "任务名称，如 赴南塘县农村助餐点调研", "370px")
        self.kind = widgets.Dropdown(options=list(TASK_KINDS.values()), description="类型",
                                     style={"description_width": "initial"}, layout=widgets.Layout(width="160px"))
        self.place = _text("地点", "地点", "240px", first=True)
        self.date = _text("日期", "日期，如 2025-04-22", "190px")
        self.members = _text("委员", "参加委员，用顿号分隔", "300px")
        self.assignee = _text("负责人", "负责人", "170px")
        self.material = _text("资料", "要收集的资料", "100%", first=True)
        self.save_button = button("保存调研任务", icon="save")
        self.save_button.on_click(lambda _b: self.save())
        self.task_choice.observe(lambda _c: self._fill(), "value")
        self.busy_controls = [self.task_choice, self.save_button]
        self.children = [_form_head("调研任务（新增或修改）"),
                         widgets.HBox([self.task_choice, self.kind, self.title], layout=_ROW),
                         widgets.HBox([self.place, self.date, self.members, self.assignee], layout=_ROW),
                         self.material, widgets.HBox([self.save_button, self.status_bar], layout=_ROW)]
        self._tasks: dict = {}
        if not self.allow(self.save_button, "manage_cycle"):
            self.layout.display = "none"

    def load(self) -> None:
        if not self.topic_id or not self.user.can("manage_cycle"):
            return
        tasks = self.kb.cycle.plan(self.topic_id).tasks
        self._tasks = {t.task_id: t for t in tasks}
        self.task_choice.options = [("＋ 新建调研任务", NEW_TASK)] + [(_short(f"{t.kind_label}·{t.title}", 24), t.task_id)
                                                                  for t in tasks]
        self.task_choice.value = NEW_TASK
        self._fill()

    def _fill(self) -> None:
        task = self._tasks.get(self.task_choice.value)
        self.title.value = task.title if task else ""
        self.kind.value = task.kind_label if task else TASK_KINDS["visit"]
        self.place.value = (task.place or "") if task else ""
        self.date.value = (task.date or "") if task else ""
        self.members.value = "、".join(task.members) if task else ""
        self.assignee.value = (task.assignee or "") if task else ""
        self.material.value = task.material if task else ""

    @action("正在保存调研任务…")
    def save(self) -> None:
        fields = {"kind": self.kind.value, "place": self.place.value.strip(), "date": self.date.value.strip() or None,
                  "members": self.members.value, "assignee": self.assignee.value.strip(),
                  "material": self.material.value.strip()}
        if self.task_choice.value == NEW_TASK:
            task = self.kb.cycle.add_task(self.topic_id, self.title.value, **fields)
            verb = "已添加"
        else:
            task = self.kb.cycle.update_task(self.task_choice.value, title=self.title.value, **fields)
            verb = "已保存"
        self.load()
        self.task_choice.value = task.task_id
        self.changed()
        self.set_status(f"{verb}调研任务：{task.kind_label}·{task.title}", "success")


class ReportForm(_TopicForm):
    """A member (for the tasks they are on) or staff (any task of the topic) attaches a 调研报告
    file; it is indexed as a document of type 调研报告 and linked to the topic."""

    def __init__(self, kb, changed=None, **kwargs):
        super().__init__(kb, changed, **kwargs)
        self.task_choice = widgets.Dropdown(description="任务", style={"description_width": "40px"},
                                            layout=widgets.Layout(width="460px"))
        self.upload = widgets.FileUpload(accept=",".join(sorted(SUPPORTED_SUFFIXES)), multiple=False,
                                         description="选择报告文件", layout=widgets.Layout(width="150px"))
        self.upload.observe(lambda _c: self._picked(), "value")
        self.picked = widgets.HTML('<span class="xs-subtitle">未选择文件</span>')
        self.title = _text("标题", "报告标题（可空，默认取文件中的标题）", "360px", first=True)
        self.attach_button = button("上传调研报告", icon="upload")
        self.attach_button.on_click(lambda _b: self.attach())
        self.listing = widgets.HTML()
        self.busy_controls = [self.task_choice, self.upload, self.attach_button]
        self.children = [_form_head("上传调研报告（索引为“调研报告”，关联到议题，可加入资料汇编）"),
                         widgets.HBox([self.task_choice, self.upload, self.picked], layout=_ROW),
                         widgets.HBox([self.title, self.attach_button, self.status_bar], layout=_ROW),
                         self.listing]
        if not self.allow(self.attach_button, "update_own_tasks"):
            self.layout.display = "none"

    def _tasks(self):
        if self.user.can("manage_cycle"):
            return self.kb.cycle.plan(self.topic_id).tasks if self.topic_id else []
        return self.kb.cycle.my_tasks()

    def load(self) -> None:
        if not self.user.can("update_own_tasks"):
            return
        tasks = self._tasks()
        current = self.task_choice.value
        self.task_choice.options = [(_short(f"{t.kind_label}·{t.title}", 24) + f"（{t.status}）", t.task_id)
                                    for t in tasks]
        ids = [t.task_id for t in tasks]
        if ids:
            self.task_choice.value = current if current in ids else ids[0]
        rows = "".join(
            f"<li><b>{esc(r.title)}</b> <span class='xs-cite'>{esc(r.file_name)} · {esc(r.author or '')}"
            f" {esc(r.date or '')} · {esc(t.title)}</span></li>" for t in tasks for r in t.reports)
        self.listing.value = (f'<ul style="margin:4px 0 0 0;padding-left:20px">{rows}</ul>' if rows else
                              '<div class="xs-empty">还没有上传的调研报告</div>')
        if not tasks and not self.user.can("manage_cycle"):
            self.listing.value = '<div class="xs-empty">没有分派给您的调研任务，不能上传调研报告</div>'

    def _picked(self) -> None:
        files = list(self.upload.value or ())
        self.picked.value = (f'<span class="xs-subtitle">已选择：{esc(strip_bidi(files[0]["name"]))}</span>' if files
                             else '<span class="xs-subtitle">未选择文件</span>')

    @action("正在上传并索引调研报告…")
    def attach(self) -> None:
        files = list(self.upload.value or ())
        if not self.task_choice.value:
            self.set_status("请先选择一项调研任务", "warning")
            return
        if not files:
            self.set_status("请先选择报告文件", "warning")
            return
        item = files[0]
        task = self.kb.cycle.attach_report(self.task_choice.value, item["name"], content=bytes(item["content"]),
                                           title=self.title.value.strip() or None)
        kept = check_file_name(item["name"])  # the name as kept: no folders, no bidi controls
        report = next((r for r in task.reports if r.file_name == kept), None)
        self.upload.value = ()
        self.title.value = ""
        self.load()
        self.changed()
        self.set_status(f"已上传《{report.title if report else kept}》，已索引为“调研报告”并关联到议题", "success")


class OutcomeForms(_TopicForm):
    """Staff: a leader's instruction (批示) on the minutes or one proposal, and the 回头看 review."""

    def __init__(self, kb, changed=None, **kwargs):
        super().__init__(kb, changed, **kwargs)
        self.proposal_choice = widgets.Dropdown(description="对象", style={"description_width": "40px"},
                                                layout=widgets.Layout(width="380px"))
        self.leader = _text("领导", "批示领导，如 周明远市长", "210px")
        self.instruction_date = _text("日期", "批示日期", "160px")
        self.instruction_text = widgets.Textarea(placeholder="批示内容（照录原文）",
                                                 layout=widgets.Layout(width="100%", height="56px"))
        self.instruct_button = button("登记批示", icon="pencil-square-o")
        self.instruct_button.on_click(lambda _b: self._pressed("instruction", self.add_instruction))
        self.instruction_status = widgets.HTML()   # the result beside the button pressed
        self._place = "review"

        self.review_date = _text("日期", "回头看日期", "180px", first=True)
        self.reviewer = _text("人员", "回头看人员或单位", "220px")
        self.rating = widgets.Dropdown(options=[("未评价", "")] + [(r, r) for r in RATINGS], description="评价",
                                       style={"description_width": "initial"},
                                       layout=widgets.Layout(width="140px"))
        self.next_topic = widgets.Dropdown(description="转为", style={"description_width": "36px"},
                                           layout=widgets.Layout(width="300px"))
        self.findings = widgets.Textarea(placeholder="回头看发现：建议落实情况",
                                         layout=widgets.Layout(width="100%", height="56px"))
        self.followup = _text("后续", "后续安排（可空）", "100%", first=True)
        self.review_button = button("登记回头看", icon="check-square-o")
        self.review_button.on_click(lambda _b: self._pressed("review", self.add_review))
        self.busy_controls = [self.instruct_button, self.review_button]
        self.children = [
            _form_head("领导批示"),
            widgets.HBox([self.proposal_choice, self.leader, self.instruction_date], layout=_ROW),
            self.instruction_text, widgets.HBox([self.instruct_button, self.instruction_status], layout=_ROW),
            _form_head("回头看"),
            widgets.HBox([self.review_date, self.reviewer, self.rating, self.next_topic], layout=_ROW),
            self.findings, self.followup, widgets.HBox([self.review_button, self.status_bar], layout=_ROW)]
        if not all([self.allow(self.instruct_button, "manage_cycle"), self.allow(self.review_button, "manage_cycle")]):
            self.layout.display = "none"

    def load(self) -> None:
        if not self.topic_id or not self.user.can("manage_cycle"):
            return
        proposals = self.kb.cycle.proposals(self.topic_id)
        self.proposal_choice.options = [("整份协商纪要", "")] + [
            (_short(f"{n}. {p.text}"), p.proposal_id) for n, p in enumerate(proposals, start=1)]
        self.proposal_choice.value = ""
        self.next_topic.options = [("（不转为新议题）", "")] + [
            (f"{t.year or ''} {t.title}", t.topic_id) for t in self.kb.topics.list() if t.topic_id != self.topic_id]
        self.next_topic.value = ""

    def _pressed(self, place: str, act) -> None:
        self._place = place
        act()

    def _render_status(self, _change=None) -> None:
        """The status beside the button pressed: 登记批示 or 登记回头看."""
        html = status_html(self.status, self.status_kind)
        at_instruction = getattr(self, "_place", "review") == "instruction"
        self.status_bar.value = "" if at_instruction else html
        if hasattr(self, "instruction_status"):
            self.instruction_status.value = html if at_instruction else ""

    @action("正在登记批示…")
    def add_instruction(self) -> None:
        instruction = self.kb.cycle.add_instruction(self.topic_id, self.leader.value, self.instruction_text.value,
                                                    date=self.instruction_date.value.strip() or None,
                                                    proposal_id=self.proposal_choice.value or None)
        self.instruction_text.value = ""
        self.changed()
        what = "一条建议" if instruction.proposal_id else "协商纪要"
        self.set_status(f"已登记 {instruction.leader} 对{what}的批示", "success")

    @action("正在登记回头看…")
    def add_review(self) -> None:
        review = self.kb.cycle.add_review(self.topic_id, self.findings.value, date=self.review_date.value.strip() or None,
                                          reviewer=self.reviewer.value.strip(), rating=self.rating.value,
                                          followup=self.followup.value.strip(), next_topic=self.next_topic.value or None)
        self.findings.value = self.followup.value = ""
        self.changed()
        self.set_status("已登记回头看" + (f"（{review.rating}）" if review.rating else "")
                        + ("，并关联到下一年的议题" if review.next_topic_id else ""), "success")


__all__ = ["OutcomeForms", "ReportForm", "TaskForm"]
