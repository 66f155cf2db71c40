"""The tabbed app Voila serves: choose who you are, then 检索 / 调研资料汇编 / 专家论证 / 协商工作台 / 文档管理.

The panels talk through the app: 加入资料汇编 in a search card goes into the builder's current
pack, 打开原文 opens the viewer beside the results, 添加论证意见 selects the passage in the
expert panel and switches to it.
"""
from __future__ import annotations

import os

import ipywidgets as widgets
from traitlets import Bool, Unicode

from indexer.errors import KBError
from indexer.metadata import DOC_TYPES
from kb.errors import PermissionDenied
from kb.remote import team_mode
from kb.roles import ROLE_BY_LABEL, ROLES, User

from ._common import Panel, action, app_message, button, css, esc, open_knowledge_base

TAB_SEARCH, TAB_PACKS, TAB_NOTES, TAB_DOCS = "检索", "调研资料汇编", "专家论证", "文档管理"
TAB_CYCLE = "协商工作台"
ALL_TABS = (TAB_SEARCH, TAB_PACKS, TAB_NOTES, TAB_CYCLE, TAB_DOCS)
ROLE_HELP = {
    "staff": "工作人员：管理文档、编辑调研资料汇编并导出，也可撰写论证意见",
    "member": "委员：检索和阅读资料、查看资料汇编，回复专家意见",
    "expert": "专家：阅读原文，就具体段落撰写论证意见并回复",
}


class ResearchApp(Panel):
    """Login choice, then the tabs. `tabs` picks which ones (the per-role notebooks show one or two).

    With `user` and `role` given (or KB_USER and KB_ROLE set) the app logs in at once."""

    user_name = Unicode("", help="who is working")
    role = Unicode("", help="staff / member / expert")
    logged_in = Bool(False)

    def __init__(self, home: str | os.PathLike | None = None, *, tabs=ALL_TABS, user: str | None = None,
                 role: str | None = None, default_role: str = "staff", embedder=None, model: str | None = None,
                 **kwargs):
        self._home, self._model, self._embedder = home, model, embedder
        self.team = team_mode()  # on a team server the account comes from the hub sign-in
        if self.team:
            user = role = None
        user = user or os.environ.get("KB_USER") or None
        role = role or os.environ.get("KB_ROLE") or None
        self.tab_names = tuple(tabs)
        # A knowledge base with the default user, to check it opens and to report problems before login.
        try:
            base = open_knowledge_base(home, model=model, embedder=embedder)
        except KBError as exc:
            base, problem = None, app_message(exc)
        else:
            problem = ""
        super().__init__(base, **kwargs)
        self.kb = base
        self.layout.width = "100%"
        self.header = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.switch_button = button("切换身份", icon="user")
        self.switch_button.on_click(lambda _b: self.logout())
        self.switch_button.layout.display = "none"
        self.body = widgets.VBox(layout=widgets.Layout(width="100%"))

        # no login on Enter: leaving the box (to pick a role) would count as Enter and log in too early
        self.name_box = widgets.Text(description="姓名", placeholder="请输入姓名，如：王晓明",
                                     value=user or "", style={"description_width": "48px"},
                                     layout=widgets.Layout(width="320px"))
        role_options = [(label, key) for key, label in ROLES.items()]
        start_role = role if role in ROLES else ROLE_BY_LABEL.get(role or "", default_role)
        self.role_buttons = widgets.ToggleButtons(options=role_options, value=start_role, description="身份",
                                                  style={"description_width": "48px", "button_width": "96px"})
        self.role_help = widgets.HTML()
        self.role_buttons.observe(lambda _c: self._show_role_help(), "value")
        self.enter_button = button("进入", icon="sign-in", width="120px")
        self.enter_button.style.button_color = "#b91c1c"
        self.enter_button.style.text_color = "white"
        self.enter_button.on_click(lambda _b: self.login())
        self.busy_controls = [self.enter_button, self.switch_button]
        self.login_box = widgets.VBox([
            widgets.HTML('<div class="xs-title">请选择身份</div>'
                         '<div class="xs-subtitle">不同身份可做的事不同；所有修改都会记录操作人和时间。</div>'),
            self.name_box, self.role_buttons, self.role_help, self.enter_button,
            widgets.HTML(self._overview(base)),
        ], layout=widgets.Layout(border="1px solid #e5e7eb", padding="12px 18px", width="620px", grid_gap="8px"))
        self._show_role_help()
        self.children = [css(), widgets.HBox([self.header, self.switch_button],
                                             layout=widgets.Layout(width="100%", align_items="center", grid_gap="12px")),
                         self.status_bar, self.body]
        self.panels: dict[str, widgets.Widget] = {}
        self.tabs: widgets.Tab | None = None
        self._render_header()
        if problem:
            self.set_status(problem, "error")
            self.enter_button.disabled = True
        self.body.children = [self.login_box]
        if self.team and base is not None:
            self._enter(base)
        elif user and role and base is not None:
            self.login()

    @staticmethod
    def _overview(kb) -> str:
        """What the knowledge base holds, so a first-time user knows there is something to find."""
        if kb is None:
            return ""
        try:
            info = kb.info()
            topics = kb.topics.list()
        except Exception:  # an unreadable index is reported when searching; the login must still work
            return ""
        if not info["documents"]:
            return ('<div class="xs-subtitle">知识库还是空的：请以工作人员身份进入，在「文档管理」中添加文件。</div>')
        by_type = "、".join(f"{DOC_TYPES.get(k, k)} {v}" for k, v in sorted(info["documents_by_type"].items()))
        names = "；".join(esc(t.title) for t in topics[:4])
        return (f'<div class="xs-subtitle">知识库现有 {info["documents"]} 篇文档（{esc(by_type)}）'
                + (f"，{len(topics)} 个协商议题：{names}" if topics else "") + "。</div>")

    def _show_role_help(self) -> None:
        self.role_help.value = f'<div class="xs-subtitle">{esc(ROLE_HELP.get(self.role_buttons.value, ""))}</div>'

    def _render_header(self) -> None:
        who = (f"当前：{esc(self.user_name)}（{esc(ROLES.get(self.role, self.role))}）" if self.logged_in
               else "面向政协工作人员、委员和专家的协商资料库")
        self.header.value = ('<div class="xs-header"><span class="xs-header-title">协商研究助手</span>'
                             f'　<span class="xs-header-sub">{who}</span></div>')

    # -- login ------------------------------------------------------------------
    @action("正在进入…")
    def login(self) -> None:
        name = (self.name_box.value or "").strip()
        if self.logged_in and (name, self.role_buttons.value) == (self.user_name, self.role):
            self.set_status("")  # a second click on 进入 while the tabs are being built: nothing to do
            return
        if not name:  # the library's message names the command-line option
            raise PermissionDenied("还没有填写姓名", hint="在「姓名」框中填写，所有修改都会记下操作人")
        if self.team:
            raise PermissionDenied("团队服务器上的身份来自登录账号，不能在应用里选择")
        user = User(name, self.role_buttons.value)  # checks the role; raises with a readable message
        base = self.kb
        if base is None:
            base = open_knowledge_base(self._home, model=self._model, embedder=self._embedder)
        self.kb = base.for_user(user)
        self.user_name, self.role = name, self.kb.user.role
        self.logged_in = True
        self._build_tabs()
        self._render_header()
        self.switch_button.layout.display = "flex"
        self.set_status(f"欢迎，{name}。在「{self.tab_names[0]}」中开始。", "success")

    def _enter(self, base) -> None:
        """Team server: the signed-in account, its role from its hub group; no 切换身份."""
        self.kb = base
        self.user_name, self.role = base.user.name, base.user.role
        self.logged_in = True
        self._build_tabs()
        self._render_header()
        self.set_status(f"欢迎，{self.user_name}（{base.user.role_label}）。在「{self.tab_names[0]}」中开始。", "success")

    def logout(self) -> None:
        self.logged_in = False
        self.user_name = self.role = ""
        self.panels, self.tabs = {}, None
        self.body.children = [self.login_box]
        self.switch_button.layout.display = "none"
        self._render_header()
        self.set_status("已退出，请重新选择身份", "info")

    # -- the tabs ------------------------------------------------------------------
    def _build_tabs(self) -> None:
        from .document_viewer import DocumentViewer
        from .expert_panel import ExpertPanel
        from .indexing_panel import IndexingPanel
        from .search_panel import SearchPanel

        kb, names = self.kb, self.tab_names
        self.panels = {}
        viewer = DocumentViewer(kb, layout=widgets.Layout(width="42%"))
        self.panels["viewer"] = viewer
        builder = None
        if TAB_PACKS in names:
            from .briefing_builder import BriefingBuilder

            builder = BriefingBuilder(kb, on_open=self._open_document)
        expert = ExpertPanel(kb, on_open=self._open_document) if TAB_NOTES in names else None
        search = SearchPanel(kb, on_open=viewer.show_hit,
                             on_add=builder.add_hit if builder else None,
                             on_annotate=self._annotate if expert else None,
                             layout=widgets.Layout(width="58%"))
        indexing = IndexingPanel(kb, on_indexed=self._after_indexing) if TAB_DOCS in names else None
        cycle = None
        if TAB_CYCLE in names:
            from .dashboard import CycleDashboard

            cycle = CycleDashboard(kb)
        pages = {TAB_SEARCH: widgets.HBox([search, viewer], layout=widgets.Layout(width="100%", grid_gap="16px")),
                 TAB_PACKS: builder, TAB_NOTES: expert, TAB_CYCLE: cycle, TAB_DOCS: indexing}
        self.panels.update({TAB_SEARCH: search, TAB_PACKS: builder, TAB_NOTES: expert, TAB_CYCLE: cycle,
                            TAB_DOCS: indexing})
        self.panels = {k: v for k, v in self.panels.items() if v is not None}
        shown = [name for name in ALL_TABS if (name in names and pages[name] is not None) or name == TAB_SEARCH]
        self.tabs = widgets.Tab(children=[pages[n] for n in shown], titles=shown)
        self.tabs.layout.width = "100%"
        self.select_tab(names[0] if names else TAB_SEARCH)  # a role notebook opens on its own tab
        # the welcome line has done its job once the user moves on: a green line above the
        # results would read as the search's own verdict
        self.tabs.observe(lambda _c: self.set_status(""), "selected_index")
        for panel in self.panels.values():
            panel.observe(lambda _c: self.set_status(""), "status")
        self.body.children = [self.tabs]

    def select_tab(self, name: str) -> None:
        if self.tabs is not None and name in self.tabs.titles:
            self.tabs.selected_index = list(self.tabs.titles).index(name)

    def _open_document(self, doc_id: str, start: int | None = None) -> None:
        viewer = self.panels["viewer"]
        viewer.show(doc_id, start if start is not None and start >= 0 else None)
        self.select_tab(TAB_SEARCH)

    def _annotate(self, hit) -> str:
        message = self.panels[TAB_NOTES].start_note(hit)
        self.select_tab(TAB_NOTES)
        return message

    def _after_indexing(self, _report) -> None:
        if TAB_SEARCH in self.panels:
            self.panels[TAB_SEARCH].refresh_filter_options()
        if TAB_NOTES in self.panels:
            self.panels[TAB_NOTES].refresh_documents()
        if TAB_PACKS in self.panels and hasattr(self.panels[TAB_PACKS], "refresh"):
            self.panels[TAB_PACKS].refresh()

