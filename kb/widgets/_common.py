"""Shared parts of the panels: the busy → try → status → finally pattern, HTML escaping,
highlighting, tables and the product's look.

ipywidgets swallows exceptions raised in callbacks, so every callback goes through
`action`: expected problems (`KBError`) become one Chinese line in the panel's status
bar (`app_message`: a library hint that names a command line is replaced by what to do in
the app, or dropped); anything else becomes a generic line and the traceback goes to a
log file in the knowledge-base folder, never to the page.
"""
from __future__ import annotations

import base64
import functools
import html
import logging
import os
import re
from pathlib import Path
from typing import Callable, Iterable

import ipywidgets as widgets
import pandas as pd
from traitlets import Bool, Unicode

from indexer.errors import (DocumentNotFound, IndexDamaged, IndexLocked, IndexMismatch, IndexNotFound, KBError,
                            ModelNotAvailable)
from kb.config import REPO_ROOT
from kb.errors import NoteNotFound, PackNotFound, StorageError

log = logging.getLogger("kb.widgets")

NO_INDEX = "知识库里还没有可检索的文档（请工作人员在「文档管理」中添加文件并开始索引）"
GENERIC_ERROR = "操作没有完成：程序出现意外错误。请重试；如仍不行，请联系管理员查看日志"
STATUS_KINDS = ("info", "busy", "success", "warning", "error")

# Library hints are written for the command line (`kb index …`, `--text`, KB_MODEL=…); on the
# page such a hint is replaced by the app's own way, by error type, or left out.
CLI_HINT = re.compile(r"--[A-Za-z]|\bkb\s+[a-z]|\bKB_[A-Z]|python -m|pip install|apt-get|scripts/")
APP_HINTS: tuple[tuple[type, str], ...] = (
    (PackNotFound, "在「调研资料汇编」中点「自动起草」"),
    (DocumentNotFound, "文档可能已被移除或重新索引，请重新检索"),
    (NoteNotFound, "这条意见可能已被删除，请刷新论证意见列表"),
    (IndexLocked, "稍等片刻再试一次"),
    (IndexDamaged, "请联系管理员修复检索文件，已有资料不会丢失"),
    (IndexMismatch, "请联系管理员检查模型设置"),
    (ModelNotAvailable, "请联系管理员检查模型文件"),
    (StorageError, "请联系管理员从备份恢复知识库"),
)

CSS = """
<style>
.xs-panel { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif;
            color: #1f2937; min-width: 0; max-width: 100%; }
/* flex children keep their content's width unless allowed to shrink: a long title or file name
   would otherwise widen the column past the window and be cut off */
.xs-panel .widget-html, .xs-panel .widget-html-content { min-width: 0; max-width: 100%; }
.xs-panel .widget-label, .xs-panel .widget-button, .xs-panel input, .xs-panel select, .xs-panel textarea,
.xs-panel .widget-html-content { font-family: inherit; font-size: 14px; }
.xs-title { font-size: 18px; font-weight: 600; margin: 4px 0 2px 0; color: #7f1d1d; }
.xs-subtitle { font-size: 13px; color: #6b7280; margin: 0 0 6px 0; line-height: 1.5; }
.xs-status { padding: 6px 10px; border-radius: 4px; font-size: 13px; line-height: 1.5; border-left: 4px solid; }
.xs-status-info { background: #eff6ff; color: #1e3a8a; border-color: #3b82f6; }
.xs-status-busy { background: #f3f4f6; color: #374151; border-color: #9ca3af; }
.xs-status-success { background: #ecfdf5; color: #065f46; border-color: #10b981; }
.xs-status-warning { background: #fffbeb; color: #92400e; border-color: #f59e0b; }
.xs-status-error { background: #fef2f2; color: #991b1b; border-color: #ef4444; }
.xs-card { border: 1px solid #e5e7eb; border-left: 4px solid #b91c1c; border-radius: 6px;
           padding: 8px 12px 6px 12px; margin: 0 0 8px 0; background: #ffffff; }
.xs-card-head { display: flex; justify-content: space-between; gap: 12px; align-items: baseline; }
.xs-card-title { font-size: 15px; font-weight: 600; color: #111827; line-height: 1.5; }
.xs-card-text { font-size: 14px; line-height: 1.75; margin: 4px 0; color: #1f2937; white-space: pre-wrap; }
.xs-cite { font-size: 12.5px; color: #4b5563; line-height: 1.6; }
.xs-score { font-size: 12px; color: #6b7280; white-space: nowrap; }
.xs-badge { display: inline-block; font-size: 12px; padding: 0 6px; border-radius: 3px; margin-right: 6px;
            background: #fee2e2; color: #991b1b; line-height: 1.7; white-space: nowrap; }
.xs-badge-gray { background: #f3f4f6; color: #374151; }
.xs-badge-warn { background: #fef3c7; color: #92400e; }
.xs-badge-key { background: #7f1d1d; color: #ffffff; }
mark.xs-mark { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
.xs-focus { text-decoration: underline; text-decoration-color: #b91c1c; text-decoration-thickness: 2px;
            text-underline-offset: 4px; }
.xs-empty { padding: 18px; text-align: center; color: #6b7280; background: #f9fafb; border-radius: 6px;
            line-height: 1.8; }
.xs-table { border-collapse: collapse; width: 100%; font-size: 13px; }
.xs-table th { background: #f3f4f6; text-align: left; padding: 5px 8px; border-bottom: 1px solid #d1d5db;
               white-space: nowrap; }
.xs-table td { padding: 5px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; line-height: 1.6; }
.xs-table td.xs-nowrap { white-space: nowrap; }
.xs-doc-head { min-width: 0; }
.xs-doc-head .xs-card-title { white-space: normal; overflow-wrap: anywhere; }
.xs-doc-meta { font-size: 13px; color: #374151; line-height: 1.8; margin-bottom: 8px; display: flex; flex-wrap: wrap;
               gap: 0 14px; min-width: 0; }
.xs-doc { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 4px 14px; }
.xs-doc.xs-doc-nonotes { grid-template-columns: minmax(0, 1fr); }
@media (max-width: 1100px) {  /* beside the results the reader is narrow: notes go under their passage */
  .xs-doc { grid-template-columns: minmax(0, 1fr); }
}
.xs-passage { padding: 6px 8px; border-radius: 4px; line-height: 1.8; font-size: 14px; white-space: pre-wrap;
              overflow-wrap: anywhere; }
.xs-passage-focus { background: #fff7ed; outline: 2px solid #fdba74; }
.xs-passage-label { font-size: 12px; color: #b91c1c; font-weight: 600; margin-right: 6px; }
.xs-passage-page { font-size: 12px; color: #6b7280; margin-right: 6px; }
.xs-note { border-left: 3px solid #9ca3af; background: #f9fafb; padding: 4px 8px; margin: 2px 0 6px 0;
           font-size: 13px; line-height: 1.6; border-radius: 3px; }
.xs-note-support { border-left-color: #059669; }
.xs-note-challenge { border-left-color: #dc2626; }
.xs-note-supplement { border-left-color: #2563eb; }
.xs-note-doubt { border-left-color: #d97706; }
.xs-stance-support { background: #d1fae5; color: #065f46; }
.xs-stance-challenge { background: #fee2e2; color: #991b1b; }
.xs-stance-supplement { background: #dbeafe; color: #1e40af; }
.xs-stance-doubt { background: #fef3c7; color: #92400e; }
.xs-note-orphan { opacity: 0.85; border-left-style: dashed; }
.xs-note-meta { font-size: 12px; color: #6b7280; }
.xs-reply { margin: 3px 0 0 12px; padding-left: 8px; border-left: 2px solid #e5e7eb; font-size: 12.5px; }
.xs-quote { color: #4b5563; font-style: normal; background: #f3f4f6; padding: 0 3px; }
.xs-section-head { font-size: 15px; font-weight: 600; color: #7f1d1d; margin: 10px 0 4px 0;
                   border-bottom: 1px solid #fecaca; padding-bottom: 2px; }
.xs-thin { color: #92400e; font-size: 13px; }
.xs-header { background: #7f1d1d; color: #fff; padding: 10px 16px; border-radius: 6px; }
.xs-meta-field { min-width: 0; max-width: 100%; overflow-wrap: anywhere; }
.xs-header-title { font-size: 20px; font-weight: 600; letter-spacing: 1px; }
.xs-header-sub { font-size: 13px; opacity: 0.9; }
.xs-download a { font-weight: 600; color: #1d4ed8; }
</style>
"""


# -- text ------------------------------------------------------------------
def esc(value) -> str:
    """HTML-escape anything that came from a document, a note or a user."""
    return html.escape("" if value is None else str(value), quote=True)


def highlight(text: str, terms: Iterable[str], focus: str | None = None) -> str:
    """Escaped `text` with each of `terms` wrapped in <mark>, and the sentence `focus` (the one
    that best answers the query) underlined. Matching runs on the raw text and every piece
    is escaped on its own, so a term can never match inside an HTML entity."""
    text = text or ""
    at = text.find(focus) if focus else -1
    if at >= 0 and len(focus) < len(text.strip()):
        return (_marked(text[:at], terms) + f'<span class="xs-focus">{_marked(focus, terms)}</span>'
                + _marked(text[at + len(focus):], terms))
    return _marked(text, terms)


def _marked(text: str, terms: Iterable[str]) -> str:
    terms = sorted({t for t in terms or () if t and t.strip()}, key=len, reverse=True)
    if not terms:
        return esc(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms))
    out, pos = [], 0
    for match in pattern.finditer(text):
        out.append(esc(text[pos:match.start()]))
        out.append(f'<mark class="xs-mark">{esc(match.group())}</mark>')
        pos = match.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def compact(text: str) -> str:
    """Text for display in a card: blank lines and line-end spaces dropped (the stored quote is untouched)."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines()]
    return "\n".join(line for line in lines if line.strip())


def shorten(text: str, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table_html(df: pd.DataFrame, empty: str = "（暂无）", nowrap: Iterable[str] = ()) -> str:
    """A DataFrame as an HTML table in the product's style; every cell is escaped.
    Columns named in `nowrap` (short values: dates, types, stances) never break."""
    if df is None or df.empty:
        return f'<div class="xs-empty">{esc(empty)}</div>'
    keep = set(nowrap)
    cls = ['class="xs-nowrap"' if c in keep else "" for c in df.columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td {k}>{esc('' if pd.isna(v) else v)}</td>" for k, v in zip(cls, row)) + "</tr>"
        for row in df.itertuples(index=False, name=None))
    return f'<table class="xs-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def app_message(exc: KBError) -> str:
    """`exc` as one line for the page: its message and a hint in the app's words, never a command line."""
    hint = exc.hint or ""
    if CLI_HINT.search(hint):
        hint = next((text for kind, text in APP_HINTS if isinstance(exc, kind)), "")
    return f"{exc}（{hint}）" if hint else str(exc)


def status_html(text: str, kind: str = "info") -> str:
    if not text:
        return ""
    kind = kind if kind in STATUS_KINDS else "info"
    return f'<div class="xs-status xs-status-{kind}">{esc(text)}</div>'


def download_link(path: str | os.PathLike, label: str | None = None) -> str:
    """An <a download> link carrying the file as a data: URI, so it works in Voila and JupyterLab
    alike without a file server route."""
    path = Path(path)
    mime = {".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ".pdf": "application/pdf", ".html": "text/html", ".md": "text/markdown",
            ".csv": "text/csv", ".json": "application/json"}.get(path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<span class="xs-download"><a download="{esc(path.name)}" href="data:{mime};base64,{data}">'
            f'⬇ {esc(label or "下载 " + path.name)}</a></span>')


# -- logging ---------------------------------------------------------------
def _configure_log(home: Path | None) -> None:
    """Send unexpected errors to <kb home>/logs/app.log, not to the page; a process that opens
    another knowledge base logs to that one's folder from then on."""
    if home is None or getattr(_configure_log, "home", None) == Path(home):
        return
    try:
        folder = Path(home) / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(folder / "app.log", encoding="utf-8")
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = getattr(_configure_log, "handler", None)
    if previous is not None:
        log.removeHandler(previous)
        previous.close()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    _configure_log.home, _configure_log.handler = Path(home), handler


# -- the panel base ----------------------------------------------------------
class Panel(widgets.VBox):
    """A panel over a knowledge base with a status bar and a busy flag.

    While `busy` is true the controls in `self.busy_controls` are disabled; their previous
    state comes back afterwards (so a control a role may not use stays disabled).
    """

    busy = Bool(False, help="an action is running")
    status = Unicode("", help="the last status line shown to the user")
    status_kind = Unicode("info", help="info / busy / success / warning / error")

    def __init__(self, kb, **kwargs):
        self.kb = kb
        _configure_log(getattr(kb, "home", None))
        self.status_bar = widgets.HTML(layout=widgets.Layout(margin="2px 0"))
        self.busy_controls: list[widgets.Widget] = []
        self._saved_disabled: dict = {}
        super().__init__(**kwargs)
        self.add_class("xs-panel")
        self.observe(self._render_status, ["status", "status_kind"])
        self.observe(self._on_busy, "busy")

    @property
    def user(self):
        return self.kb.user

    def set_status(self, text: str, kind: str = "info") -> None:
        self.status_kind = kind
        self.status = text
        self._render_status()

    def _render_status(self, _change=None) -> None:
        self.status_bar.value = status_html(self.status, self.status_kind)

    def _on_busy(self, change) -> None:
        if change["new"]:
            self._saved_disabled = {id(w): w.disabled for w in self.busy_controls}
            for w in self.busy_controls:
                w.disabled = True
        else:
            for w in self.busy_controls:
                w.disabled = self._saved_disabled.get(id(w), False)

    def allow(self, control: widgets.Widget, action: str) -> bool:
        """Hide `control` when the current role may not take `action`: a role sees only what it
        can use. It is disabled too, so a busy spell never turns it on. True when allowed."""
        from kb.roles import ACTIONS, ROLES

        if self.user.can(action):
            return True
        control.disabled = True
        control.layout.display = "none"
        label, allowed = ACTIONS[action]
        who = "、".join(ROLES[r] for r in ("staff", "expert", "member") if r in allowed)
        control.tooltip = f"{self.user.role_label}不能{label}（仅限{who}）"
        return False


def action(busy_message: str = ""):
    """Decorator for panel callbacks: busy → try → status → finally not busy.

    The wrapped method reports success itself with `set_status`; a `KBError` becomes its
    one-line message, anything else the generic line (traceback to the log only)."""

    def decorate(method: Callable):
        @functools.wraps(method)
        def wrapper(self: Panel, *args, **kwargs):
            if self.busy:
                return None
            self.busy = True
            self.set_status(busy_message, "busy" if busy_message else "info")
            try:
                return method(self, *args, **kwargs)
            except IndexNotFound:  # the library's hint names a CLI command; here the way is a tab
                self.set_status(NO_INDEX, "warning")
            except KBError as exc:
                self.set_status(app_message(exc), "error")
            except Exception:  # noqa: BLE001 - the page must never show a traceback
                log.exception("widget callback %s.%s failed", type(self).__name__, method.__name__)
                self.set_status(GENERIC_ERROR, "error")
            finally:
                self.busy = False
            return None

        return wrapper

    return decorate


def css() -> widgets.HTML:
    """The product's style sheet as a (zero-height) widget; each panel carries one."""
    return widgets.HTML(CSS, layout=widgets.Layout(height="0px", margin="0", overflow="hidden"))


def heading(title: str, subtitle: str = "") -> widgets.HTML:
    sub = f'<div class="xs-subtitle">{esc(subtitle)}</div>' if subtitle else ""
    return widgets.HTML(f'<div class="xs-title">{esc(title)}</div>{sub}')


def button(description: str, style: str = "", icon: str = "", tooltip: str = "", width: str = "auto") -> widgets.Button:
    return widgets.Button(description=description, button_style=style, icon=icon, tooltip=tooltip,
                          layout=widgets.Layout(width=width, min_width="64px"))


def kb_home_path(home: str | os.PathLike | None = None) -> Path:
    """KB_HOME, or the repository's kb_data; a relative path is taken from the repository root,
    so it does not matter which folder Voila or JupyterLab starts the kernel in."""
    from kb.config import resolve_home

    path = resolve_home(home)
    return path if path.is_absolute() else REPO_ROOT / path


def open_knowledge_base(home: str | os.PathLike | None = None, **kwargs):
    """The knowledge base the notebooks use (see `kb_home_path`); kwargs go to `KnowledgeBase`.

    On a team server (KB_SERVICE_URL set by the hub) it is the team service, acting for the
    signed-in account: the person's kernel loads no model and no index."""
    from kb.remote import RemoteKnowledgeBase, team_mode

    if team_mode():
        return RemoteKnowledgeBase()
    from kb.knowledge_base import KnowledgeBase

    return KnowledgeBase(kb_home_path(home), **kwargs)


def passage_label(label: str | None, passage: str) -> str:
    """The chunk's structural label, or '' when it only repeats the passage's first words."""
    label = (label or "").strip()
    stem = label.rstrip("…").strip()
    if not stem or passage.lstrip().startswith(stem):
        return ""
    return label
