"""「协商工作台」: the year's consultation cycle at a glance, and one topic's plan and outcomes.

Top: the year's figures, the plan on a timeline by format, each topic's step progress with its
overdue steps, proposals by status and adoption rate by department (matplotlib charts, pandas
tables), and what is due for 回头看. Below: one topic — its eight steps, research tasks, the
minutes' proposals with their instructions and handling. Members see the tasks they are on and
update them (status, 调研报告 text and files) and sign up for a topic of the year's menu (履职菜单); staff
draft the minutes and export them and the year's report, add and edit research tasks, move a
proposal's handling along its chain, record leaders' instructions and the 回头看 (the forms are in
`kb.widgets.cycle_panels`). Everything goes through `kb.cycle`, which checks the role again.
"""
from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
from traitlets import Int, Unicode

from kb.cycle import NEXT_STATUS, STATUSES, TASK_STATUSES, dashboard_for
from kb.topics import STEPS
from kb.cycle_exports import charts, figures

from ._common import Panel, action, button, css, download_link, esc, heading, table_html
from .cycle_panels import OutcomeForms, ReportForm, TaskForm

ROLE_NOTES = {
    "staff": "工作人员：维护八步工作计划、起草协商纪要、跟踪批示和办理，导出年度报告。",
    "member": "委员：查看年度计划和办理情况，更新分派给自己的调研任务，报名参加履职菜单中的议题。",
    "expert": "专家：查看年度计划、协商纪要和办理情况。",
}


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure style="margin:4px 0"><img alt="{esc(caption)}" style="max-width:100%" '
            f'src="data:image/png;base64,{data}"></figure>')


# Between the departments of a 办理 cell: one per line (the cell does not wrap, so 市农业农村局：办理中
# never breaks inside a name); the invisible separator outlives escaping and becomes <br>.
_LINE = "\u2063"


def _short(text: str, limit: int = 20) -> str:
    """An option's label cut to fit its dropdown, with an ellipsis rather than half a character."""
    return text if len(text) <= limit else text[:limit] + "…"


def _percent(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """`column` (a share from 0 to 1) written as 67%; no decision yet stays empty."""
    out = df.copy()
    out[column] = [f"{v:.0%}" if v is not None and v == v else "" for v in df[column]]
    return out


class CycleDashboard(Panel):
    """The 协商工作台 tab; `year` and `topic_id` are its state."""

    year = Int(0, help="the year shown (0: the newest year with topics)")
    topic_id = Unicode("", help="the topic shown below the figures")

    def __init__(self, kb, **kwargs):
        super().__init__(kb, **kwargs)
        self.layout.width = "100%"
        self.board = None
        self._proposals: dict = {}
        self._tasks: dict = {}
        # an action's result is shown beside the row whose button started it, not only at the top
        self.staff_line, self.task_line = widgets.HTML(), widgets.HTML()
        self._status_place: str | None = None
        self.year_choice = widgets.Dropdown(description="年度", style={"description_width": "40px"},
                                            layout=widgets.Layout(width="160px"))
        self.refresh_button = button("刷新", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.report_html_button = button("导出年度报告（网页）", icon="download")
        self.report_docx_button = button("导出年度报告（Word）", icon="file-word-o")
        self.report_html_button.on_click(lambda _b: self.export_report("html"))
        self.report_docx_button.on_click(lambda _b: self.export_report("docx"))
        self.figures = widgets.HTML()
        self.charts = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.tables = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.download = widgets.HTML()

        self.topic_choice = widgets.Dropdown(description="议题", style={"description_width": "40px"},
                                             layout=widgets.Layout(width="560px"))
        self.topic_view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.draft_button = button("起草协商纪要", icon="pencil")
        self.draft_button.on_click(lambda _b: self.draft_minutes())
        self.minutes_button = button("导出纪要Word", icon="file-word-o")
        self.minutes_button.on_click(lambda _b: self.export_minutes())
        self.signup_button = button("报名参加", icon="hand-paper-o")
        self.signup_button.on_click(lambda _b: self.sign_up())

        # staff: move a step on, and a proposal's handling along its chain
        self.step_choice = widgets.Dropdown(options=[(f"{n}. {name}", n) for n, name in enumerate(STEPS, start=1)],
                                            description="步骤", style={"description_width": "40px"},
                                            layout=widgets.Layout(width="230px"))
        self.step_done = widgets.Text(placeholder="完成日期，如 2025-06-19", description="完成",
                                      style={"description_width": "initial"}, layout=widgets.Layout(width="230px"))
        self.step_button = button("标记完成", icon="check")
        self.step_button.on_click(lambda _b: self.mark_step())
        self.proposal_choice = widgets.Dropdown(description="建议", style={"description_width": "40px"},
                                                layout=widgets.Layout(width="330px"))
        self.department = widgets.Text(placeholder="部门，如 市民政局", description="部门",
                                       style={"description_width": "initial"}, layout=widgets.Layout(width="190px"))
        self.status_choice = widgets.Dropdown(options=list(STATUSES), description="状态",
                                              style={"description_width": "initial"}, layout=widgets.Layout(width="150px"))
        self.reply = widgets.Text(placeholder="日期、答复（可空）：2025-10-15 已纳入办法修订", description="答复",
                                  style={"description_width": "40px"}, layout=widgets.Layout(width="100%"))
        self.status_button = button("保存办理状态", icon="save")
        self.status_button.on_click(lambda _b: self.save_status())
        self.next_hint = widgets.HTML()
        self.proposal_choice.observe(lambda _c: self._show_next(), "value")
        self.department.observe(lambda _c: self._show_next(), "value")
        self.staff_box = widgets.VBox([
            widgets.HBox([self.step_choice, self.step_done, self.step_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            widgets.HBox([self.proposal_choice, self.department, self.status_choice, self.status_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            self.next_hint, self.reply, self.staff_line])
        if not self.user.can("manage_cycle"):
            self.staff_box.layout.display = "none"

        self.my_tasks = widgets.HTML()
        self.task_choice = widgets.Dropdown(description="任务", style={"description_width": "40px"},
                                            layout=widgets.Layout(width="420px"))
        self.task_status = widgets.Dropdown(options=list(TASK_STATUSES), description="状态",
                                            style={"description_width": "40px"}, layout=widgets.Layout(width="160px"))
        self.task_report = widgets.Textarea(placeholder="调研报告或情况说明（只写自己调研所得）",
                                            layout=widgets.Layout(width="100%", height="80px"))
        self.task_button = button("保存任务进展", icon="save")
        self.task_button.on_click(lambda _b: self.save_task())
        self.task_choice.observe(lambda _c: self._fill_task(), "value")
        # the topic's forms (kb.widgets.cycle_panels): each checks the role again in kb.cycle
        self.task_form = TaskForm(kb, changed=self._changed)
        self.report_form = ReportForm(kb, changed=self._changed)
        self.outcome_forms = OutcomeForms(kb, changed=self._changed)
        self.task_box = widgets.VBox([heading("我的调研任务"), self.my_tasks,
                                      widgets.HBox([self.task_choice, self.task_status, self.task_button]),
                                      self.task_report, self.task_line]
                                     + ([self.report_form] if self.user.role == "member" else []))
        self.forms = widgets.VBox([self.task_form] + ([] if self.user.role == "member" else [self.report_form])
                                  + [self.outcome_forms], layout=widgets.Layout(width="100%"))

        self.allow(self.draft_button, "manage_cycle")
        self.allow(self.signup_button, "sign_up")
        if not self.user.can("update_own_tasks"):
            self.task_box.layout.display = "none"
        self.busy_controls = [self.refresh_button, self.report_html_button, self.report_docx_button,
                              self.draft_button, self.minutes_button, self.signup_button, self.task_button,
                              self.step_button, self.status_button]
        self.children = [
            css(), heading("协商工作台", ROLE_NOTES.get(self.user.role, "")),
            widgets.HBox([self.year_choice, self.refresh_button, self.report_html_button, self.report_docx_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            self.status_bar, self.download, self.figures, self.charts, self.tables, self.task_box,
            widgets.HTML('<div class="xs-section-head">议题的工作计划与成果</div>'),
            widgets.HBox([self.topic_choice, self.signup_button, self.draft_button, self.minutes_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            self.staff_box, self.topic_view, self.forms,
        ]
        self._load_choices()
        self.year_choice.observe(lambda c: self._set_year(c["new"]), "value")
        self.topic_choice.observe(lambda c: setattr(self, "topic_id", c["new"] or ""), "value")
        self.observe(lambda _c: self.refresh(), "year")
        self.observe(lambda _c: self.show_topic(), "topic_id")
        self.refresh()

    # -- state ----------------------------------------------------------------------------
    def _load_choices(self) -> None:
        topics = self.kb.topics.list()
        years = sorted({t.year for t in topics if t.year}, reverse=True)
        self.year_choice.options = [(f"{y}年", y) for y in years]
        if years and self.year not in years:
            self.year = years[0]
        if years:
            self.year_choice.value = self.year
        self._topics = topics

    def _set_year(self, value) -> None:
        if value:
            self.year = int(value)

    # -- the year -------------------------------------------------------------------------
    @action("正在统计…")
    def refresh(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """The year's figures and the topic afresh (also after an action saved something: an
        action's callback cannot start another action)."""
        board = dashboard_for(self.kb.cycle, self.kb.topics, self.year or None)
        self.board = board
        self.figures.value = '<div style="display:flex;gap:10px;flex-wrap:wrap;margin:6px 0">' + "".join(
            f'<div class="xs-card" style="min-width:120px"><div class="xs-card-title" style="font-size:22px;'
            f'color:#7f1d1d">{esc(v)}</div><div class="xs-cite">{esc(k)}</div></div>' for k, v in figures(board)) + "</div>"
        pictures = charts(board)
        self.charts.value = "".join(_img(png, caption) for caption, png in pictures.values()) or \
            '<div class="xs-empty">这一年还没有工作计划（请工作人员导入或填写八步工作计划）</div>'
        plan = board.plan[["议题", "协商形式", "会议日期", "已完成步骤", "当前步骤", "逾期步骤"]]
        due = board.review_due[board.review_due["状态"] != "已回头看"] if not board.review_due.empty else board.review_due
        self.tables.value = (
            '<div class="xs-section-head">年度协商计划</div>'
            + table_html(plan, "这一年还没有议题", nowrap=["协商形式", "会议日期", "已完成步骤"])
            + '<div class="xs-section-head">各部门办理和采纳</div>'
            + table_html(_percent(board.adoption, "采纳率"), "还没有交办的意见建议", nowrap=["交办", "采纳率"])
            + '<div class="xs-section-head">回头看</div>'
            + table_html(due, "没有到期的回头看", nowrap=["会议日期", "回头看应在", "状态"]))
        self._refresh_tasks()
        year_topics = [t for t in self._topics if t.year == board.year]
        self.topic_choice.options = [(t.title, t.topic_id) for t in year_topics]
        if year_topics and self.topic_id not in {t.topic_id for t in year_topics}:
            self.topic_choice.value = year_topics[0].topic_id
        else:
            self.show_topic()
        self.set_status("")

    def _refresh_tasks(self) -> None:
        if not self.user.can("update_own_tasks"):
            return
        tasks = self.kb.cycle.my_tasks()
        titles = {t.topic_id: t.title for t in self._topics}
        df = pd.DataFrame([{"议题": titles.get(t.topic_id, t.topic_id), "任务": f"{t.kind_label}·{t.title}", "日期": t.date or "",
                            "地点": t.place or "", "状态": t.status,
                            "调研报告": "、".join(r.title for r in t.reports)} for t in tasks])
        self.my_tasks.value = table_html(df, "没有分派给您的调研任务", nowrap=["日期", "状态"])
        self._tasks = {t.task_id: t for t in tasks}
        current = self.task_choice.value
        self.task_choice.options = [(_short(f"{t.title}（{t.status}）", 28), t.task_id) for t in tasks]
        # ipywidgets 8 leaves a dropdown empty when its options change: keep the task, else the first
        self.task_choice.value = current if current in self._tasks else (tasks[0].task_id if tasks else None)
        self._fill_task()
        self.task_box.layout.display = "flex" if tasks or self.user.role == "member" else "none"
        if self.user.role == "member":
            self.report_form.load()

    def _fill_task(self) -> None:
        """The chosen task's status and report, to be updated."""
        task = self._tasks.get(self.task_choice.value)
        if task is not None:
            self.task_status.value = task.status
            self.task_report.value = task.report or ""

    def _render_status(self, _change=None) -> None:
        super()._render_status()
        lines = {"staff": getattr(self, "staff_line", None), "task": getattr(self, "task_line", None)}
        if self.status_kind == "busy":   # a new action: its place is set when it runs
            self._status_place = None
        for place, line in lines.items():
            if line is not None:
                line.value = self.status_bar.value if place == getattr(self, "_status_place", None) else ""

    def _changed(self) -> None:
        """A form saved something: the tasks and the topic are shown afresh."""
        self._refresh_tasks()
        self.show_topic()

    def _show_next(self) -> None:
        """Which statuses the chosen proposal may move to at the department typed (交办 → 办理中 → …)."""
        proposal = self._proposals.get(self.proposal_choice.value) if self.proposal_choice.value else None
        department = self.department.value.strip()
        if proposal is None:
            self.next_hint.value = ""
            return
        current = proposal.departments.get(department) if department else None
        allowed = "、".join(NEXT_STATUS[current]) or "（已办结）"
        where = f"{department}：现为“{current or '未交办'}”，" if department else "新交办部门："
        self.next_hint.value = f'<span class="xs-cite">{esc(where)}下一步可以是 {esc(allowed)}</span>'

    # -- one topic --------------------------------------------------------------------------
    def show_topic(self) -> None:
        if not self.topic_id:
            self.topic_view.value = ""
            return
        cycle = self.kb.cycle
        plan = cycle.plan(self.topic_id)
        late = {s.step for s in plan.overdue()}
        steps = pd.DataFrame([{"步骤": f"{s.step}. {s.name}", "负责": s.owner or "", "期限": s.due or "",
                               "完成": s.done or ("逾期" if s.step in late else ""), "备注": s.note}
                              for s in plan.steps])
        tasks = pd.DataFrame([{"任务": f"{t.kind_label}·{t.title}", "日期": t.date or "", "地点": t.place or "",
                               "委员": "、".join(t.members), "负责": t.assignee or "", "状态": t.status,
                               "调研报告": "、".join(f"《{r.title}》（{r.author or ''}）" for r in t.reports)}
                              for t in plan.tasks])
        proposals = cycle.proposals(self.topic_id)
        self._proposals = {p.proposal_id: p for p in proposals}
        for form in (self.task_form, self.report_form, self.outcome_forms):
            form.topic_id = self.topic_id
        rows = []
        for n, p in enumerate(proposals, start=1):
            handling = _LINE.join(f"{d}：{s}" for d, s in p.departments.items())
            rows.append({"序号": n, "主题": p.theme, "建议": p.text, "提出人": p.source.get("speaker", ""),
                         "政策依据": p.citation.get("title", "") if p.citation else "",
                         "批示": "；".join(f"{i.leader}：{i.text}" for i in p.instructions),
                         "办理": handling or "未交办"})
        self.proposal_choice.options = [(_short(f"{n}. {p.text}", 17), p.proposal_id) for n, p in enumerate(proposals, start=1)]
        if self.proposal_choice.value not in self._proposals:
            self.proposal_choice.value = proposals[0].proposal_id if proposals else None
        self._show_next()
        signed = "、".join(f"{s.member}（{s.status}）" for s in plan.signups) or "暂无"
        self.topic_view.value = (
            f'<div class="xs-subtitle">{esc(plan.format)} · 八步工作法已完成 {plan.done_count}/8，当前：'
            f'{esc(plan.current.name if plan.done_count < 8 else "全部完成")}'
            f'{"，逾期 " + str(len(late)) + " 步" if late else ""} · 报名：{esc(signed)}</div>'
            + table_html(steps, nowrap=["期限", "完成"])
            + '<div class="xs-section-head">调研任务</div>' + table_html(tasks, "还没有调研任务", nowrap=["日期", "状态"])
            + '<div class="xs-section-head">纪要中的意见建议及办理</div>'
            + table_html(pd.DataFrame(rows), "还没有协商纪要", nowrap=["序号", "提出人", "办理"]).replace(_LINE, "<br>")
            + self._instructions_and_reviews())

    def _instructions_and_reviews(self) -> str:
        cycle = self.kb.cycle
        on_minutes = [i for i in cycle.instructions(self.topic_id) if not i.proposal_id]
        reviews = cycle.reviews(self.topic_id)
        if not on_minutes and not reviews:
            return ""
        df = pd.DataFrame([{"类别": "对纪要的批示", "日期": i.date or "", "人员": i.leader, "内容": i.text, "评价": ""}
                           for i in on_minutes]
                          + [{"类别": "回头看", "日期": r.date or "", "人员": r.reviewer, "评价": r.rating,
                              "内容": r.findings + (f"（后续：{r.followup}）" if r.followup else "")} for r in reviews])
        return ('<div class="xs-section-head">批示与回头看</div>'
                + table_html(df[["类别", "日期", "人员", "评价", "内容"]], nowrap=["类别", "日期", "评价"]))

    # -- actions ---------------------------------------------------------------------------------
    @action("正在起草协商纪要…")
    def draft_minutes(self) -> None:
        minutes = self.kb.cycle.draft_minutes(self.topic_id)
        cited = sum(1 for i in minutes.items if i.citation)
        self.show_topic()
        self.outcome_forms.load()
        self.set_status(f"已起草协商纪要第 {minutes.version} 版：{len(minutes.items)} 条建议，{cited} 条找到政策依据",
                        "success")

    @action("正在导出协商纪要…")
    def export_minutes(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="kb-minutes-"))
        result = self.kb.cycle.export_minutes(self.topic_id, "docx", folder)
        self.download.value = download_link(result.path)
        self.set_status(f"已导出协商纪要第 {result.version} 版，点击下方链接下载", "success")

    @action("正在生成年度报告…")
    def export_report(self, fmt: str) -> None:
        folder = Path(tempfile.mkdtemp(prefix="kb-report-"))
        result = self.kb.cycle.export_report(self.year or None, fmt, folder)
        self.download.value = download_link(result.path)
        self.set_status("已生成年度协商工作报告，点击下方链接下载", "success")

    @action("正在报名…")
    def sign_up(self) -> None:
        signup = self.kb.cycle.sign_up(self.topic_id)
        self.show_topic()
        self.set_status(f"{signup.member} 已报名（{signup.status}），等待工作人员确认", "success")

    @action("正在保存…")
    def save_task(self) -> None:
        self._status_place = "task"
        if not self.task_choice.value:
            self.set_status("请先选择一项调研任务", "warning")
            return
        report = self.task_report.value.strip() or None
        task = self.kb.cycle.update_task(self.task_choice.value, status=self.task_status.value, report=report)
        self._refresh_tasks()
        self.show_topic()
        self.set_status(f"已保存：{task.title}（{task.status}）", "success")

    @action("正在保存…")
    def mark_step(self) -> None:
        self._status_place = "staff"
        step = self.kb.cycle.set_step(self.topic_id, self.step_choice.value, done=self.step_done.value.strip() or None)
        self._refresh()
        self.set_status(f"第 {step.step} 步 {step.name}：" + (f"{step.done} 完成" if step.done else "未填完成日期"),
                        "success" if step.done else "warning")

    @action("正在保存…")
    def save_status(self) -> None:
        self._status_place = "staff"
        if not self.proposal_choice.value:
            self.set_status("这个议题还没有纪要中的建议", "warning")
            return
        date, _sep, reply = self.reply.value.strip().partition(" ")
        if date and not date[:4].isdigit():  # no date given: it is all reply
            date, reply = "", self.reply.value.strip()
        proposal = self.kb.cycle.set_status(self.proposal_choice.value, self.department.value, self.status_choice.value,
                                            date=date or None, reply=reply)
        self._refresh()
        self.set_status(f"{self.department.value.strip()}：{self.status_choice.value}（这条建议现为 {proposal.status}）",
                        "success")
