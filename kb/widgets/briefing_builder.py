"""调研资料汇编: choose or create a topic, auto-draft its briefing pack, edit the items
(drop, move, reorder, editor's notes, key reading), open earlier versions and export.

Every edit names the version it was made on (the latest one the panel has shown). When
someone else saved a newer version meanwhile, the library refuses the edit (`StaleEdit`);
the panel says so in its status line and reloads, keeping an editor's note being written.

「重新起草」 asks first: it replaces the automatically chosen items, while items added by hand,
marked key, given an editor's note or moved keep their places. Expert notes on the topic's
documents whose passage is in no item are listed in a part of their own, where staff can pull
the passage in (加入汇编)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import ipywidgets as widgets
import pandas as pd
from traitlets import Int, Unicode

from indexer.errors import KBError
from indexer.metadata import DOC_TYPES
from kb.briefing import SECTION_LABELS, SECTIONS, InvalidPackEdit, PackNotFound
from kb.errors import StaleEdit
from kb.topics import FORMATS, STEPS

from ._common import (Panel, action, app_message, button, compact, css, download_link, esc, heading, passage_label,
                      shorten, table_html)
from ._notes import STANCE_CSS, note_html

CHINESE_NUMBERS = "一二三四五"
EXPORTS = (("docx", "Word"), ("pdf", "PDF"), ("html", "网页"), ("md", "Markdown"))
VIEW_CARDS, VIEW_TABLE = "cards", "table"
QUOTE_PREVIEW = 240
REDRAFT_CONFIRM = "重新起草会替换自动选入的条目，手工加入的条目和顺序会保留。确定吗？"


class BriefingBuilder(Panel):
    """Build a topic's 调研资料汇编. Staff edit; everyone may read and export."""

    topic_id = Unicode("", help="the topic whose pack is shown")
    version = Int(0, help="version shown; 0 when the topic has no pack yet")
    latest_version = Int(0)
    item_count = Int(0)
    editing_item = Unicode("", help="item id open in the editor")
    last_export = Unicode("", help="path of the file exported last")
    view = Unicode(VIEW_CARDS)

    def __init__(self, kb, *, on_open: Callable | None = None, **kwargs):
        super().__init__(kb, **kwargs)
        self.on_open = on_open
        self.pack = None
        self.layout.width = "100%"
        self._quiet = False

        self.topic_select = widgets.Dropdown(description="协商议题", style={"description_width": "64px"},
                                             layout=widgets.Layout(width="620px"))
        self.topic_select.observe(self._on_topic, "value")
        self.new_topic_button = button("新建议题", icon="plus")
        self.new_topic_button.on_click(lambda _b: self._toggle_topic_form())
        self.allow(self.new_topic_button, "manage_topics")
        self.topic_info = widgets.HTML()
        self._build_topic_form()

        self.draft_button = button("自动起草", icon="magic", width="120px")
        self.draft_button.style.button_color = "#b91c1c"
        self.draft_button.style.text_color = "white"
        self.draft_button.on_click(lambda _b: self.ask_draft())
        self.allow(self.draft_button, "manage_packs")
        self.confirm_yes = button("确定", icon="check", width="80px")
        self.confirm_no = button("取消", icon="times", width="80px")
        self.confirm_yes.on_click(lambda _b: self._confirmed())
        self.confirm_no.on_click(lambda _b: self._cancel_draft())
        self.confirm_box = widgets.HBox([
            widgets.HTML(f'<div class="xs-status xs-status-warning">{esc(REDRAFT_CONFIRM)}</div>'),
            self.confirm_yes, self.confirm_no,
        ], layout=widgets.Layout(display="none", grid_gap="8px", align_items="center"))
        self.version_select = widgets.Dropdown(description="版本", style={"description_width": "36px"},
                                               layout=widgets.Layout(width="440px"))
        self.version_select.observe(self._on_version, "value")
        by_section = "按部分编辑" if self.user.can("manage_packs") else "按部分阅读"
        self.view_select = widgets.ToggleButtons(options=[(by_section, VIEW_CARDS), ("目录表格", VIEW_TABLE)],
                                                 value=VIEW_CARDS, style={"button_width": "96px"})
        self.view_select.observe(self._on_view, "value")
        self.export_buttons = {}
        for fmt, label in EXPORTS:
            b = button(f"导出{label}", icon="download")
            b.on_click(lambda _b, f=fmt: self.export(f))
            self.export_buttons[fmt] = b
        self.download_html = widgets.HTML()
        self.banner = widgets.HTML()
        self.sections_box = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.table_html = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.outside_box = widgets.VBox(layout=widgets.Layout(width="100%"))
        self._build_editor()

        # export buttons are enabled by pack state, so they are not toggled while busy
        self.busy_controls = [self.draft_button, self.topic_select, self.version_select]
        self.children = [
            css(),
            heading("调研资料汇编", "围绕协商议题，自动汇集政策法规、领导讲话、案例模式、专家论证意见和往期协商，"
                                   "再由工作人员取舍、排序、加编者按后导出 Word / PDF。"),
            widgets.HBox([self.topic_select, self.new_topic_button], layout=widgets.Layout(grid_gap="8px")),
            self.topic_form, self.topic_info,
            widgets.HBox([self.draft_button, self.version_select, self.view_select],
                         layout=widgets.Layout(grid_gap="10px", align_items="center", flex_flow="row wrap")),
            self.confirm_box,
            widgets.HBox(list(self.export_buttons.values()), layout=widgets.Layout(grid_gap="6px")),
            self.download_html, self.status_bar, self.banner, self.editor, self.sections_box, self.table_html,
            self.outside_box,
        ]
        self.refresh()

    # -- topics ---------------------------------------------------------------------
    def _build_topic_form(self) -> None:
        style = {"description_width": "64px"}
        wide = widgets.Layout(width="600px")
        self.topic_title_box = widgets.Text(description="议题标题", style=style, layout=wide,
                                            placeholder="如：2025年“推进老年助餐服务提质扩面”双月座谈会")
        self.topic_format_box = widgets.Dropdown(description="协商形式", options=list(FORMATS), value="双月座谈",
                                                 style=style, layout=widgets.Layout(width="300px"))
        self.topic_year_box = widgets.BoundedIntText(description="年度", value=dt.date.today().year, min=1949,
                                                     max=2100, style=style, layout=widgets.Layout(width="200px"))
        self.topic_lead_box = widgets.Text(description="牵头单位", style=style, layout=wide,
                                           placeholder="如：市政协社会和法制委员会")
        self.topic_keywords_box = widgets.Text(description="关键词", style=style, layout=wide,
                                               placeholder="用逗号或顿号分隔，如：老年助餐、中央厨房、助餐补贴")
        self.topic_desc_box = widgets.Textarea(description="议题说明", style=style,
                                               layout=widgets.Layout(width="600px", height="70px"))
        self.create_topic_button = button("创建议题", icon="check", width="110px")
        self.create_topic_button.on_click(lambda _b: self.create_topic())
        cancel = button("取消")
        cancel.on_click(lambda _b: self._toggle_topic_form(False))
        self.topic_form = widgets.VBox([
            self.topic_title_box, widgets.HBox([self.topic_format_box, self.topic_year_box]),
            self.topic_lead_box, self.topic_keywords_box, self.topic_desc_box,
            widgets.HBox([self.create_topic_button, cancel], layout=widgets.Layout(grid_gap="8px")),
        ], layout=widgets.Layout(display="none", border="1px solid #e5e7eb", padding="8px 12px", grid_gap="4px"))

    def _toggle_topic_form(self, show: bool | None = None) -> None:
        visible = self.topic_form.layout.display != "none"
        self.topic_form.layout.display = "flex" if (not visible if show is None else show) else "none"

    @action("正在创建议题…")
    def create_topic(self):
        topic = self.kb.topics.add(self.topic_title_box.value, format=self.topic_format_box.value,
                                   year=self.topic_year_box.value, lead=self.topic_lead_box.value.strip() or None,
                                   keywords=self.topic_keywords_box.value, description=self.topic_desc_box.value,
                                   step=3)
        for box in (self.topic_title_box, self.topic_lead_box, self.topic_keywords_box, self.topic_desc_box):
            box.value = ""
        self._toggle_topic_form(False)
        self._load_topics(select=topic.topic_id)
        self.set_status(f"已创建议题“{topic.title}”，可以点「自动起草」生成资料汇编", "success")
        return topic

    @action()
    def refresh(self) -> None:
        """Reload topics and the shown pack (after indexing or another user's edits)."""
        self._load_topics(select=self.topic_id or None)

    def _load_topics(self, select: str | None = None) -> None:
        topics = self.kb.topics.list()
        options = [(f"{t.title}（{t.format}，{t.year or '—'}年）", t.topic_id) for t in topics]
        ids = [t.topic_id for t in topics]
        self._quiet = True
        try:
            self.topic_select.options = options
            self.topic_select.value = select if select in ids else (ids[0] if ids else None)
        finally:
            self._quiet = False
        self._open_topic(self.topic_select.value)

    def _on_topic(self, change) -> None:
        if not self._quiet:
            self.select_topic(change["new"])

    @action()
    def select_topic(self, topic_id: str | None) -> None:
        if topic_id and self.topic_select.value != topic_id:
            self._quiet = True
            try:
                self.topic_select.value = topic_id
            finally:
                self._quiet = False
        self._open_topic(topic_id)

    def _open_topic(self, topic_id: str | None) -> None:
        self.editing_item = ""
        self.editor.layout.display = "none"
        self.download_html.value = ""
        if not topic_id:
            self.topic_id = ""
            self.topic_info.value = ('<div class="xs-empty">还没有协商议题。'
                                     + ("点「新建议题」创建一个，" if self.user.can("manage_topics") else "请工作人员先创建议题，")
                                     + "然后自动起草调研资料汇编。</div>")
            self._show(None)
            return
        topic = self.kb.topics.get(topic_id)
        self.topic_id = topic.topic_id
        facts = [topic.format, f"{topic.year}年" if topic.year else "", f"牵头：{topic.lead}" if topic.lead else "",
                 f"当前步骤：{topic.step}. {STEPS[topic.step - 1]}"]
        keywords = "、".join(topic.keywords)
        self.topic_info.value = (
            f'<div class="xs-subtitle">{" · ".join(esc(f) for f in facts if f)}'
            + (f"<br>关键词：{esc(keywords)}" if keywords else "")
            + (f"<br>{esc(shorten(topic.description, 160))}" if topic.description else "") + "</div>")
        try:
            pack = self.kb.packs.get(topic.topic_id)
        except PackNotFound:
            pack = None
        self._show(pack)

    # -- pack -------------------------------------------------------------------------
    def _require_topic(self) -> str:
        if not self.topic_id:
            raise KBError("还没有选择协商议题", hint="先在「调研资料汇编」中选择或新建议题")
        return self.topic_id

    def ask_draft(self) -> None:
        """「自动起草」 drafts at once; 「重新起草」 first asks, since it replaces the automatic items."""
        if self.pack is None:
            self.draft()
            return
        self.confirm_box.layout.display = "flex"

    def _confirmed(self) -> None:
        self.confirm_box.layout.display = "none"
        self.draft()

    def _cancel_draft(self) -> None:
        self.confirm_box.layout.display = "none"
        self.set_status("没有重新起草，汇编保持不变", "info")

    @action("正在自动起草，请稍候…")
    def draft(self):
        """Draft (or redraft) the pack; items added, moved, annotated or marked by hand keep their places."""
        pack = self._edit(self.kb.packs.draft)
        if pack is None:
            return None
        self._show(pack)
        thin = [s.label for s in pack.sections if s.thin]
        self.set_status(f"已起草第 {pack.version} 版，共 {pack.item_count} 条"
                        + (f"；材料偏少的部分：{'、'.join(thin)}" if thin else ""), "warning" if thin else "success")
        return pack

    def add_hit(self, hit) -> str:
        """The search panel's 加入资料汇编: add the hit to the current topic's pack."""
        topic_id = self._require_topic()
        if hit.doc_type not in SECTION_LABELS:  # the library would ask for a section on the command line
            raise InvalidPackEdit(f"《{shorten(hit.title, 30)}》的类型是“{DOC_TYPES.get(hit.doc_type, hit.doc_type)}”，"
                                  "不对应汇编的任何部分",
                                  hint="资料汇编只收政策法规、领导讲话、案例模式、专家论证意见和往期协商五类材料")
        if self.pack is not None and self.version == self.latest_version:
            for s_no, pos, item in self.pack.items():
                if (item.doc_id, item.start, item.end) == (hit.doc_id, hit.start, hit.end):
                    raise KBError(f"这段文字已在资料汇编中（{s_no}.{pos}）", hint="可在「调研资料汇编」中调整位置")
        try:
            pack = self.kb.packs.add_hit(topic_id, hit, expected_version=self.latest_version)
        except StaleEdit:
            self._open_topic(topic_id)  # the search panel shows the message; a second click adds to the latest
            raise
        self._show(pack)
        section = next(s.label for s in pack.sections if any(i.doc_id == hit.doc_id and i.start == hit.start
                                                                for i in s.items))
        message = f"已加入资料汇编「{section}」部分（第 {pack.version} 版）"
        self.set_status(message, "success")
        return message

    def _on_version(self, change) -> None:
        if not self._quiet and change["new"]:
            self.open_version(change["new"])

    @action()
    def open_version(self, version: int) -> None:
        """Show an earlier version (read-only); exports then use that version."""
        self._show(self.kb.packs.get(self._require_topic(), int(version)))

    def _on_view(self, change) -> None:
        self.view = change["new"]
        self._render()

    def _show(self, pack) -> None:
        self.pack = pack
        self.download_html.value = ""  # a file exported earlier no longer matches what is shown
        self.version = pack.version if pack else 0
        if pack is None:
            self.latest_version = 0
            history = []
        else:
            history = self.kb.packs.history(self.topic_id)
            self.latest_version = history[0].version
        self._quiet = True
        try:
            self.version_select.options = [
                (f"第{v.version}版 · {v.created_at.replace('T', ' ')[:16]} · {v.user} · {shorten(v.change, 24)}", v.version)
                for v in history]
            self.version_select.value = self.version or None
        finally:
            self._quiet = False
        self.draft_button.description = "重新起草" if pack else "自动起草"
        self.item_count = pack.item_count if pack else 0
        for b in self.export_buttons.values():
            b.disabled = not self.item_count
        self._render()

    @property
    def read_only(self) -> bool:
        return not self.user.can("manage_packs") or (self.version and self.version != self.latest_version)

    def _render(self) -> None:
        pack = self.pack
        if pack is None:
            self.banner.value = ('<div class="xs-empty">这个议题还没有资料汇编。'
                                 + ("点「自动起草」，系统会按五个部分检索并汇集材料；也可以在「检索」中点「加入资料汇编」逐条添加。"
                                    if self.user.can("manage_packs")
                                    else "请工作人员先起草。") + "</div>") if self.topic_id else ""
            self.sections_box.children, self.table_html.value = [], ""
            self.outside_box.children = []
            return
        notes = [f"第 {pack.version} 版，{pack.item_count} 条，{esc(pack.created_by)} 于 "
                 f"{esc(pack.created_at.replace('T', ' ')[:16])} 保存：{esc(pack.change)}"]
        if self.version != self.latest_version:
            notes.append(f"正在查看历史版本（只读）；最新为第 {self.latest_version} 版，编辑总在最新版上进行")
        elif not self.user.can("manage_packs"):
            notes.append(f"{esc(self.user.role_label)}可以阅读和导出，编辑由工作人员进行")
        self.banner.value = '<div class="xs-subtitle">' + "<br>".join(notes) + "</div>"
        self.outside_box.children = self._outside_part(pack)
        if self.view == VIEW_TABLE:
            self.sections_box.children = []
            self.table_html.value = table_html(self.pack_table(), nowrap=("序号", "部分", "重点"))
            return
        self.table_html.value = ""
        rows: list[widgets.Widget] = []
        for s_no, section in enumerate(pack.sections, start=1):
            head = f'<div class="xs-section-head">{CHINESE_NUMBERS[s_no - 1]}、{esc(section.label)}（{len(section.items)} 条）</div>'
            if section.note:
                head += f'<div class="xs-thin">{esc(section.note)}</div>'
            rows.append(widgets.HTML(head))
            for pos, item in enumerate(section.items, start=1):
                rows.append(self._item_card(s_no, pos, len(section.items), item))
        self.sections_box.children = rows

    def _item_card(self, s_no: int, pos: int, count: int, item) -> widgets.VBox:
        badges = f'<span class="xs-badge xs-badge-gray">{s_no}.{pos}</span>'
        if item.key:
            badges += '<span class="xs-badge xs-badge-key">★ 重点阅读</span>'
        if item.origin == "manual":
            badges += '<span class="xs-badge xs-badge-gray">手工添加</span>'
        if item.status_note:
            badges += f'<span class="xs-badge xs-badge-warn">{esc(item.status_note)}</span>'
        label = passage_label(item.label, item.quote)
        quote = compact(item.quote)
        preview = quote if len(quote) <= QUOTE_PREVIEW else quote[:QUOTE_PREVIEW] + "……"
        html = (f'<div>{badges}<span class="xs-card-title">{esc(item.title)}</span>'
                + (f'<span class="xs-cite">　{esc(label)}</span>' if label else "") + "</div>"
                f'<div class="xs-card-text">{esc(preview)}</div>'
                f'<div class="xs-cite">出处：{esc(item.citation.formatted())}</div>')
        if item.note:
            html += f'<div class="xs-note xs-note-supplement"><b>编者按：</b>{esc(item.note)}</div>'
        html += self._expert_notes_line(item)
        buttons = {"open": button("打开原文", icon="file-text-o")}
        if self.user.can("manage_packs"):  # members and experts get no edit buttons at all
            buttons = {
                "up": button("上移", icon="arrow-up"), "down": button("下移", icon="arrow-down"),
                "key": button("取消重点" if item.key else "标为重点", icon="star"),
                "edit": button("编者按 / 移动", icon="pencil"), "drop": button("移出汇编", icon="trash"),
                **buttons,
            }
            buttons["up"].on_click(lambda _b: self.move_item(item.item_id, position=pos - 1))
            buttons["down"].on_click(lambda _b: self.move_item(item.item_id, position=pos + 1))
            buttons["key"].on_click(lambda _b: self.mark_key(item.item_id, not item.key))
            buttons["edit"].on_click(lambda _b: self.edit_item(item.item_id))
            buttons["drop"].on_click(lambda _b: self.drop_item(item.item_id))
            buttons["up"].disabled = pos == 1
            buttons["down"].disabled = pos == count
            if self.read_only:  # an earlier version: editing happens on the latest one
                for name in ("up", "down", "key", "edit", "drop"):
                    buttons[name].disabled = True
                    buttons[name].tooltip = f"只读：这是历史版本，请在最新的第 {self.latest_version} 版上编辑"
        buttons["open"].on_click(lambda _b: self._open(item))
        if self.on_open is None or item.source_status == "missing":
            buttons["open"].layout.display = "none"
        card = widgets.VBox([widgets.HTML(html), widgets.HBox(list(buttons.values()),
                                                             layout=widgets.Layout(grid_gap="6px", flex_flow="row wrap"))])
        card.add_class("xs-card")
        card.item = item
        card.buttons = buttons
        return card

    def _expert_notes_line(self, item) -> str:
        if item.source_status == "missing":
            return ""
        notes = self.kb.notes.for_span(item.doc_id, item.start, item.end)
        if not notes:
            return ""
        badges = "".join(f'<span class="xs-badge xs-stance-{STANCE_CSS.get(n.stance, "other")}">{esc(n.stance)}</span>'
                         for n in notes)
        first = notes[0]
        waiting = sum(n.review == "pending" for n in notes) if self.user.can("review_notes") else 0
        return (f'<div class="xs-cite">专家论证意见 {len(notes)} 条' + (f"（{waiting} 条待审）" if waiting else "")
                + f'：{badges}{esc(first.author)}：{esc(shorten(first.text, 60))}</div>')

    def _outside_part(self, pack) -> list[widgets.Widget]:
        """Notes on the topic's documents whose passage is in no item: staff may pull the passage in;
        members read the accepted ones (they go into the export's 其他论证意见)."""
        notes = self.kb.packs.outside_notes(pack)
        if not notes:
            return []
        staff = self.user.can("manage_packs")
        title = "未收入汇编的段落上的论证意见" if staff else "其他论证意见"
        hint = ("点「加入汇编」把意见所指的段落加入汇编；意见经审核采纳后随汇编导出（其他论证意见）。" if staff
                else "以下论证意见针对本议题相关文件中未收入本汇编的段落。")
        titles = self.kb.store.titles()
        out: list[widgets.Widget] = [widgets.HTML(f'<div class="xs-section-head">{esc(title)}（{len(notes)} 条）</div>'
                                                  f'<div class="xs-subtitle">{esc(hint)}</div>')]
        for note in notes:
            review = f'<span class="xs-badge xs-badge-gray">{esc(note.review_label)}</span>'
            parts = [widgets.HTML(review + note_html(note, title=titles.get(note.doc_id, "")))]
            card = widgets.VBox(parts)
            card.buttons = {}
            if staff:
                add = button("加入汇编", icon="plus")
                add.on_click(lambda _b, n=note.note_id: self.add_note_passage(n))
                if self.read_only or note.orphaned:
                    add.disabled = True
                    add.tooltip = ("原文已改动，无法定位段落" if note.orphaned
                                   else f"只读：这是历史版本，请在最新的第 {self.latest_version} 版上编辑")
                card.buttons["add"] = add
                card.children = parts + [add]
            card.add_class("xs-card")
            card.note = note
            out.append(card)
        return out

    def outside_cards(self) -> list[widgets.VBox]:
        return [c for c in self.outside_box.children if hasattr(c, "note")]

    @action("正在加入汇编…")
    def add_note_passage(self, note_id: str):
        """加入汇编: add the passage an expert note is about to the pack."""
        pack = self._edit(self.kb.packs.add_note_passage, note_id)
        if pack is not None:
            self._edited(pack, pack.change)
        return pack

    def _open(self, item) -> None:
        if self.on_open:
            self.on_open(item.doc_id, item.start)

    def cards(self) -> list[widgets.VBox]:
        return [c for c in self.sections_box.children if hasattr(c, "item")]

    def pack_table(self) -> pd.DataFrame:
        """The pack as a table: one row per item, in reading order."""
        columns = ["序号", "部分", "标题", "条款/段落", "摘录", "出处", "重点", "编者按", "状态"]
        if self.pack is None:
            return pd.DataFrame(columns=columns)
        labels = dict(SECTIONS)
        rows = [{"序号": f"{s}.{p}", "部分": labels[self.pack.sections[s - 1].key], "标题": shorten(i.title, 30),
                 "条款/段落": passage_label(i.label, i.quote), "摘录": shorten(i.quote, 60),
                 "出处": i.citation.formatted(), "重点": "★" if i.key else "", "编者按": i.note,
                 "状态": i.status_note} for s, p, i in self.pack.items()]
        return pd.DataFrame(rows, columns=columns)

    # -- editing ---------------------------------------------------------------------
    def _build_editor(self) -> None:
        self.editor_title = widgets.HTML()
        self.move_section = widgets.Dropdown(description="移到部分", options=[(label, key) for key, label in SECTIONS],
                                             style={"description_width": "64px"}, layout=widgets.Layout(width="260px"))
        self.move_button = button("移动", icon="share")
        self.move_button.on_click(lambda _b: self.move_item(self.editing_item, section=self.move_section.value))
        self.note_box = widgets.Textarea(description="编者按", style={"description_width": "64px"},
                                         placeholder="写给委员的提示：这段材料为什么重要、与议题的关系",
                                         layout=widgets.Layout(width="640px", height="70px"))
        self.save_note_button = button("保存编者按", icon="check")
        self.save_note_button.on_click(lambda _b: self.save_note())
        close = button("收起", icon="times")
        close.on_click(lambda _b: self._close_editor())
        self.editor = widgets.VBox([
            self.editor_title, widgets.HBox([self.move_section, self.move_button], layout=widgets.Layout(grid_gap="8px")),
            self.note_box, widgets.HBox([self.save_note_button, close], layout=widgets.Layout(grid_gap="8px")),
        ], layout=widgets.Layout(display="none", border="1px solid #fdba74", padding="8px 12px", grid_gap="4px"))

    def _close_editor(self) -> None:
        self.editing_item = ""
        self.editor.layout.display = "none"

    def edit_item(self, item_id: str) -> None:
        """Open the editor (editor's note, move to another section) for one item."""
        section, _index, item = self.pack.find(item_id)
        self.editing_item = item.item_id
        self.editor_title.value = f'<div class="xs-card-title">编辑条目：{esc(shorten(item.heading, 50))}</div>'
        self.move_section.value = section.key
        self.note_box.value = item.note
        self.editor.layout.display = "flex"

    def _edit(self, method: Callable, *args, **kwargs):
        """`method(topic, *args, **kwargs)` of `kb.packs`, made on the latest version shown. On `StaleEdit`
        say so, reload the latest version and return None; a note being written stays in the editor."""
        topic_id = self._require_topic()
        try:
            return method(topic_id, *args, expected_version=self.latest_version, **kwargs)
        except StaleEdit as exc:
            editing, typed = self.editing_item, self.note_box.value
            self._open_topic(topic_id)
            if editing and self.pack is not None:
                try:
                    self.edit_item(editing)
                    self.note_box.value = typed
                except KBError:
                    pass  # the item is gone in the latest version; nothing to reopen
            self.set_status(app_message(exc), "error")
            return None

    def _edited(self, pack, message: str) -> None:
        self._show(pack)
        if self.editing_item:
            try:
                self.edit_item(self.editing_item)
            except KBError:
                self._close_editor()
        self.set_status(message, "success")

    @action()
    def move_item(self, item_id: str, *, section: str | None = None, position: int | None = None):
        pack = self._edit(self.kb.packs.move, item_id, section=section, position=position)
        if pack is not None:
            self._edited(pack, pack.change)
        return pack

    @action()
    def mark_key(self, item_id: str, key: bool = True):
        pack = self._edit(self.kb.packs.mark_key, item_id, key)
        if pack is not None:
            self._edited(pack, pack.change)
        return pack

    @action()
    def drop_item(self, item_id: str):
        pack = self._edit(self.kb.packs.drop, item_id)
        if pack is None:
            return None
        if self.editing_item == item_id:
            self._close_editor()
        self._edited(pack, pack.change + "（可在「版本」中打开上一版找回）")
        return pack

    @action()
    def save_note(self):
        if not self.editing_item:
            raise KBError("没有正在编辑的条目", hint="在条目下点「编者按 / 移动」")
        pack = self._edit(self.kb.packs.note, self.editing_item, self.note_box.value)
        if pack is not None:
            self._edited(pack, pack.change)
        return pack

    @action()
    def reorder(self, section: str, order: list[str]):
        """Put a section's items in `order` (item ids)."""
        pack = self._edit(self.kb.packs.reorder, section, order)
        if pack is not None:
            self._edited(pack, pack.change)
        return pack

    # -- export --------------------------------------------------------------------------
    @action("正在导出…")
    def export(self, fmt: str):
        """Write the shown version as docx / pdf / html / md under <kb home>/exports and offer it for download."""
        folder = Path(self.kb.home) / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        result = self.kb.packs.export(self._require_topic(), fmt, folder, version=self.version or None)
        self.last_export = str(result.path)
        self.download_html.value = (
            f'<div class="xs-status xs-status-success">{download_link(result.path)}'
            f'<span class="xs-subtitle">　第 {result.version} 版，{result.items} 条'
            + (f"，{result.pages} 页" if result.pages else "") + f"，{result.bytes / 1024:.0f} KB；"
            f"另存于知识库的 exports 文件夹</span></div>")
        self.set_status(f"已导出 {Path(result.path).name}", "success")
        return result
