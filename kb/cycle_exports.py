"""Exports of the consultation cycle: the minutes (协商纪要) as Word, HTML or Markdown, and the
year's report (年度协商工作报告) as HTML or Word with the dashboard's charts as images.

Charts are drawn with matplotlib (Agg, no display) in Noto Sans CJK SC, so the Chinese renders;
tables come from the dashboard's pandas frames. The Word files reuse the dossier's house style
(`kb.exports._DocxWriter`: page, fonts, headings, shaded quotations); every file is written to a
temporary file and renamed into place (`kb.exports._write_atomically`).
"""
from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from .errors import ExportError
from .exports import (CHINESE_NUMBERS, WORD_FONTS, ExportResult, _chinese_date, _DocxWriter, _write_atomically,
                      clean, resolve_target)
from .textsafety import safe_filename

if TYPE_CHECKING:
    from .cycle import Dashboard, Minutes

MINUTES_FORMATS = ("docx", "html", "md")
REPORT_FORMATS = ("docx", "html")
CJK_FONT = "Noto Sans CJK SC"
FORMAT_COLOURS = {"全体会议": "#7f1d1d", "面对面协商": "#b91c1c", "常委会专题协商": "#c2410c", "双月座谈": "#1d4ed8",
                  "界别协商": "#047857", "网络协商": "#6d28d9", "其他": "#6b7280"}
STATUS_COLOURS = {"未交办": "#9ca3af", "交办": "#60a5fa", "办理中": "#f59e0b", "已采纳": "#059669",
                  "部分采纳": "#34d399", "未采纳": "#dc2626", "已反馈": "#1d4ed8"}


def _format(fmt: str, allowed: tuple[str, ...]) -> str:
    fmt = (fmt or "").lower().lstrip(".")
    if fmt not in allowed:
        raise ExportError(f"不支持的导出格式“{fmt}”", hint="可选 " + "、".join(allowed))
    return fmt


def _minutes_number(n: int) -> str:
    return CHINESE_NUMBERS[n - 1] if n <= len(CHINESE_NUMBERS) else str(n)


# -- charts ----------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ExportError("缺少 matplotlib，无法绘制图表", hint="pip install -r requirements.txt") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.sans-serif"] = [CJK_FONT, "Noto Sans CJK JP", "DejaVu Sans"]
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _short(title: str, limit: int = 18) -> str:
    title = title.replace("“", "").replace("”", "")
    return title if len(title) <= limit else title[:limit - 1] + "…"


def pd_dates(steps) -> list[str]:
    """Every due and done date of the steps shown."""
    return [d for column in ("due", "done") for d in steps[column] if d]


def _month_label():
    """Tick labels 1月 … 12月, with the year on January (2026年1月)."""
    from matplotlib.ticker import FuncFormatter
    import matplotlib.dates as mdates

    def label(value, _pos) -> str:
        day = mdates.num2date(value)
        return f"{day.year}年1月" if day.month == 1 else f"{day.month}月"

    return FuncFormatter(label)


def charts(board: "Dashboard") -> dict[str, tuple[str, bytes]]:
    """name → (caption, PNG) for each chart the dashboard has data for."""
    import datetime as dt

    import matplotlib.dates as mdates

    plt = _pyplot()
    out: dict[str, tuple[str, bytes]] = {}
    steps = board.steps
    if not board.plan.empty:
        fig, ax = plt.subplots(figsize=(8.6, 0.62 * len(board.plan) + 1.3))
        labels = []
        for y, row in enumerate(board.plan.itertuples(index=False)):
            colour = FORMAT_COLOURS.get(row.协商形式, "#6b7280")
            own = steps[steps["topic_id"] == row.topic_id]
            dates = [(r.step, r.done or r.due, bool(r.done), bool(r.overdue)) for r in own.itertuples() if r.done or r.due]
            if dates:
                xs = [dt.date.fromisoformat(d) for _s, d, _done, _late in dates]
                ax.plot([min(xs), max(xs)], [y, y], color=colour, alpha=.35, linewidth=6, solid_capstyle="round")
            for step, date, done, late in dates:
                x = dt.date.fromisoformat(date)
                if late:
                    ax.scatter([x], [y], marker="x", color="#dc2626", s=60, zorder=4)
                elif step == 6:
                    ax.scatter([x], [y], marker="D", color=colour, s=70, zorder=4, edgecolor="white")
                else:
                    ax.scatter([x], [y], marker="o", s=26, zorder=3, color=colour if done else "white",
                               edgecolor=colour)
            labels.append(f"{_short(row.议题)}（{row.协商形式}）")
        ax.set_yticks(range(len(labels)), labels, fontsize=9)
        ax.invert_yaxis()
        # a year whose topics have no dated step yet still gets its axis (around today)
        known = [dt.date.fromisoformat(d) for d in pd_dates(steps)] or [dt.date.fromisoformat(board.on)]
        first, last = min(known), max(known)
        today = dt.date.fromisoformat(board.on)
        ax.set_xlim(first - dt.timedelta(days=12), last + dt.timedelta(days=20))
        months = (last.year - first.year) * 12 + last.month - first.month
        ax.xaxis.set_major_locator(mdates.MonthLocator(interval=1 if months <= 14 else 2))
        ax.xaxis.set_major_formatter(_month_label())
        ax.tick_params(axis="x", labelsize=8.5)
        marks = "● 已完成步骤　○ 未完成　◆ 协商会议　× 逾期"
        if first <= today <= last:
            ax.axvline(today, color="#6b7280", linestyle="--", linewidth=1)
            marks += "　虚线：今天"
        ax.grid(axis="x", color="#e5e7eb")
        ax.set_title(f"{board.year}年度协商计划（{marks}）", fontsize=10)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        out["timeline"] = ("年度协商计划时间轴", _png(fig, plt))

        fig, ax = plt.subplots(figsize=(8.6, 0.34 * len(board.plan) + 0.9))
        done = [int(str(v).split("/")[0]) for v in board.plan["已完成步骤"]]
        late = [len(str(v).split("、")) if v else 0 for v in board.plan["逾期步骤"]]
        names = [_short(t, 22) for t in board.plan["议题"]]
        ax.barh(names, done, color="#059669", label="已完成", height=0.55)
        ax.barh(names, late, left=done, color="#dc2626", label="逾期", height=0.55)
        ax.barh(names, [8 - d - l for d, l in zip(done, late)], left=[d + l for d, l in zip(done, late)],
                color="#e5e7eb", label="未到期", height=0.55)
        ax.set_xlim(0, 8)
        ax.set_xticks(range(9))
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=9)
        ax.legend(loc="lower right", fontsize=8, ncol=3, frameon=False, bbox_to_anchor=(1, 1))
        ax.set_title("八步工作法进度（步）", fontsize=10, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        out["progress"] = ("各议题八步工作法进度", _png(fig, plt))
    if not board.status.empty or not board.adoption.empty:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9.4, max(2.8, 0.36 * len(board.adoption) + 1.4)),
                                          gridspec_kw={"width_ratios": [1, 1.35]})
        if not board.status.empty:
            left.bar(board.status["状态"], board.status["件数"],
                     color=[STATUS_COLOURS.get(s, "#6b7280") for s in board.status["状态"]])
            for x, n in enumerate(board.status["件数"]):
                left.text(x, n, str(n), ha="center", va="bottom", fontsize=9)
            left.tick_params(axis="x", labelsize=8.5)
        left.set_title("意见建议办理状态（件次）", fontsize=10, loc="left")
        adoption = board.adoption
        if not adoption.empty:
            left_edge = [0] * len(adoption)
            for column, colour in (("已采纳", "#059669"), ("部分采纳", "#34d399"), ("未采纳", "#dc2626"),
                                   ("办理中", "#f59e0b")):
                values = list(adoption[column])
                right.barh(adoption["部门"], values, left=left_edge, color=colour, label=column, height=0.6)
                left_edge = [a + b for a, b in zip(left_edge, values)]
            for y, (total, rate) in enumerate(zip(left_edge, adoption["采纳率"])):
                text = "—" if rate is None or rate != rate else f"{rate:.0%}"
                right.text(total + 0.1, y, f"采纳率 {text}", va="center", fontsize=8.5)
            right.set_xlim(0, max(left_edge) * 1.45 + 0.5)
            right.invert_yaxis()
            right.tick_params(axis="y", labelsize=9)
            right.legend(loc="lower right", fontsize=8, frameon=False)
        right.set_title("各部门办理结果（件次）与采纳率", fontsize=10, loc="left")
        for ax in (left, right):
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
        fig.tight_layout()
        out["outcomes"] = ("意见建议办理与采纳", _png(fig, plt))
    return out


# -- the minutes -------------------------------------------------------------------------------
def _citation_line(citation: dict) -> str:
    if not citation:
        return ""
    quote = f"：“{clean(citation.get('quote'))}”" if citation.get("quote") else ""
    return f"依据：{clean(citation.get('formatted') or citation.get('title'))}{quote}"


def minutes_markdown(m: "Minutes", office: str) -> str:
    out = [f"# {office.replace('办公室', '')}协商纪要", "", f"## {clean(m.title.removeprefix('协商纪要：'))}", "",
           "## 一、协商概况", ""]
    out += [f"- **{clean(label)}**：{clean(value)}" for label, value in m.facts]
    out += ["", "## 二、主要意见建议", ""]
    n = 0
    for t_no, theme in enumerate(m.themes, start=1):
        out += [f"### （{_minutes_number(t_no)}）{clean(theme.theme)}", ""]
        for item in theme.items:
            n += 1
            edited = "（经编辑）" if item.edited else ""
            out += [f"{n}. {clean(item.text)}{edited}", f"   —— {clean(item.byline)}"]
            if item.citation:
                out.append(f"   > {_citation_line(item.citation)}")
            out.append("")
    if m.instructions:
        out += ["## 三、领导批示", ""]
        out += [f"- {clean(i.leader)}（{_chinese_date(i.date)}）：{clean(i.text)}" for i in m.instructions]
    out += ["", f"<!-- 第{m.version}版；{m.change}；{m.created_by} {m.created_at} -->", ""]
    return "\n".join(out)


_MINUTES_CSS = """
body { font-family: "Noto Serif CJK SC", "SimSun", serif; max-width: 46em; margin: 2em auto; line-height: 1.8;
       color: #111; padding: 0 1em; }
h1, h2, h3 { font-family: "Noto Sans CJK SC", "SimHei", sans-serif; }
h1 { text-align: center; color: #b00020; font-size: 22pt; border-bottom: 2px solid #b00020; padding-bottom: .3em; }
h2 { font-size: 15pt; } h3 { font-size: 13pt; }
.by { color: #374151; margin-left: 2em; }
blockquote { margin: .3em 0 .8em 2em; padding: .4em .8em; background: #f5f3ee; border-left: 4px solid #a08a5a;
             font-family: "Noto Serif CJK SC", "KaiTi", serif; font-size: 11pt; }
.edited { color: #92400e; font-size: 10pt; }
"""


def minutes_html(m: "Minutes", office: str) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">', f"<title>{e(m.title)}</title>",
           f'<meta name="kb-stamp" content="第{m.version}版 | {e(m.change)} | {e(m.created_by)} {e(m.created_at)}">',
           f"<style>{_MINUTES_CSS}</style></head><body>",
           f"<h1>{e(office.replace('办公室', ''))}协商纪要</h1>",
           f"<h2>{e(m.title.removeprefix('协商纪要：'))}</h2>", "<h2>一、协商概况</h2><ul>"]
    out += [f"<li><b>{e(clean(label))}</b>：{e(clean(value))}</li>" for label, value in m.facts]
    out += ["</ul>", "<h2>二、主要意见建议</h2>"]
    n = 0
    for t_no, theme in enumerate(m.themes, start=1):
        out.append(f"<h3>（{_minutes_number(t_no)}）{e(clean(theme.theme))}</h3>")
        for item in theme.items:
            n += 1
            edited = '<span class="edited">（经编辑）</span>' if item.edited else ""
            out.append(f'<p data-proposal="{e(item.proposal_id)}">{n}．{e(clean(item.text))}{edited}</p>')
            out.append(f'<p class="by">—— {e(clean(item.byline))}</p>')
            if item.citation:
                out.append(f"<blockquote>{e(_citation_line(item.citation))}</blockquote>")
    if m.instructions:
        out.append("<h2>三、领导批示</h2><ul>")
        out += [f"<li>{e(i.leader)}（{e(_chinese_date(i.date))}）：{e(clean(i.text))}</li>" for i in m.instructions]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


class _CycleDocx(_DocxWriter):
    """The dossier's Word writer with its house style, for a document that is not a pack."""

    def __init__(self, header: str, title: str):
        from docx import Document

        self.d = SimpleNamespace(topic_title=header, title=title)
        self.fonts = WORD_FONTS
        self.doc = Document()
        self._page_setup()
        self._styles()

    def title(self, text: str, office_line: str | None = None) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH as ALIGN

        if office_line:
            self.para(office_line, self.fonts.heading, 22, bold=True, align=ALIGN.CENTER, after=6, single=True,
                      color=self.RED)
        self.para(text, self.fonts.heading, 16, bold=True, align=ALIGN.CENTER, after=14, single=True)

    def labelled(self, label: str, value: str, size: float = 12) -> None:
        p = self.para("", self.fonts.body, size, first_line=True)
        self.run(p, f"{label}：", self.fonts.heading, size)
        self.run(p, value, self.fonts.body, size)

    def picture(self, png: bytes, caption: str) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH as ALIGN
        from docx.shared import Cm

        self.doc.add_picture(io.BytesIO(png), width=Cm(15.4))
        self.doc.paragraphs[-1].alignment = ALIGN.CENTER
        self.para(caption, self.fonts.body, 10, align=ALIGN.CENTER, color=self.GREY)

    def table(self, df, columns: list[str] | None = None) -> None:
        from docx.shared import Cm, Pt

        df = df[columns] if columns else df
        if df.empty:
            self.para("（暂无）", self.fonts.body, 11, color=self.GREY)
            return
        table = self.doc.add_table(rows=1, cols=len(df.columns))
        table.style = "Table Grid"
        for cell, name in zip(table.rows[0].cells, df.columns):
            cell.text = ""
            self.run(cell.paragraphs[0], str(name), self.fonts.heading, 10)
        for values in df.itertuples(index=False):
            cells = table.add_row().cells
            for cell, value in zip(cells, values):
                cell.text = ""
                self.run(cell.paragraphs[0], _cell(value), self.fonts.body, 9.5)
        # the first column (topic or department) gets the room; the short columns share the rest
        count = len(df.columns)
        first = 5.4 if count > 3 else 15.4 / count
        rest = (15.4 - first) / (count - 1) if count > 1 else 0
        table.autofit = False
        for n, column in enumerate(table.columns):  # the grid, which LibreOffice reads
            column.width = Cm(first if n == 0 else rest)
        for row in table.rows:  # and each cell, which Word reads
            for n, cell in enumerate(row.cells):
                cell.width = Cm(first if n == 0 else rest)
                cell.paragraphs[0].paragraph_format.space_after = Pt(0)
        self.para("", self.fonts.body, 6, after=4)


def _cell(value) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.0%}" if 0 <= value <= 1 else f"{value:g}"
    return clean(str(value))


def write_minutes_docx(m: "Minutes", path: Path, office: str, user: str = "") -> None:
    w = _CycleDocx(m.title.removeprefix("协商纪要："), "协商纪要")
    props = w.doc.core_properties
    props.title, props.author, props.category = m.title, office, "协商纪要"
    props.comments = f"第{m.version}版 | {m.change} | {m.created_by} {m.created_at} | 导出：{user}"
    w.title(m.title.removeprefix("协商纪要："), office_line=f"{office.replace('办公室', '')}协商纪要")
    w.heading("一、协商概况", 1)
    for label, value in m.facts:
        w.labelled(clean(label), clean(value))
    w.heading("二、主要意见建议", 1)
    n = 0
    for t_no, theme in enumerate(m.themes, start=1):
        w.heading(f"（{_minutes_number(t_no)}）{clean(theme.theme)}", 2)
        for item in theme.items:
            n += 1
            p = w.para("", w.fonts.body, 12, first_line=True, after=0)
            w.run(p, f"{n}．", w.fonts.heading, 12)
            w.run(p, clean(item.text), w.fonts.body, 12)
            if item.edited:
                w.run(p, "（经编辑）", w.fonts.body, 10, color=w.AMBER)
            w.para(f"—— {clean(item.byline)}", w.fonts.body, 11, indent_cm=1.5, after=2, color="444444")
            if item.citation:
                w.quote(_citation_line(item.citation), last=True)
    if m.instructions:
        w.heading("三、领导批示", 1)
        for i in m.instructions:
            w.labelled(f"{clean(i.leader)}（{_chinese_date(i.date)}）", clean(i.text))
    w.doc.save(str(path))


def export_minutes(m: "Minutes", fmt: str, out, *, office: str, user: str = "") -> ExportResult:
    """Write the minutes as docx, html or md to `out` (a file, or a folder to put a named file in)."""
    fmt = _format(fmt, MINUTES_FORMATS)
    started = time.perf_counter()
    path = resolve_target(out, fmt, safe_filename(f"{m.title.removeprefix('协商纪要：')}_协商纪要_第{m.version}版"))
    if fmt == "docx":
        _write_atomically(path, lambda tmp: write_minutes_docx(m, tmp, office, user))
    else:
        text = minutes_html(m, office) if fmt == "html" else minutes_markdown(m, office)
        _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return ExportResult(path=path.resolve(), format=fmt, version=m.version, bytes=path.stat().st_size,
                        seconds=round(time.perf_counter() - started, 2), items=len(m.items))


# -- the year's report -----------------------------------------------------------------------------
_REPORT_CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; max-width: 60em; margin: 1.5em auto;
       color: #1f2937; padding: 0 1em; line-height: 1.6; }
h1 { color: #7f1d1d; border-bottom: 3px solid #7f1d1d; padding-bottom: .3em; }
h2 { color: #7f1d1d; font-size: 15pt; margin-top: 1.6em; }
.figures { display: flex; gap: 12px; flex-wrap: wrap; }
.figure { border: 1px solid #e5e7eb; border-left: 4px solid #b91c1c; border-radius: 6px; padding: 6px 14px; }
.figure b { display: block; font-size: 20pt; color: #7f1d1d; }
img { max-width: 100%; }
figure { margin: 1em 0; } figcaption { color: #6b7280; font-size: 10pt; text-align: center; }
table { border-collapse: collapse; width: 100%; font-size: 10.5pt; margin: .5em 0 1em; }
th { background: #f3f4f6; text-align: left; } th, td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; }
.late { color: #b00020; font-weight: bold; }
.stamp { color: #9ca3af; font-size: 9pt; margin-top: 3em; }
"""
_PLAN_COLUMNS = ["议题", "协商形式", "会议日期", "已完成步骤", "当前步骤", "逾期步骤"]


def _html_table(df, columns: list[str] | None = None) -> str:
    e = html.escape
    df = df[columns] if columns else df
    if df.empty:
        return "<p>（暂无）</p>"
    head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figures(board: "Dashboard") -> list[tuple[str, str]]:
    t = board.totals
    rate = f"{t['adoption_rate']:.0%}" if t["adoption_rate"] is not None else "—"
    return [("年度协商议题", str(t["topics"])), ("逾期步骤", str(t["overdue_steps"])),
            ("意见建议（件次）", str(t["proposals"])), ("总体采纳率", rate), ("待回头看", str(t["review_due"]))]


def report_html(board: "Dashboard", office: str, user: str = "", pictures: dict | None = None) -> str:
    e = html.escape
    pictures = charts(board) if pictures is None else pictures
    out = ["<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
           f"<title>{board.year}年度协商工作报告</title>", f"<style>{_REPORT_CSS}</style></head><body>",
           f"<h1>{board.year}年度协商工作报告</h1>",
           f"<p>{e(office)} · 统计至{e(_chinese_date(board.on))}</p>", '<div class="figures">']
    out += [f'<div class="figure"><b>{e(v)}</b>{e(k)}</div>' for k, v in figures(board)]
    out.append("</div>")

    def picture(name: str) -> None:
        if name in pictures:
            caption, png = pictures[name]
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(caption)}</figcaption></figure>")

    out.append("<h2>一、年度协商计划与进度</h2>")
    picture("timeline")
    picture("progress")
    out.append(_html_table(board.plan, _PLAN_COLUMNS))
    if not board.overdue_tasks.empty:
        out += ["<h3>逾期未完成的调研任务</h3>", _html_table(board.overdue_tasks)]
    out.append("<h2>二、意见建议办理与采纳</h2>")
    picture("outcomes")
    out += [_html_table(board.adoption), "<h3>历年采纳情况</h3>", _html_table(board.by_year)]
    out += ["<h2>三、回头看</h2>", _html_table(board.review_due)]
    out += [f'<p class="stamp">协商研究助手生成 · {e(user)} · {e(time.strftime("%Y-%m-%d %H:%M"))}</p>',
            "</body></html>"]
    return "\n".join(out)


def write_report_docx(board: "Dashboard", path: Path, office: str, user: str = "", pictures: dict | None = None) -> None:
    pictures = charts(board) if pictures is None else pictures
    w = _CycleDocx(f"{board.year}年度协商工作报告", office)
    props = w.doc.core_properties
    props.title, props.author, props.category = f"{board.year}年度协商工作报告", office, "协商工作报告"
    props.comments = f"统计至 {board.on} | 导出：{user}"
    w.title(f"{board.year}年度协商工作报告", office_line=None)
    w.para(f"{office} · 统计至{_chinese_date(board.on)}", w.fonts.body, 11, after=10)
    w.para("；".join(f"{k} {v}" for k, v in figures(board)), w.fonts.heading, 12, after=10)
    w.heading("一、年度协商计划与进度", 1)
    for name in ("timeline", "progress"):
        if name in pictures:
            w.picture(pictures[name][1], pictures[name][0])
    w.table(board.plan, _PLAN_COLUMNS)
    if not board.overdue_tasks.empty:
        w.heading("逾期未完成的调研任务", 2)
        w.table(board.overdue_tasks)
    w.heading("二、意见建议办理与采纳", 1)
    if "outcomes" in pictures:
        w.picture(pictures["outcomes"][1], pictures["outcomes"][0])
    w.table(board.adoption)
    w.heading("历年采纳情况", 2)
    w.table(board.by_year)
    w.heading("三、回头看", 1)
    w.table(board.review_due)
    w.doc.save(str(path))


def export_report(board: "Dashboard", fmt: str, out, *, office: str, user: str = "") -> ExportResult:
    """The year's report as HTML (charts embedded as PNG data) or Word (charts as pictures)."""
    fmt = _format(fmt, REPORT_FORMATS)
    started = time.perf_counter()
    path = resolve_target(out, fmt, f"{board.year}年度协商工作报告")
    pictures = charts(board)
    if fmt == "docx":
        _write_atomically(path, lambda tmp: write_report_docx(board, tmp, office, user, pictures))
    else:
        text = report_html(board, office, user, pictures)
        _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return ExportResult(path=path.resolve(), format=fmt, version=1, bytes=path.stat().st_size,
                        seconds=round(time.perf_counter() - started, 2), items=len(board.plan))
