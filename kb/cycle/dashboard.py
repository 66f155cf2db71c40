"""The year at a glance: the consultation plan by format and date, each topic's step progress and
overdue steps, the proposals by status, adoption by department and by year, and what is due for
回头看. Figures are pandas tables; charts and exports draw them (`kb.cycle_exports`).

Adoption rate = (已采纳 + 部分采纳) / proposals the department has decided on (已采纳, 部分采纳 or
未采纳, kept after 已反馈); a proposal sent to two departments counts once for each.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..topics import STEPS
from .model import ADOPTED, NOT_ASSIGNED, PARTLY, REJECTED, REVIEW_AFTER_DAYS, STATUSES, add_days, today


@dataclass
class Dashboard:
    year: int
    on: str
    plan: pd.DataFrame          # 议题, 协商形式, 会议日期, 已完成步骤, 当前步骤, 逾期步骤 (+ topic_id, start, end)
    steps: pd.DataFrame         # topic_id, 议题, step, 步骤, due, done, overdue
    status: pd.DataFrame        # 状态, 件数
    adoption: pd.DataFrame      # 部门, 交办, 已采纳, 部分采纳, 未采纳, 办理中, 采纳率
    by_year: pd.DataFrame       # 年度, 建议, 已有结果, 采纳率
    review_due: pd.DataFrame    # 议题, 会议日期, 回头看应在, 状态
    overdue_tasks: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def totals(self) -> dict:
        decided = self.adoption[[ADOPTED, PARTLY, REJECTED]].to_numpy().sum() if not self.adoption.empty else 0
        adopted = self.adoption[[ADOPTED, PARTLY]].to_numpy().sum() if not self.adoption.empty else 0
        return {"topics": int(len(self.plan)), "overdue_steps": int(self.steps["overdue"].sum()) if not self.steps.empty else 0,
                "proposals": int(self.status["件数"].sum()) if not self.status.empty else 0,
                "adoption_rate": round(adopted / decided, 3) if decided else None,
                "review_due": int(self.review_due["状态"].isin(["逾期", "待回头看"]).sum()) if not self.review_due.empty else 0}

    def as_dict(self) -> dict:
        def records(df):
            return df.drop(columns=[c for c in df.columns if c in ("start", "end")]).to_dict("records")

        return {"year": self.year, "on": self.on, "totals": self.totals, "plan": records(self.plan),
                "steps": records(self.steps), "status": records(self.status), "adoption": records(self.adoption),
                "by_year": records(self.by_year), "review_due": records(self.review_due),
                "overdue_tasks": records(self.overdue_tasks)}


def _rate(adopted: int, decided: int) -> float | None:
    return round(adopted / decided, 3) if decided else None


def build_dashboard(topics, plans: dict, proposals, reviews, *, year: int | None = None,
                    on: str | None = None) -> Dashboard:
    on = on or today()
    year = year or max((t.year for t in topics if t.year), default=int(on[:4]))
    titles = {t.topic_id: t.title for t in topics}
    years = {t.topic_id: t.year for t in topics}

    plan_rows, step_rows, task_rows = [], [], []
    for topic in (t for t in topics if t.year == year):
        plan = plans[topic.topic_id]
        dates = [d for s in plan.steps for d in (s.due, s.done) if d]
        overdue = plan.overdue(on)
        plan_rows.append({"topic_id": topic.topic_id, "议题": topic.title, "协商形式": topic.format,
                          "会议日期": plan.meeting_date or "", "已完成步骤": f"{plan.done_count}/{len(STEPS)}",
                          "当前步骤": plan.current.name if plan.done_count < len(STEPS) else "已完成",
                          "逾期步骤": "、".join(s.name for s in overdue),
                          "start": min(dates) if dates else None, "end": max(dates) if dates else None})
        for s in plan.steps:
            step_rows.append({"topic_id": topic.topic_id, "议题": topic.title, "step": s.step, "步骤": s.name,
                              "due": s.due or "", "done": s.done or "", "overdue": s.overdue(on)})
        for t in plan.tasks:
            if t.status != "已完成" and t.date and t.date < on:
                task_rows.append({"议题": topic.title, "任务": t.title, "日期": t.date, "负责": t.assignee or "",
                                  "状态": t.status})
    plan_df = pd.DataFrame(plan_rows, columns=["topic_id", "议题", "协商形式", "会议日期", "已完成步骤", "当前步骤",
                                               "逾期步骤", "start", "end"])
    if not plan_df.empty:
        plan_df = plan_df.sort_values(["会议日期", "议题"]).reset_index(drop=True)
    steps_df = pd.DataFrame(step_rows, columns=["topic_id", "议题", "step", "步骤", "due", "done", "overdue"])

    # proposals: each (proposal, department) pair once; a proposal sent nowhere counts as 未交办
    counts = {s: 0 for s in (NOT_ASSIGNED,) + STATUSES}
    per_dept: dict[str, dict[str, int]] = {}
    per_year: dict[int, list[int]] = {}
    for p in proposals:
        departments = p.departments
        if not departments:
            counts[NOT_ASSIGNED] += 1
        for dept, current in departments.items():
            counts[current] += 1
            row = per_dept.setdefault(dept, {"交办": 0, ADOPTED: 0, PARTLY: 0, REJECTED: 0, "办理中": 0})
            row["交办"] += 1
            outcome = p.outcome(dept)
            row[outcome or "办理中"] += 1
            y = per_year.setdefault(years.get(p.topic_id) or 0, [0, 0, 0])
            y[0] += 1
            if outcome:
                y[1] += 1
                y[2] += outcome in (ADOPTED, PARTLY)
    status_df = pd.DataFrame([{"状态": s, "件数": n} for s, n in counts.items() if n], columns=["状态", "件数"])
    adoption_df = pd.DataFrame(
        [{"部门": d, **r, "采纳率": _rate(r[ADOPTED] + r[PARTLY], r[ADOPTED] + r[PARTLY] + r[REJECTED])}
         for d, r in per_dept.items()], columns=["部门", "交办", ADOPTED, PARTLY, REJECTED, "办理中", "采纳率"])
    if not adoption_df.empty:
        adoption_df = adoption_df.sort_values(["交办", "部门"], ascending=[False, True]).reset_index(drop=True)
    by_year_df = pd.DataFrame([{"年度": y, "交办件次": v[0], "已有结果": v[1], "采纳率": _rate(v[2], v[1])}
                               for y, v in sorted(per_year.items()) if y],
                              columns=["年度", "交办件次", "已有结果", "采纳率"])

    # 回头看: a year after the meeting, for consultations held up to this year
    reviewed = {}
    for r in reviews:
        reviewed.setdefault(r.topic_id, r)
    due_rows = []
    for topic in topics:
        plan = plans[topic.topic_id]
        held = plan.steps[5].done
        if not held or (topic.year or 0) > year:
            continue
        due = add_days(held, REVIEW_AFTER_DAYS)
        review = reviewed.get(topic.topic_id)
        if review is not None:
            state = "已回头看"
        elif due < on:
            state = "逾期"
        else:
            state = "待回头看" if due[:4] <= on[:4] else "未到期"
        due_rows.append({"议题": topic.title, "会议日期": held, "回头看应在": due, "状态": state,
                         "回头看日期": review.date if review else "", "评价": review.rating if review else "",
                         "转为议题": titles.get(review.next_topic_id, "") if review and review.next_topic_id else ""})
    review_df = pd.DataFrame(due_rows, columns=["议题", "会议日期", "回头看应在", "状态", "回头看日期", "评价", "转为议题"])
    return Dashboard(year, on, plan_df, steps_df, status_df, adoption_df, by_year_df, review_df,
                     pd.DataFrame(task_rows, columns=["议题", "任务", "日期", "负责", "状态"]))


def dashboard_for(cycle, topics, year: int | None = None, on: str | None = None) -> Dashboard:
    """The dashboard from a cycle service and a topic service, local or on the team server (only
    their public, serialisable calls are used)."""
    listed = topics.list()
    plans = {p.topic_id: p for p in cycle.plans()}
    return build_dashboard(listed, plans, cycle.proposals(), cycle.reviews(), year=year, on=on)


__all__ = ["Dashboard", "build_dashboard", "dashboard_for"]
