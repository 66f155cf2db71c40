"""The consultation cycle (协商全流程) around a topic, by the eight-step method (八步工作法):
the steps as a plan with owners and dates, research tasks and the 履职菜单, the speeches and
the minutes (协商纪要) drafted from them, and the outcome chain of each proposal — the leader's
instruction (批示), the departments it was sent to and their handling (交办 → 办理中 → 已采纳 /
部分采纳 / 未采纳 → 已反馈) and the 回头看 a year later.

One concept per module: `model` (the data), `minutes` (drafting the 纪要 from the speeches),
`dashboard` (the year's figures), `importer` (YAML), `reports` (the 调研报告 files members attach),
`service` (`kb.cycle`). Storage is
`kb.storage.cycle`, the exports `kb.cycle_exports`.
"""
from .dashboard import Dashboard, build_dashboard, dashboard_for
from .model import (NEXT_STATUS, OUTCOMES, STATUSES, TASK_KINDS, TASK_STATUSES, Instruction, InvalidCycleEdit,
                    Minutes, MinutesNotFound, Plan, PlanStep, Proposal, ResearchTask, Review, Signup, Speech, TaskReport)
from .service import CycleService

__all__ = ["CycleService", "Dashboard", "Instruction", "InvalidCycleEdit", "Minutes", "MinutesNotFound",
           "NEXT_STATUS", "OUTCOMES", "Plan", "PlanStep", "Proposal", "ResearchTask", "Review", "STATUSES",
           "Signup", "Speech", "TASK_KINDS", "TASK_STATUSES", "TaskReport", "build_dashboard", "dashboard_for"]
