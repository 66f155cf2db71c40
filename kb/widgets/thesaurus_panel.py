"""检索词表 (in 文档管理, staff only): the knowledge base's own lay → official entries, added
and removed one at a time and saved to `<home>/thesaurus.tsv` (audited); a box shows what
search makes of a question with the thesaurus in force."""
from __future__ import annotations

import ipywidgets as widgets
import pandas as pd
from traitlets import List, Unicode

from kb import thesaurus
from kb.search import THESAURUS_WEIGHT, make_plan

from ._common import Panel, action, button, esc, table_html


class ThesaurusPanel(Panel):
    """List, add and remove the knowledge base's own thesaurus entries; preview a query's expansion."""

    entries = List(help="[{'lay', 'terms', …}] of the knowledge base's own entries")
    preview = Unicode("", help="the last expansion preview, as text")

    def __init__(self, kb, **kwargs):
        super().__init__(kb, **kwargs)
        self.lay_box = widgets.Text(placeholder="日常说法，如 门口摆摊", layout=widgets.Layout(width="200px"))
        self.terms_box = widgets.Text(placeholder="规范用语，空格分隔，如 占道经营 市容管理",
                                      layout=widgets.Layout(width="320px"))
        self.add_button = button("保存词条", icon="plus", width="110px")
        self.add_button.on_click(lambda _b: self.add())
        self.remove_choice = widgets.Dropdown(options=[], description="", layout=widgets.Layout(width="200px"))
        self.remove_button = button("删除所选", icon="trash", width="110px")
        self.remove_button.on_click(lambda _b: self.remove())
        self.query_box = widgets.Text(placeholder="试一试：输入一个问题，看会补充哪些规范用语",
                                      layout=widgets.Layout(width="420px"))
        self.preview_button = button("查看扩展", icon="search", width="110px")
        self.preview_button.on_click(lambda _b: self.show_expansion())
        self.sizes_html = widgets.HTML()
        self.table_html = widgets.HTML(layout=widgets.Layout(max_height="260px", overflow="auto"))
        self.preview_html = widgets.HTML()
        for control in (self.lay_box, self.terms_box, self.add_button, self.remove_choice, self.remove_button):
            self.allow(control, "index")
        self.busy_controls = [self.lay_box, self.terms_box, self.add_button, self.remove_choice, self.remove_button,
                              self.preview_button]
        self.children = [
            widgets.HTML('<div class="xs-section-head">检索词表（日常说法 → 规范用语）</div>'
                         '<div class="xs-subtitle">群众常用的说法检索时会补充对应的规范用语（权重低于原词）。'
                         '内置词条按领域随程序提供；这里添加的词条只属于本知识库，同名时优先，'
                         '规范用语写 - 表示停用同名内置词条。</div>'),
            self.sizes_html,
            widgets.HBox([self.lay_box, self.terms_box, self.add_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            widgets.HBox([self.remove_choice, self.remove_button], layout=widgets.Layout(grid_gap="8px")),
            self.status_bar, self.table_html,
            widgets.HBox([self.query_box, self.preview_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            self.preview_html,
        ]
        self.refresh()

    def _render(self) -> None:
        table = thesaurus.load(self.kb.home)
        by_field = table.by_field()
        self.entries = [e.as_dict() for e in by_field.get(thesaurus.OWN_FIELD, [])]
        sizes = "、".join(f"{label} {len(by_field.get(key, []))}" for key, label in thesaurus.FIELDS.items())
        self.sizes_html.value = f'<div class="xs-subtitle">内置 {esc(sizes)}；共 {len(table)} 条</div>'
        rows = [{"日常说法": e["lay"], "规范用语": " ".join(e["terms"])} for e in self.entries]
        self.table_html.value = table_html(pd.DataFrame(rows, columns=["日常说法", "规范用语"]),
                                           "本知识库还没有自己的词条。", nowrap=("日常说法",))
        self.remove_choice.options = [e["lay"] for e in self.entries]

    @action()
    def refresh(self) -> None:
        self._render()

    @action("正在保存…")
    def add(self) -> None:
        entry = thesaurus.add_entry(self.kb.home, self.kb.db, self.user, self.lay_box.value,
                                    self.terms_box.value.split())
        self.lay_box.value = self.terms_box.value = ""
        self._render()
        self.set_status(f"已保存：{entry.lay} → {' '.join(entry.terms)}（下一次检索起生效）", "success")

    @action("正在删除…")
    def remove(self) -> None:
        lay = self.remove_choice.value
        if not lay:
            raise thesaurus.InvalidThesaurusEntry("没有选择要删除的词条", hint="先在下拉框里选一个词条")
        thesaurus.remove_entry(self.kb.home, self.kb.db, self.user, lay)
        self._render()
        self.set_status(f"已删除：{lay}", "success")

    @action()
    def show_expansion(self) -> None:
        query = self.query_box.value.strip()
        if not query:
            raise thesaurus.InvalidThesaurusEntry("没有输入问题", hint="例如：老板欠薪该找哪个部门")
        plan = make_plan(query, self.kb.tokenizer, thesaurus.load(self.kb.home), thesaurus_weight=THESAURUS_WEIGHT)
        if plan.lay_matches:
            self.preview = f"{'、'.join(plan.lay_matches)} → {' '.join(plan.official_terms)}"
            self.preview_html.value = (f'<div class="xs-subtitle">匹配：{esc("、".join(plan.lay_matches))}；'
                                       f'补充规范用语（权重 {plan.official_weight:g}）：'
                                       f'{esc(" ".join(plan.official_terms))}</div>')
        else:
            self.preview = ""
            self.preview_html.value = '<div class="xs-subtitle">词表里没有与这个问题匹配的日常说法。</div>'
