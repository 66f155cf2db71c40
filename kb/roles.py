"""Who may do what. Staff manage material, topics and packs, review expert notes and run the
consultation cycle (plan, minutes, outcomes); experts write anchored notes; members read, search and
reply (notes kept for internal reference are not shown to them), update their own research tasks
and sign up for topics on the year's menu (履职菜单)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import PermissionDenied

ROLES = {"staff": "工作人员", "member": "委员", "expert": "专家"}
ROLE_BY_LABEL = {label: key for key, label in ROLES.items()}

ACTIONS = {
    "read": ("查阅和检索", {"staff", "member", "expert"}),
    "index": ("添加或更新文档", {"staff"}),
    "manage_topics": ("管理协商议题", {"staff"}),
    "manage_packs": ("编辑调研资料汇编", {"staff"}),
    "annotate": ("撰写论证意见（锚定到原文）", {"staff", "expert"}),
    "reply": ("回复论证意见", {"staff", "member", "expert"}),
    "audit": ("查看操作记录", {"staff"}),
    "review_notes": ("审核论证意见", {"staff"}),
    # notes staff keep for internal reference (仅内部参考) are not shown to members
    "read_internal_notes": ("查阅仅内部参考的论证意见", {"staff", "expert"}),
    # the consultation cycle (kb.cycle): everyone reads the plan and outcomes; staff change them;
    # members update the research tasks they are on and sign up for topics on the 履职菜单
    "manage_cycle": ("管理协商工作计划、发言、纪要和成果办理", {"staff"}),
    "update_own_tasks": ("更新自己的调研任务和调研报告", {"staff", "member"}),
    "sign_up": ("报名参加履职菜单中的协商议题", {"staff", "member"}),
}


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def __post_init__(self):
        if self.role not in ROLES:
            role = ROLE_BY_LABEL.get(self.role)
            if role is None:
                raise PermissionDenied(f"未知角色 {self.role}", hint="角色可选 staff（工作人员）、member（委员）、expert（专家）")
            object.__setattr__(self, "role", role)
        if not str(self.name).strip():
            raise PermissionDenied("用户名为空", hint="用 --user 或 KB_USER 指定")

    @property
    def role_label(self) -> str:
        return ROLES[self.role]

    def can(self, action: str) -> bool:
        return self.role in ACTIONS[action][1]

    def require(self, action: str) -> None:
        """Raise `PermissionDenied` with a readable reason if this role may not take `action`."""
        if not self.can(action):
            label, allowed = ACTIONS[action]
            who = "、".join(ROLES[r] for r in ("staff", "expert", "member") if r in allowed)
            raise PermissionDenied(f"{self.role_label}（{self.name}）不能{label}", hint=f"此操作仅限：{who}")
