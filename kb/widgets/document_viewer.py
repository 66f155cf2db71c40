"""原文阅读: a document's text in its own structure (章/条, paragraphs, pages) with the expert notes
shown beside the passages they are anchored to."""
from __future__ import annotations

import ipywidgets as widgets
from traitlets import Int, Unicode

from ._common import Panel, action, button, compact, css, esc, heading, passage_label, shorten
from ._notes import note_html, notes_for_document


class DocumentViewer(Panel):
    """Shows one document; `show(doc_id, start, end)` opens it with a passage in focus."""

    doc_id = Unicode("", help="the document shown, '' when none")
    title = Unicode("")
    focus_start = Int(-1, help="character offset of the passage in focus, -1 for none")
    focus_end = Int(-1)
    note_count = Int(0, help="expert notes shown on this document")

    def __init__(self, kb, *, height: str = "620px", **kwargs):
        super().__init__(kb, **kwargs)
        self.header = widgets.HTML()
        self.focus_html = widgets.HTML()
        self.body = widgets.HTML(layout=widgets.Layout(overflow="auto", max_height=height))
        self.refresh_button = button("刷新意见", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.close_button = button("关闭", icon="times")
        self.close_button.on_click(lambda _b: self.clear())
        self.toolbar = widgets.HBox([self.refresh_button, self.close_button],
                                    layout=widgets.Layout(grid_gap="6px", display="none"))
        self.busy_controls = [self.refresh_button, self.close_button]
        self.children = [css(), heading("原文阅读"), self.status_bar, self.header, self.toolbar,
                         self.focus_html, self.body]
        self.clear()

    def clear(self) -> None:
        self.doc_id, self.title = "", ""
        self.focus_start = self.focus_end = -1
        self.note_count = 0
        self.header.value = ('<div class="xs-empty">在检索结果中点「打开原文」，'
                             '这里会显示全文、条款与页码，以及专家的论证意见。</div>')
        self.focus_html.value = self.body.value = ""
        self.toolbar.layout.display = "none"
        self.set_status("")

    @action("正在打开原文…")
    def show(self, doc_id: str, start: int | None = None, end: int | None = None) -> None:
        """Open `doc_id`; the passage covering `start` is marked and repeated at the top."""
        doc = self.kb.document(doc_id)
        self.doc_id, self.title = doc.doc_id, doc.title
        self.focus_start = -1 if start is None else int(start)
        self.focus_end = -1 if end is None else int(end)
        self._render(doc)
        self.toolbar.layout.display = "flex"
        self.set_status(f"已打开《{shorten(doc.title, 40)}》", "success")

    def show_hit(self, hit) -> str:
        """Open a search hit's document at its passage (the search panel's 打开原文)."""
        self.show(hit.doc_id, hit.start, hit.end)
        return f"已在右侧打开《{shorten(hit.title, 30)}》"

    @action()
    def refresh(self) -> None:
        if self.doc_id:
            self._render(self.kb.document(self.doc_id))
            self.set_status("已刷新", "success")

    # -- rendering ------------------------------------------------------------------
    def _render(self, doc) -> None:
        meta = [("类型", doc.type_label), ("发文机关", doc.issuer), ("文号", doc.doc_number), ("日期", doc.date),
                ("层级", doc.level_label), ("地区", doc.region), ("效力", doc.validity_label),
                ("替代文件", doc.replaced_by), ("来源文件", (doc.source or "").rsplit("/", 1)[-1])]
        meta_html = "".join(f'<span class="xs-meta-field"><b>{esc(k)}</b>：{esc(v)}</span>' for k, v in meta if v)
        self.header.value = (f'<div class="xs-doc-head"><div class="xs-card-title">{esc(doc.title)}</div>'
                             f'<div class="xs-doc-meta">{meta_html}</div></div>')
        notes = notes_for_document(self.kb, doc.doc_id)
        self.note_count = len(notes)
        anchored = [n for n in notes if not n.orphaned]
        orphaned = [n for n in notes if n.orphaned]

        segments = self._segments(doc)
        rows, focus_row = [], ""
        with_notes = bool(notes)
        for start, end, label, page in segments:
            passage = doc.text[start:end]
            if not passage.strip():
                continue
            in_focus = self.focus_start >= 0 and start <= self.focus_start < max(end, start + 1)
            tags = ""
            if page:
                tags += f'<span class="xs-passage-page">第{page}页</span>'
            label = passage_label(label, passage)
            if label:
                tags += f'<span class="xs-passage-label">{esc(shorten(label, 24))}</span>'
            cls = "xs-passage xs-passage-focus" if in_focus else "xs-passage"
            cell = f'<div class="{cls}">{tags}{esc(compact(passage))}</div>'
            if in_focus:
                focus_row = cell
            if with_notes:
                here = [n for n in anchored if start <= n.start < end]
                cell += "<div>" + "".join(note_html(n) for n in here) + "</div>"
            rows.append(cell)
        grid_cls = "xs-doc" if with_notes else "xs-doc xs-doc-nonotes"
        orphan_html = ""
        if orphaned:
            orphan_html = ('<div class="xs-section-head">原文已变动、无法定位的论证意见（保留原引文）</div>'
                           + "".join(note_html(n) for n in orphaned))
        self.body.value = f'<div class="{grid_cls}">{"".join(rows)}</div>{orphan_html}'
        self.focus_html.value = (f'<div class="xs-section-head">定位段落</div>{focus_row}'
                                 f'<div class="xs-section-head">全文'
                                 + (f"（{len(notes)} 条论证意见附在相应段落旁）" if notes else "") + "</div>"
                                 if focus_row else
                                 (f'<div class="xs-subtitle">{len(notes)} 条论证意见附在相应段落旁</div>'
                                  if notes else ""))

    @staticmethod
    def _segments(doc) -> list[tuple[int, int, str, int | None]]:
        """Chunks in order, plus any text between them (headings, blank-line blocks) unlabelled."""
        out, pos = [], 0
        for chunk in sorted(doc.chunks, key=lambda c: c.start):
            if chunk.start > pos:
                out.append((pos, chunk.start, "", None))
            start = max(chunk.start, pos)
            if chunk.end > start:
                out.append((start, chunk.end, chunk.label, chunk.page))
            pos = max(pos, chunk.end)
        if pos < len(doc.text):
            out.append((pos, len(doc.text), "", None))
        return out
