"""What the audit log's actions are called. Every action is `target.verb`, and each has the
label people read in `kb audit` and the app. The rows themselves live in `kb.storage.audit`."""
from __future__ import annotations

from .storage.audit import AuditEntry, entries, record  # noqa: F401  (rows live in the storage layer)

ACTION_LABELS = {
    "document.index": "索引文档",
    "document.move": "文件改名后迁移关联",
    "topic.add": "新增协商议题",
    "topic.edit": "修改协商议题",
    "topic.link": "关联往期协商、批示或回头看",
    "topic.unlink": "取消关联",
    "pack.draft": "起草调研资料汇编",
    "pack.redraft": "重新起草调研资料汇编",
    "pack.add": "汇编加入段落",
    "pack.drop": "汇编移除段落",
    "pack.move": "汇编移动段落",
    "pack.reorder": "汇编调整顺序",
    "pack.note": "写编者按",
    "pack.key": "标记重点阅读",
    "pack.export": "导出调研资料汇编",
    "note.add": "新增论证意见",
    "note.reply": "回复论证意见",
    "note.import": "导入论证意见",
    "note.reanchor": "重新锚定论证意见",
    "note.review": "审核论证意见",
    "plan.step": "更新工作步骤（负责人、期限、完成）",
    "plan.signup": "报名履职菜单议题",
    "plan.confirm": "确认履职菜单报名",
    "task.add": "新增调研任务",
    "task.edit": "更新调研任务",
    "task.report": "提交调研报告",
    "task.attach": "上传调研报告文件（索引并关联议题）",
    "speech.add": "登记委员发言",
    "speech.remove": "删除委员发言",
    "minutes.draft": "起草协商纪要",
    "minutes.redraft": "重新起草协商纪要",
    "minutes.edit": "修改协商纪要",
    "minutes.export": "导出协商纪要",
    "proposal.instruct": "登记领导批示",
    "proposal.assign": "交办意见建议",
    "proposal.status": "更新办理状态",
    "review.add": "登记回头看",
    "report.export": "导出年度协商报告",
    "cycle.import": "导入协商全流程记录",
    "kb.backup": "备份知识库",
    "kb.migrate": "迁移到 PostgreSQL",
    "kb.restore": "从备份恢复知识库",
    "kb.repair": "从数据库重建检索文件",
    "thesaurus.edit": "编辑检索词表",
}
TARGET_LABELS = {"document": "文档", "documents": "文档", "topic": "议题", "pack": "汇编", "note": "论证意见",
                 "kb": "知识库", "plan": "工作计划", "task": "调研任务", "speech": "委员发言", "minutes": "协商纪要",
                 "proposal": "意见建议", "review": "回头看", "report": "年度报告", "cycle": "协商全流程",
                 "thesaurus": "检索词表"}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)
