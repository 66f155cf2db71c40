"""文档管理: what the knowledge base holds, and (for staff) adding files with a progress bar and
the list of skipped files with their reasons."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import ipywidgets as widgets
import pandas as pd
from traitlets import Int, List, Unicode

from indexer.loaders import SUPPORTED_SUFFIXES
from indexer.errors import KBError
from indexer.metadata import DOC_TYPES

from ._common import Panel, action, button, css, esc, heading, table_html

UPLOAD_FOLDER = "uploads"


class IndexingPanel(Panel):
    """Upload files or name a folder, index them, and see what was skipped and why."""

    folder = Unicode("", help="a folder or file path to index, besides uploads")
    indexed_documents = Int(0, help="documents added or updated by the last run")
    skipped = List(help="[(path, reason)] of the last run")
    last_report = Unicode("", help="one-line summary of the last run")

    def __init__(self, kb, *, on_indexed: Callable[[object], None] | None = None, **kwargs):
        super().__init__(kb, **kwargs)
        self.on_indexed = on_indexed
        accept = ",".join(sorted(SUPPORTED_SUFFIXES))
        self.upload = widgets.FileUpload(accept=accept, multiple=True, description="选择文件",
                                         layout=widgets.Layout(width="140px"))
        self.upload.observe(self._on_upload, "value")
        self.upload_label = widgets.HTML('<span class="xs-subtitle">未选择文件</span>')
        self.folder_box = widgets.Text(placeholder="或填写服务器上的文件夹路径，如 /data/协商资料/2025",
                                       layout=widgets.Layout(width="460px"))
        self.index_button = button("开始索引", icon="upload", width="120px")
        self.index_button.style.button_color = "#b91c1c"
        self.index_button.style.text_color = "white"
        self.index_button.on_click(lambda _b: self.run_index())
        self.progress = widgets.FloatProgress(value=0, min=0, max=1, description="进度",
                                              bar_style="", layout=widgets.Layout(width="460px"))
        self.progress_label = widgets.HTML()
        self.progress_row = widgets.HBox([self.progress, self.progress_label],
                                         layout=widgets.Layout(align_items="center", grid_gap="8px", display="none"))
        self.report_html = widgets.HTML()
        self.summary_html = widgets.HTML()
        self.documents_html = widgets.HTML(layout=widgets.Layout(max_height="420px", overflow="auto"))
        self.refresh_button = button("刷新列表", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())

        staff_note = widgets.HTML()
        self.upload_row = widgets.HBox([self.upload, self.upload_label],
                                       layout=widgets.Layout(align_items="center", grid_gap="8px"))
        self.folder_row = widgets.HBox([self.folder_box, self.index_button],
                                       layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap"))
        allowed = [self.allow(control, "index") for control in (self.upload, self.folder_box, self.index_button)]
        if getattr(kb, "remote", False):  # team server: files come by upload, never as a server path
            self.folder_box.layout.display = "none"
        if not all(allowed):  # other roles only read the list: no upload or folder rows at all
            self.upload_row.layout.display = self.folder_row.layout.display = "none"
            staff_note.value = ('<div class="xs-status xs-status-info">只有工作人员可以添加或更新文档；'
                                f'当前身份是{esc(self.user.role_label)}，可以查看下面的文档清单。</div>')
        self.busy_controls = [self.upload, self.folder_box, self.index_button, self.refresh_button]
        self.children = [
            css(),
            heading("文档管理", f"支持 {accept.replace(',', ' ')} 文件。同一文件再次索引时只处理有变化的部分。"),
            staff_note,
            self.upload_row, self.folder_row,
            self.progress_row,
            self.status_bar, self.report_html,
            widgets.HBox([widgets.HTML('<div class="xs-section-head">知识库现有文档</div>'), self.refresh_button],
                         layout=widgets.Layout(align_items="center", grid_gap="12px")),
            self.summary_html, self.documents_html,
        ]
        self.thesaurus_panel = None
        if all(allowed) and not getattr(kb, "remote", False):  # staff edit the knowledge base's own 检索词表
            from .thesaurus_panel import ThesaurusPanel

            self.thesaurus_panel = ThesaurusPanel(kb)
            self.children = [*self.children, self.thesaurus_panel]
        self.refresh()

    # -- listing ----------------------------------------------------------------
    def documents_table(self) -> pd.DataFrame:
        rows = [{"标题": d.title, "类型": d.type_label, "发文机关": d.issuer or "", "文号": d.doc_number or "",
                 "日期": d.date or "", "效力": d.validity_label} for d in self.kb.documents()]
        return pd.DataFrame(rows, columns=["标题", "类型", "发文机关", "文号", "日期", "效力"])

    @action()
    def refresh(self) -> None:
        self._render_documents()

    def _render_documents(self) -> None:
        info = self.kb.info()
        by_type = "、".join(f"{DOC_TYPES.get(k, k)} {v} 篇" for k, v in sorted(info["documents_by_type"].items()))
        updated = (info.get("updated") or "").replace("T", " ")
        self.summary_html.value = (
            f'<div class="xs-subtitle">共 {info["documents"]} 篇文档、{info["chunks"]} 个段落'
            + (f"（{esc(by_type)}）" if by_type else "")
            + (f"；最近更新 {esc(updated)}" if updated else "") + "</div>")
        self.documents_html.value = table_html(self.documents_table(),
                                               "知识库里还没有文档。工作人员可以在上面选择文件并开始索引。",
                                               nowrap=("类型", "文号", "日期", "效力"))

    # -- indexing -------------------------------------------------------------------
    def _on_upload(self, change) -> None:
        files = change["new"] or ()
        names = "、".join(esc(f["name"]) for f in files)
        self.upload_label.value = (f'<span class="xs-subtitle">已选择 {len(files)} 个文件：{names}</span>'
                                   if files else '<span class="xs-subtitle">未选择文件</span>')

    def _save_uploads(self) -> list[Path]:
        """Write uploaded files under <kb home>/uploads (file names only, no paths from the browser)."""
        folder = Path(self.kb.home) / UPLOAD_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for item in self.upload.value or ():
            name = Path(str(item["name"])).name
            if not name or name.startswith("."):
                continue
            target = folder / name
            target.write_bytes(bytes(item["content"]))
            saved.append(target)
        return saved

    def _on_progress(self, n: float, total: int, name: str) -> None:
        # n is fractional inside a big file; `name` then carries its chunks done / total
        self.progress.max = max(total, 1)
        self.progress.value = n
        self.progress_label.value = f'<span class="xs-subtitle">{int(n)}/{total} 个文件　{esc(name)}</span>'

    @action("正在索引，请稍候…")
    def run_index(self) -> None:
        self.user.require("index")
        self.folder = (self.folder_box.value or "").strip()
        paths = self._save_uploads()
        if self.folder:
            paths.append(Path(self.folder).expanduser())
        if not paths:
            raise KBError("没有要索引的文件", hint="先点「选择文件」上传，或填写一个文件夹路径")
        self.progress.value, self.progress.bar_style = 0, ""
        self.progress_row.layout.display = "flex"
        report = self.kb.index(paths, progress=self._on_progress)
        self.progress.value = self.progress.max
        self.progress.bar_style = "success" if not report.skipped else "warning"
        self.indexed_documents = report.embedded_documents
        self.skipped = list(report.skipped)
        self.last_report = (f"新增 {report.added} 篇，更新 {report.updated} 篇，未变 {report.unchanged} 篇，"
                            f"移除 {report.removed} 篇，跳过 {len(report.skipped)} 个文件；用时 {report.seconds:.1f} 秒")
        skipped = pd.DataFrame([{"文件": Path(p).name, "原因": r, "位置": str(Path(p).parent)} for p, r in report.skipped],
                               columns=["文件", "原因", "位置"])
        self.report_html.value = (f'<div class="xs-section-head">未能索引的文件（{len(report.skipped)} 个）</div>'
                                  + table_html(skipped, nowrap=("文件",)) if report.skipped else "")
        self.upload.value = ()
        self._render_documents()
        self.set_status(self.last_report, "warning" if report.skipped else "success")
        if self.on_indexed:
            self.on_indexed(report)
