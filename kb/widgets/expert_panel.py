"""专家论证: pick a passage, choose a stance, write a note; read, filter and reply to notes.

Every note waits for staff review (待审). Staff see the waiting notes with 采纳入汇编 / 仅内部参考
buttons (and may change a decision later); everyone sees each note's review state; members do
not see notes kept for internal reference (the library filters by role)."""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
from traitlets import Int, List, Unicode

from kb.annotations import REVIEW_LABELS, STANCES
from kb.errors import InvalidNote

from ._common import Panel, action, button, css, esc, heading, passage_label, shorten, table_html
from ._notes import note_html, notes_table

ALL = ""
SCOPE_ALL, SCOPE_DOC = "all", "doc"


class ExpertPanel(Panel):
    """Write anchored expert notes (experts and staff) and reply to them (every role)."""

    doc_id = Unicode("", help="document of the passage being annotated")
    passage_start = Int(-1)
    passage_end = Int(-1)
    stance = Unicode(STANCES[0])
    filter_stance = Unicode(ALL)
    filter_author = Unicode(ALL)
    scope = Unicode(SCOPE_ALL, help="list notes on all documents or on the selected one")
    notes = List(help="notes listed under the current filters (Annotation objects)")
    last_note_id = Unicode("", help="id of the note saved last")
    pending_ids = List(help="ids of the notes waiting for staff review (staff only)")

    def __init__(self, kb, *, on_open: Callable | None = None, **kwargs):
        super().__init__(kb, **kwargs)
        self.on_open = on_open
        self._passages: list[tuple[int, int, str]] = []
        self._titles: dict[str, str] = {}
        self._text = ""

        field = widgets.Layout(width="98%")
        label_style = {"description_width": "52px"}
        self.doc_select = widgets.Dropdown(description="文档", style=label_style, layout=field)
        self.passage_select = widgets.Dropdown(description="段落", style=label_style, layout=field)
        self.quote_box = widgets.Textarea(description="引文", style=label_style, layout=widgets.Layout(width="98%", height="96px"),
                                          placeholder="默认引用整段；可删减为其中要评论的一句原话（须与原文一致）")
        self.stance_buttons = widgets.ToggleButtons(options=list(STANCES), value=STANCES[0], description="立场",
                                                    style={"description_width": "52px", "button_width": "72px"})
        self.text_box = widgets.Textarea(description="意见", style=label_style, layout=widgets.Layout(width="98%", height="110px"),
                                         placeholder="写明论证意见：依据、判断和建议")
        self.save_button = button("保存论证意见", icon="check", width="140px")
        self.save_button.style.button_color = "#b91c1c"
        self.save_button.style.text_color = "white"
        self.open_button = button("查看原文", icon="file-text-o")
        self.doc_select.observe(self._on_doc, "value")
        self.passage_select.observe(self._on_passage, "value")
        self.stance_buttons.observe(lambda c: setattr(self, "stance", c["new"]), "value")
        self.save_button.on_click(lambda _b: self.save_note())
        self.open_button.on_click(lambda _b: self._open_source())
        if on_open is None:
            self.open_button.layout.display = "none"
        can_write = self.allow(self.save_button, "annotate")
        self.role_note = widgets.HTML()
        if not can_write:  # the whole form is hidden (below); disabled too, should it ever be shown
            self.quote_box.disabled = self.text_box.disabled = self.stance_buttons.disabled = True
            self.role_note.value = (f'<div class="xs-status xs-status-info">{esc(self.user.role_label)}可以阅读和回复论证意见；'
                                    "锚定到原文的新意见由专家或工作人员撰写。</div>")

        self.stance_filter = widgets.Dropdown(description="立场", style={"description_width": "36px"},
                                              options=[("全部", ALL)] + [(s, s) for s in STANCES],
                                              layout=widgets.Layout(width="150px"))
        self.author_filter = widgets.Dropdown(description="作者", style={"description_width": "36px"},
                                              options=[("全部", ALL)], layout=widgets.Layout(width="190px"))
        self.scope_select = widgets.Dropdown(options=[("全部文档", SCOPE_ALL), ("所选文档", SCOPE_DOC)],
                                             layout=widgets.Layout(width="120px"))
        self._quiet = False  # set while the panel itself changes filter options
        for control in (self.stance_filter, self.author_filter, self.scope_select):
            control.observe(self._on_filter, "value")
        self.table_html = widgets.HTML()
        self.notes_html = widgets.HTML(layout=widgets.Layout(max_height="420px", overflow="auto"))
        self.reply_select = widgets.Dropdown(description="回复", style=label_style, layout=field)
        self.reply_box = widgets.Textarea(placeholder="写下回复（委员、专家、工作人员都可以回复）",
                                          layout=widgets.Layout(width="98%", height="64px"))
        self.reply_button = button("发送回复", icon="reply", width="110px")
        self.reply_button.on_click(lambda _b: self.send_reply())
        self.allow(self.reply_button, "reply")

        self._build_review()
        self.busy_controls = [self.save_button, self.reply_button, self.doc_select, self.passage_select,
                              self.accept_button, self.internal_button]
        self.writer = widgets.VBox([
            widgets.HTML('<div class="xs-section-head">撰写论证意见</div>'),
            self.doc_select, self.passage_select, self.quote_box, self.stance_buttons, self.text_box,
            widgets.HBox([self.save_button, self.open_button], layout=widgets.Layout(grid_gap="8px")),
        ], layout=widgets.Layout(width="46%", min_width="0", grid_gap="4px",
                                 display=None if can_write else "none"))
        reader = widgets.VBox([
            widgets.HTML('<div class="xs-section-head">论证意见</div>'),
            widgets.HBox([self.stance_filter, self.author_filter, self.scope_select],
                         layout=widgets.Layout(grid_gap="6px", flex_flow="row wrap")),
            self.table_html, self.notes_html,
            widgets.HTML('<div class="xs-section-head">回复</div>'),
            self.reply_select, self.reply_box, self.reply_button, self.decision_box,
        ], layout=widgets.Layout(width="54%" if can_write else "100%", min_width="0", grid_gap="4px"))
        self.children = [
            css(),
            heading("专家论证意见", "选定原文段落，表明立场（支持、质疑、补充、存疑）并写下意见；意见附在原文旁，"
                                   "经工作人员审核采纳后进入调研资料汇编。"),
            self.status_bar, self.role_note, self.review_box,
            widgets.HBox([self.writer, reader], layout=widgets.Layout(width="100%", grid_gap="18px")),
        ]
        self.refresh_documents()
        self.refresh_notes()

    # -- staff review -------------------------------------------------------------------------
    def _build_review(self) -> None:
        """The 待审 list (one card per waiting note, with its two buttons) and, under the notes, a
        row to change the decision on any listed note. Shown to staff only."""
        self.review_list = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.review_reason = widgets.Text(placeholder="审核说明（可选）", layout=widgets.Layout(width="98%"))
        self.review_box = widgets.VBox([
            widgets.HTML('<div class="xs-section-head">待审的论证意见</div>'
                         '<div class="xs-subtitle">采纳的意见委员可以看到，并随调研资料汇编导出；'
                         '仅内部参考的意见只有工作人员和专家可以看到。</div>'),
            self.review_list, self.review_reason,
        ], layout=widgets.Layout(width="100%", grid_gap="4px"))
        self.decision_select = widgets.Dropdown(description="审核", style={"description_width": "52px"},
                                                layout=widgets.Layout(width="98%"))
        self.accept_button = button(REVIEW_LABELS["accepted"], icon="check", width="120px")
        self.internal_button = button(REVIEW_LABELS["internal"], icon="lock", width="120px")
        self.accept_button.on_click(lambda _b: self.review_note(self.decision_select.value, "accepted"))
        self.internal_button.on_click(lambda _b: self.review_note(self.decision_select.value, "internal"))
        self.decision_box = widgets.VBox([
            widgets.HTML('<div class="xs-section-head">审核（可更改）</div>'), self.decision_select,
            widgets.HBox([self.accept_button, self.internal_button], layout=widgets.Layout(grid_gap="8px")),
        ], layout=widgets.Layout(grid_gap="4px"))
        if not self.allow(self.accept_button, "review_notes"):
            self.allow(self.internal_button, "review_notes")
            self.review_box.layout.display = self.decision_box.layout.display = "none"

    def _review_card(self, note) -> widgets.VBox:
        accept = button(REVIEW_LABELS["accepted"], icon="check", width="120px")
        internal = button(REVIEW_LABELS["internal"], icon="lock", width="120px")
        accept.on_click(lambda _b: self.review_note(note.note_id, "accepted"))
        internal.on_click(lambda _b: self.review_note(note.note_id, "internal"))
        card = widgets.VBox([widgets.HTML(note_html(note, title=self._titles.get(note.doc_id, ""))),
                             widgets.HBox([accept, internal], layout=widgets.Layout(grid_gap="8px"))])
        card.add_class("xs-card")
        card.note = note
        card.buttons = {"accept": accept, "internal": internal}
        return card

    def review_cards(self) -> list[widgets.VBox]:
        return [c for c in self.review_list.children if hasattr(c, "note")]

    @action("正在保存审核结论…")
    def review_note(self, note_id: str | None, decision: str):
        """Staff's decision on a note: "accepted" (采纳入汇编) or "internal" (仅内部参考)."""
        if not note_id:
            raise InvalidNote("还没有选择要审核的意见", hint="在「审核」下拉框中选择一条意见")
        note = self.kb.notes.review(note_id, decision, reason=self.review_reason.value or "")
        self.review_reason.value = ""
        self._refresh_notes()
        self.set_status(f"已审核：{note.author}的{note.stance}意见“{shorten(note.text, 24)}”——{note.review_label}",
                        "success")
        return note

    def _refresh_review(self) -> None:
        if not self.user.can("review_notes"):
            return
        pending = self.kb.notes.pending()
        self.pending_ids = [n.note_id for n in pending]
        self.review_list.children = [self._review_card(n) for n in pending] or [
            widgets.HTML('<div class="xs-empty">没有待审的论证意见。</div>')]
        current = self.decision_select.value
        self.decision_select.options = [(f"［{n.review_label}］{n.stance}｜{n.author}：{shorten(n.text, 30)}", n.note_id)
                                        for n in self.notes]
        ids = [n.note_id for n in self.notes]
        self.decision_select.value = current if current in ids else (ids[0] if ids else None)

    # -- choosing a passage -----------------------------------------------------------------
    def refresh_documents(self) -> None:
        docs = self.kb.documents()
        self._titles = {d.doc_id: d.title for d in docs}
        current = self.doc_select.value
        self.doc_select.options = [(f"［{d.type_label}］{shorten(d.title, 40)}", d.doc_id) for d in docs]
        self.doc_select.value = current if current in self._titles else (docs[0].doc_id if docs else None)

    def _on_doc(self, change) -> None:
        doc_id = change["new"]
        self.doc_id = doc_id or ""
        self._passages, self._text = [], ""
        if doc_id:
            doc = self.kb.document(doc_id)
            self._text = doc.text
            for chunk in doc.chunks:
                passage = doc.text[chunk.start:chunk.end]
                label = passage_label(chunk.label, passage)
                page = f"第{chunk.page}页 " if chunk.page else ""
                self._passages.append((chunk.start, chunk.end, f"{page}{label + '：' if label else ''}{shorten(passage, 36)}"))
        self.passage_select.options = [(label, i) for i, (_s, _e, label) in enumerate(self._passages)]
        self.passage_select.value = 0 if self._passages else None
        if self.scope == SCOPE_DOC:
            self.refresh_notes()

    def _on_passage(self, change) -> None:
        index = change["new"]
        if index is None or index >= len(self._passages):
            self.passage_start = self.passage_end = -1
            self.quote_box.value = ""
            return
        start, end, _label = self._passages[index]
        self.passage_start, self.passage_end = start, end
        self.quote_box.value = self._text[start:end].strip()

    def select_passage(self, doc_id: str, start: int) -> None:
        """Select the passage of `doc_id` that holds offset `start`."""
        self.doc_select.value = doc_id
        for i, (s, e, _label) in enumerate(self._passages):
            if s <= start < e:
                self.passage_select.value = i
                break

    def start_note(self, hit) -> str:
        """The search panel's 添加论证意见: select the hit's passage here."""
        self.kb.user.require("annotate")
        self.select_passage(hit.doc_id, hit.start)
        self.text_box.value = ""
        self.set_status(f"已选中《{shorten(hit.title, 30)}》的段落，请选择立场并写下意见", "info")
        return "已在「专家论证」中选中该段落，请切换过去填写意见"

    def _anchor_args(self, quote: str) -> dict:
        """Offsets of `quote` inside the selected passage, so a sentence that recurs elsewhere in the
        document is anchored where the expert picked it."""
        if self.passage_start < 0:
            return {}
        passage = self._text[self.passage_start:self.passage_end]
        at = passage.find(quote)
        if at < 0:
            return {}
        start = self.passage_start + at
        return {"start": start, "end": start + len(quote)}

    @action("正在保存…")
    def save_note(self):
        """Save the note on the selected passage (or the sentence typed in 引文)."""
        self.kb.user.require("annotate")
        if not self.doc_id:
            raise InvalidNote("还没有选择文档", hint="先在「文档」中选择，或从检索结果点「添加论证意见」")
        quote = (self.quote_box.value or "").strip()
        text = (self.text_box.value or "").strip()
        if not text:
            raise InvalidNote("论证意见内容为空", hint="在「意见」框中写下判断和依据")
        if not quote:
            raise InvalidNote("没有给出引文", hint="在「段落」中选择要评论的段落，或在「引文」框中摘录其中的原话")
        if "".join(quote.split()) not in "".join(self._text.split()):
            raise InvalidNote("引文与原文不一致", hint="引文须是原文中的原话；重新选择段落可恢复整段原文")
        note = self.kb.notes.add(self.doc_id, quote, stance=self.stance_buttons.value, text=text,
                                 **self._anchor_args(quote))
        self.last_note_id = note.note_id
        self.text_box.value = ""
        self._refresh_notes()
        where = f"（{note.anchor_info}）" if note.anchor_info else ""
        self.set_status(f"已保存{note.stance}意见：“{shorten(note.quote, 24)}”{where}；待工作人员审核，采纳后进入调研资料汇编",
                        "success")
        return note

    def _open_source(self) -> None:
        if self.on_open and self.doc_id:
            self.on_open(self.doc_id, self.passage_start)

    # -- reading and replying -----------------------------------------------------------------
    def _on_filter(self, _change) -> None:
        if not self._quiet:
            self.refresh_notes()

    @action()
    def refresh_notes(self) -> None:
        self._refresh_notes()

    def _refresh_notes(self) -> None:
        notes_api = self.kb.notes
        self.filter_stance = self.stance_filter.value or ALL
        self.filter_author = self.author_filter.value or ALL
        self.scope = self.scope_select.value
        everyone = notes_api.find()
        authors = sorted({n.author for n in everyone})
        options = [("全部", ALL)] + [(a, a) for a in authors]
        if list(self.author_filter.options) != options:
            keep = self.filter_author if self.filter_author in authors else ALL
            self._quiet = True
            try:
                self.author_filter.options = options
                self.author_filter.value = keep
            finally:
                self._quiet = False
            self.filter_author = keep
        doc_id = self.doc_id if self.scope == SCOPE_DOC else None
        self.notes = notes_api.find(doc_id=doc_id or None, stance=self.filter_stance or None,
                                    author=self.filter_author or None)
        table = notes_table(self.notes, self._titles)
        table.insert(1, "审核", [n.review_label for n in self.notes])
        self.table_html.value = table_html(table, "暂无符合条件的论证意见" if everyone else "还没有论证意见。",
                                           nowrap=("立场", "审核", "作者", "回复", "时间"))
        self.notes_html.value = "".join(self._note_html(n) for n in self.notes)
        current = self.reply_select.value
        self.reply_select.options = [(f"{n.stance}｜{n.author}：{shorten(n.text, 30)}", n.note_id) for n in self.notes]
        ids = [n.note_id for n in self.notes]
        self.reply_select.value = current if current in ids else (ids[0] if ids else None)
        self._refresh_review()

    def _note_html(self, note) -> str:
        """A note with its review state (a member reads 待审 notes as not yet reviewed)."""
        body = note_html(note, title=self._titles.get(note.doc_id, ""))
        kind = {"accepted": "xs-stance-support", "internal": "xs-badge-gray"}.get(note.review, "xs-badge-warn")
        who = f"（{note.reviewed_by}）" if note.reviewed_by else ""
        return (f'<div class="xs-note-meta"><span class="xs-badge {kind}">{esc(note.review_label)}</span>{esc(who)}'
                f'{esc("：" + note.review_reason) if note.review_reason else ""}</div>{body}')

    @action("正在发送…")
    def send_reply(self):
        note_id = self.reply_select.value
        if not note_id:
            raise InvalidNote("还没有选择要回复的意见", hint="在「回复」下拉框中选择一条意见")
        if not (self.reply_box.value or "").strip():
            raise InvalidNote("回复内容为空", hint="在回复框中写下要说的话")
        reply = self.kb.notes.reply(note_id, self.reply_box.value or "")
        self.reply_box.value = ""
        self._refresh_notes()
        self.set_status("回复已发送", "success")
        return reply
