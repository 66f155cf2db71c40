"""检索: query box, metadata filters, result cards with highlighted matches and citations, paging."""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
from traitlets import Bool, Int, List, Unicode

from indexer.metadata import DOC_TYPES, LEVELS
from kb.search import Hit, SearchFilters

from ._common import Panel, action, button, compact, css, esc, heading, highlight, passage_label, shorten

ALL = ""
MODE_LABELS = {"综合检索（推荐）": "hybrid", "关键词": "keyword", "语义相近": "dense"}
VALIDITY_LABELS = {"amended": "已修订", "repealed": "已废止"}

HitHandler = Callable[[Hit], None]


class SearchPanel(Panel):
    """Search the knowledge base; each result card can open the source, go into the current
    briefing pack, or start an expert note. Those three actions are handed to callbacks
    (`on_open`, `on_add`, `on_annotate`) so the app decides where they lead."""

    query = Unicode("", help="the last query searched")
    mode = Unicode("hybrid")
    doc_type = Unicode(ALL, help="document type key, '' for all")
    issuer = Unicode("")
    level = Unicode(ALL)
    region = Unicode("")
    date_from = Unicode("", help="ISO date or ''")
    date_to = Unicode("")
    in_force_only = Bool(False)
    results = List(help="all hits of the last search (Hit objects)")
    page = Int(0, help="zero-based page shown")
    page_size = Int(5)

    def __init__(self, kb, *, page_size: int = 5, max_results: int = 30, on_open: HitHandler | None = None,
                 on_add: HitHandler | None = None, on_annotate: HitHandler | None = None, **kwargs):
        super().__init__(kb, **kwargs)
        self.page_size = page_size
        self.max_results = max_results
        self.on_open, self.on_add, self.on_annotate = on_open, on_add, on_annotate
        self.layout.width = "100%"

        self.query_box = widgets.Text(placeholder="输入关键词或一个问题，例如：老年助餐 补贴标准（回车即检索）",
                                      continuous_update=False, layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.search_button = button("检索", icon="search", width="96px")
        self.search_button.style.button_color = "#b91c1c"
        self.search_button.style.text_color = "white"
        self.search_button.on_click(lambda _b: self.run_search())
        self.query_box.observe(self._on_query_submit, "value")

        label_style = {"description_width": "64px"}
        wide = widgets.Layout(width="260px")
        self.type_select = widgets.Dropdown(description="文档类型", style=label_style, layout=wide,
                                            options=[("全部类型", ALL)] + [(v, k) for k, v in DOC_TYPES.items()])
        self.level_select = widgets.Dropdown(description="层级", style=label_style, layout=wide,
                                             options=[("全部层级", ALL)] + [(v, k) for k, v in LEVELS.items()])
        self.mode_select = widgets.Dropdown(description="检索方式", style=label_style, layout=wide,
                                            options=list(MODE_LABELS.items()), value="hybrid")
        self.issuer_box = widgets.Combobox(description="发文机关", placeholder="如：青溪市人民政府", style=label_style,
                                           layout=wide, ensure_option=False)
        self.region_box = widgets.Combobox(description="地区", placeholder="如：南塘县", style=label_style,
                                           layout=wide, ensure_option=False)
        self.in_force_box = widgets.Checkbox(description="只看现行有效", indent=False,
                                             layout=widgets.Layout(width="260px"))
        self.date_from_box = widgets.DatePicker(description="发布日期", style=label_style, layout=wide)
        self.date_to_box = widgets.DatePicker(description="至", style=label_style, layout=wide)
        self.reset_button = button("清空筛选", icon="eraser")
        self.reset_button.on_click(lambda _b: self.reset_filters())
        def row(*controls):  # three filters a row when there is room, fewer in a narrow window
            return widgets.HBox(list(controls), layout=widgets.Layout(flex_flow="row wrap"))

        filters = widgets.VBox([
            row(self.type_select, self.level_select, self.mode_select),
            row(self.issuer_box, self.region_box, self.in_force_box),
            row(self.date_from_box, self.date_to_box, self.reset_button),
        ], layout=widgets.Layout(grid_gap="4px"))
        self.filter_box = widgets.Accordion(children=[filters], titles=("筛选条件",))
        self.filter_box.selected_index = None

        self.summary = widgets.HTML()
        self.results_box = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.prev_button = button("上一页", icon="chevron-left")
        self.next_button = button("下一页", icon="chevron-right")
        self.prev_button.on_click(lambda _b: self.go_to_page(self.page - 1))
        self.next_button.on_click(lambda _b: self.go_to_page(self.page + 1))
        self.page_label = widgets.HTML()
        self.pager = widgets.HBox([self.prev_button, self.page_label, self.next_button],
                                  layout=widgets.Layout(align_items="center", grid_gap="8px", display="none"))

        self.busy_controls = [self.query_box, self.search_button]
        self.children = [
            css(),
            heading("检索资料", "在政策法规、领导讲话、案例模式、专家论证和协商纪要中查找原文，每条结果都带出处。"),
            widgets.HBox([self.query_box, self.search_button], layout=widgets.Layout(width="100%", grid_gap="6px")),
            self.filter_box, self.status_bar, self.summary, self.results_box, self.pager,
        ]
        self.refresh_filter_options()

    # -- filters --------------------------------------------------------------
    def refresh_filter_options(self) -> None:
        """Offer the issuers and regions the knowledge base holds (after indexing, call again)."""
        try:
            docs = self.kb.documents()
        except Exception:  # an empty or missing index just means no suggestions yet
            docs = []
        self.issuer_box.options = sorted({d.issuer for d in docs if d.issuer})
        self.region_box.options = sorted({d.region for d in docs if d.region})

    def current_filters(self) -> SearchFilters:
        self._read_controls()
        return SearchFilters(doc_types=[self.doc_type] if self.doc_type else [], issuer=self.issuer or None,
                             level=self.level or None, region=self.region or None,
                             date_from=self.date_from or None, date_to=self.date_to or None,
                             in_force_only=self.in_force_only)

    def _read_controls(self) -> None:
        self.doc_type = self.type_select.value or ALL
        self.level = self.level_select.value or ALL
        self.mode = self.mode_select.value
        self.issuer = (self.issuer_box.value or "").strip()
        self.region = (self.region_box.value or "").strip()
        self.in_force_only = bool(self.in_force_box.value)
        self.date_from = self.date_from_box.value.isoformat() if self.date_from_box.value else ""
        self.date_to = self.date_to_box.value.isoformat() if self.date_to_box.value else ""

    def reset_filters(self) -> None:
        self.type_select.value = ALL
        self.level_select.value = ALL
        self.mode_select.value = "hybrid"
        self.issuer_box.value = ""
        self.region_box.value = ""
        self.in_force_box.value = False
        self.date_from_box.value = None
        self.date_to_box.value = None
        self.set_status("已清空筛选条件", "info")

    def _filter_summary(self) -> str:
        parts = []
        if self.doc_type:
            parts.append(DOC_TYPES.get(self.doc_type, self.doc_type))
        if self.level:
            parts.append(LEVELS.get(self.level, self.level))
        parts += [x for x in (self.issuer, self.region) if x]
        if self.date_from or self.date_to:
            parts.append(f"{self.date_from or '…'} 至 {self.date_to or '…'}")
        if self.in_force_only:
            parts.append("只看现行有效")
        return "、".join(parts)

    # -- searching --------------------------------------------------------------
    def _on_query_submit(self, change) -> None:
        if (change["new"] or "").strip():
            self.run_search()

    @action("正在检索…")
    def run_search(self) -> list[Hit]:
        """Search with the query box and filters; show page 1."""
        filters = self.current_filters()
        query = (self.query_box.value or "").strip()
        self.query = query
        self.results = []
        self.page = 0
        self.results = self.kb.search(query, top_k=self.max_results, mode=self.mode, filters=filters)
        self._render()
        self.set_status(*self._outcome())
        return self.results

    def _outcome(self) -> tuple[str, str]:
        """The status line after a search. Weak hits only share a few words or a vague sense with
        the query, so a list of nothing but weak hits is reported as such, never as a success."""
        total = len(self.results)
        strong = sum(not hit.weak for hit in self.results)
        if not total:
            return "没有找到相关内容", "warning"
        if not strong:
            return (f"知识库里没有明确谈到“{shorten(self.query, 30)}”的材料，以下 {total} 条只是弱相关，"
                    "请核对后再引用", "warning")
        if strong < total:
            return f"找到 {total} 条相关段落，其中 {strong} 条明确相关，其余为弱相关", "success"
        return f"找到 {total} 条相关段落", "success"

    def search(self, query: str) -> list[Hit]:
        """Put `query` in the box and search (for the app and tests)."""
        self.query_box.unobserve(self._on_query_submit, "value")
        try:
            self.query_box.value = query
        finally:
            self.query_box.observe(self._on_query_submit, "value")
        return self.run_search() or []

    @property
    def page_count(self) -> int:
        return max(1, -(-len(self.results) // self.page_size))

    def go_to_page(self, page: int) -> None:
        self.page = max(0, min(page, self.page_count - 1))
        self._render()

    def visible_hits(self) -> list[Hit]:
        start = self.page * self.page_size
        return self.results[start:start + self.page_size]

    # -- rendering ----------------------------------------------------------------
    def _render(self) -> None:
        if not self.results:
            self.summary.value = ""
            self.pager.layout.display = "none"
            filt = self._filter_summary()
            tips = ["换一种更常见的说法，或只输入两三个关键词"]
            if filt:
                tips.insert(0, f"放宽筛选条件（当前：{esc(filt)}）")
            tips.append("检查是否有错别字")
            self.results_box.children = [widgets.HTML(
                f'<div class="xs-empty">没有找到与“{esc(shorten(self.query, 40))}”相关的内容。<br>'
                f'可以试试：{"；".join(tips)}。</div>')] if self.query else []
            return
        first = self.page * self.page_size
        self.summary.value = (f'<div class="xs-subtitle">“{esc(shorten(self.query, 40))}”共 {len(self.results)} 条结果'
                              + (f"（筛选：{esc(self._filter_summary())}）" if self._filter_summary() else "")
                              + "，按相关度排序</div>")
        self.results_box.children = [self._card(hit, first + i + 1) for i, hit in enumerate(self.visible_hits())]
        self.page_label.value = f'<span class="xs-subtitle">第 {self.page + 1} / {self.page_count} 页</span>'
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.page_count - 1
        self.pager.layout.display = "flex" if self.page_count > 1 else "none"

    def _card(self, hit: Hit, rank: int) -> widgets.VBox:
        badges = [f'<span class="xs-badge">{esc(DOC_TYPES.get(hit.doc_type, hit.doc_type))}</span>']
        validity = hit.citation.validity
        if validity in VALIDITY_LABELS:
            badges.append(f'<span class="xs-badge xs-badge-warn">{VALIDITY_LABELS[validity]}</span>')
        if hit.weak:
            badges.append('<span class="xs-badge xs-badge-gray">弱相关</span>')
        where = " · ".join(esc(x) for x in (f"第{hit.page}页" if hit.page else "", passage_label(hit.label, hit.text)) if x)
        matched = "、".join(esc(t) for t in hit.matched_terms)
        extra = f"；另有 {len(hit.duplicates)} 份文件含相同段落" if hit.duplicates else ""
        body = (
            f'<div class="xs-card-head"><div class="xs-card-title">{rank}. {esc(hit.title)}</div>'
            f'<div class="xs-score">相关度 {hit.score:.3f}</div></div>'
            f'<div>{"".join(badges)}<span class="xs-cite">{where}</span></div>'
            f'<div class="xs-card-text">{highlight(compact(hit.text), hit.matched_terms, hit.focus_text())}</div>'
            f'<div class="xs-cite">出处：{esc(hit.citation.formatted())}</div>'
            + (f'<div class="xs-cite">命中词：{matched}{esc(extra)}</div>' if matched or extra else "")
        )
        open_b = button("打开原文", icon="file-text-o")
        add_b = button("加入资料汇编", icon="plus")
        note_b = button("添加论证意见", icon="comment-o")
        for b, handler, missing in ((open_b, self.on_open, "此页面未接入原文阅读"),
                                    (add_b, self.on_add, "请在完整应用的「调研资料汇编」中使用"),
                                    (note_b, self.on_annotate, "请在完整应用的「专家论证」中使用")):
            if handler is None:
                b.disabled, b.tooltip = True, missing
            else:
                b.on_click(lambda _b, h=handler: self._hand_over(h, hit))
        self.allow(add_b, "manage_packs")
        self.allow(note_b, "annotate")
        card = widgets.VBox([widgets.HTML(body), widgets.HBox([open_b, add_b, note_b],
                                                             layout=widgets.Layout(grid_gap="6px"))])
        card.add_class("xs-card")
        card.hit = hit
        card.buttons = {"open": open_b, "add": add_b, "annotate": note_b}
        return card

    @action()
    def _hand_over(self, handler: HitHandler, hit: Hit) -> None:
        message = handler(hit)
        if isinstance(message, str) and message:
            self.set_status(message, "success")

    def cards(self) -> list[widgets.VBox]:
        return [c for c in self.results_box.children if hasattr(c, "hit")]
