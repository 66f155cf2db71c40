"""Exports of a briefing pack: Word (.docx), PDF, HTML and Markdown.

Every format is rendered from one `Dossier` — the pack laid out as the office hands it
out: a cover (topic, format, date, compiling office), a table of contents, an editor's
introduction, numbered sections whose items carry the verbatim quotation, its full
citation, the editor's note and the experts' notes on that passage (only those staff
accepted, each after the sentence it is about), the accepted notes on passages outside the
pack (其他论证意见), and a list of sources named by title, 文号, issuer and date (never by
file name). The cover says 第N版 and nothing technical: the stamp that made the export
(index generation, model, who exported it and when) is in the file's properties — docx
core properties, PDF document information, an HTML meta tag, a Markdown comment — and the
audit log records the export.

PDF is the Word file converted by LibreOffice (`soffice --headless`), which embeds
subsets of the CJK fonts with correct ToUnicode maps, so the Chinese text can be
selected and searched. It runs twice: once to learn on which page each heading
falls, once with those page numbers written into the table of contents.

Files are written to a temporary file beside the target and renamed into place, so a
failed export never leaves a partial file.
"""
from __future__ import annotations

import html
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ExportError
from .textsafety import safe_filename, strip_bidi

if TYPE_CHECKING:
    from .briefing.model import BriefingPack

FORMATS = ("docx", "pdf", "html", "md")
_SUFFIX = {"docx": ".docx", "pdf": ".pdf", "html": ".html", "md": ".md"}
CHINESE_NUMBERS = "一二三四五六七八九十"
# Characters XML 1.0 (and so Word) cannot hold; they would make python-docx refuse the text.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
SOFFICE_TIMEOUT = 180
COVER_TITLE_EM = 18  # 20 pt on a 15.6 cm line holds 22; a shorter line gives the title room
CJK_FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"),
                 Path("/usr/share/fonts/noto-cjk"), Path("/usr/local/share/fonts"))


@dataclass(frozen=True)
class FontSet:
    body: str
    heading: str
    quote: str
    latin: str


# Word files use the fonts every Chinese office machine has; the PDF uses the Noto CJK
# fonts installed with LibreOffice (fonts-noto-cjk), which it embeds.
WORD_FONTS = FontSet(body="宋体", heading="黑体", quote="楷体", latin="Times New Roman")
PDF_FONTS = FontSet(body="Noto Serif CJK SC", heading="Noto Sans CJK SC", quote="Noto Serif CJK SC",
                    latin="Noto Serif CJK SC")


def clean(text: Any) -> str:
    """Text safe for every format: no control characters (bidi ones included), Unix line ends."""
    return _XML_UNSAFE.sub("", strip_bidi(text or "").replace("\r\n", "\n").replace("\r", "\n"))


# -- the dossier: the pack as it is laid out ------------------------------------------
@dataclass
class NoteView:
    author: str
    role: str
    stance: str
    text: str
    date: str = ""
    status: str = ""
    replies: list[str] = field(default_factory=list)
    quote: str = ""     # the sentence the note is about (its anchor), shown before the note
    title: str = ""     # the document the sentence is from

    @property
    def quote_line(self) -> str:
        """“quoted sentence”（《document》）, or empty for a note without a quote."""
        if not self.quote:
            return ""
        return f"“{self.quote}”" + (f"（《{self.title}》）" if self.title else "")

    @property
    def byline(self) -> str:
        who = self.author + (f"（{self.role}）" if self.role else "")
        return f"【{self.stance}】{who}" + (f"，{self.date}" if self.date else "")


@dataclass
class ItemView:
    ref: str            # 2.3
    number: int         # position within its section
    heading: str
    quote: str
    citation: str
    key: bool
    editor_note: str
    notes: list[NoteView]
    status_note: str
    source_no: int
    item_id: str

    @property
    def title_line(self) -> str:
        return f"{self.number}．" + ("★" if self.key else "") + self.heading


@dataclass
class SectionView:
    number: int
    label: str
    items: list[ItemView]
    thin_note: str

    @property
    def title_line(self) -> str:
        return f"{CHINESE_NUMBERS[self.number - 1]}、{self.label}"


@dataclass
class SourceView:
    """A source as members see it: title, 文号, issuer and date — never a file name."""

    number: int
    citation: str
    status: str

    @property
    def line(self) -> str:
        return f"{self.number}. {self.citation}" + (f"（{self.status}）" if self.status else "")


@dataclass
class Dossier:
    """Everything an export shows, already cleaned of characters Word cannot hold."""

    title: str
    topic_title: str
    topic_id: str
    format: str
    year: str
    lead: str
    sectors: str
    keywords: str
    description: str
    step: str
    office: str
    date_label: str
    intro: str
    facts: list[tuple[str, str]]
    links: list[tuple[str, str]]
    sections: list[SectionView]
    sources: list[SourceView]
    stamp: dict
    item_count: int
    key_count: int
    other_notes: list[NoteView] = field(default_factory=list)  # accepted notes outside the pack's items

    @property
    def stamp_lines(self) -> list[str]:
        s = self.stamp
        lines = [f"汇编第 {s['version']} 版（{s['version_at']}，{s['version_by']}）：{s['change']}"]
        index = f"索引第 {s['index_generation']} 代（更新于 {s['index_updated']}，模型 {s['model']}"
        index += f"，文档 {s['index_documents']} 篇）" if s.get("index_documents") is not None else "）"
        lines.append(index)
        lines.append(f"导出于 {s['exported_at']}（{s['exported_by']}）")
        return lines

    @property
    def stamp_keywords(self) -> str:
        """The topic's keywords, then the stamp a file's keywords property can carry."""
        s = self.stamp
        parts = (self.keywords, f"汇编第{s['version']}版", f"索引第{s['index_generation']}代",
                 f"模型 {s['model']}" if s.get("model") else "")
        return "; ".join(x for x in parts if x)

    @property
    def version_label(self) -> str:
        """What a member needs to know of the version: 第N版."""
        return f"第{self.stamp['version']}版"

    @property
    def version_note(self) -> str:
        when = _chinese_date(self.stamp["version_at"][:10])
        return self.version_label + (f"，{when}编定" if when else "")


def _chinese_date(iso: str | None) -> str:
    """2025-04-18 → 2025年4月18日 (left as it is when it is not an ISO date)."""
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", iso or "")
    return f"{int(match[1])}年{int(match[2])}月{int(match[3])}日" if match else (iso or "")


def _model_name(model: str | None) -> str | None:
    """A model folder is named by its last part; the full path says nothing to a reader."""
    return Path(model).name if model and ("/" in model or "\\" in model) else model


def _short_time(value: str | None) -> str:
    return (value or "").replace("T", " ")[:16]


# Accepted expert notes whose passage is in no item of the pack: a part of their own, after the sections.
OTHER_NOTES_TITLE = "其他论证意见"
OTHER_NOTES_INTRO = "以下论证意见针对本议题相关文件中未收入本汇编的段落，经审核采纳，附此供参阅。"


def _note_view(note: Any, title: str = "") -> NoteView:
    """An expert note from `kb.annotations` (or any object with the same attribute names), with the
    document `title` its quote comes from."""
    replies = []
    for reply in getattr(note, "replies", None) or []:
        role = getattr(reply, "role_label", "") or getattr(reply, "author_role", "")
        replies.append(clean(f"{getattr(reply, 'author', '')}（{role}）：{getattr(reply, 'text', '')}"))
    orphaned = getattr(note, "orphaned", False) or getattr(note, "status", "") == "orphaned"
    return NoteView(author=clean(getattr(note, "author", "")),
                    role=clean(getattr(note, "role_label", "") or getattr(note, "author_role", "")),
                    stance=clean(getattr(note, "stance", "") or "意见"), text=clean(getattr(note, "text", "")),
                    date=clean(str(getattr(note, "created", "") or "")[:10]),
                    status="（原文已改动，意见所指段落未能重新定位）" if orphaned else "", replies=replies,
                    quote=clean(" ".join(str(getattr(note, "quote", "") or "").split())), title=clean(title))


def build_dossier(pack: "BriefingPack", *, office: str, notes_for: Callable | None, index_now: dict,
                  user: str) -> Dossier:
    """Lay the pack out: numbering, citations, notes, sources and the stamp."""
    topic = pack.topic
    sources: dict[str, SourceView] = {}
    sections: list[SectionView] = []
    key_count = 0
    for s_no, section in enumerate(pack.sections, start=1):
        items = []
        for pos, item in enumerate(section.items, start=1):
            if item.doc_id not in sources:
                c = item.citation
                whole = type(c)(**{**asdict(c), "page": None, "label": None})
                sources[item.doc_id] = SourceView(len(sources) + 1, clean(whole.formatted()),
                                                  "来源缺失" if item.source_status == "missing" else "")
            found = notes_for(item.doc_id, item.start, item.end) if notes_for else []
            notes = [_note_view(n, item.title) for n in found]
            key_count += item.key
            items.append(ItemView(ref=f"{s_no}.{pos}", number=pos, heading=clean(item.heading), quote=clean(item.quote),
                                  citation=clean(item.citation.formatted()), key=item.key,
                                  editor_note=clean(item.note), notes=notes, status_note=clean(item.status_note),
                                  source_no=sources[item.doc_id].number, item_id=item.item_id))
        sections.append(SectionView(s_no, section.label, items, clean(section.note)))
    item_count = sum(len(s.items) for s in sections)
    step_no = int(topic.get("step") or 1)
    step_date = (topic.get("step_dates") or {}).get(str(step_no))
    step = f"第{CHINESE_NUMBERS[step_no - 1]}步“{topic.get('step_name', '')}”" + (
        f"（{_chinese_date(step_date)}起）" if step_date else "")
    section_names = "、".join(s.label for s in sections)
    title = topic.get("title", pack.topic_id)
    quoted = title if "“" in title else f"“{title}”"
    intro = (f"本汇编围绕协商议题{quoted}编辑" + (f"（协商形式：{topic['format']}）" if topic.get("format") else "")
             + f"，供参加协商的委员和有关同志调研参考。全书分{section_names}{len(sections)}个部分，辑录材料 {item_count} 条"
             + (f"（标“★”的 {key_count} 条为重点阅读材料）" if key_count else "")
             + "。所有摘录均为原文照录，出处列于每条之后，书末附资料来源。")
    facts = [(label, clean(value)) for label, value in (
        ("协商形式", topic.get("format")), ("年度", f"{topic['year']}年" if topic.get("year") else ""),
        ("牵头单位", topic.get("lead")), ("参与界别", "、".join(topic.get("sectors") or [])),
        ("工作进度", f"八步工作法{step}"), ("关键词", "、".join(topic.get("keywords") or [])),
        ("议题说明", topic.get("description"))) if value]
    links = []
    labels = {"consultation": "往期协商", "instruction": "领导批示", "followup": "回头看", "research": "调研报告"}
    for link in topic.get("links") or []:
        text = "".join(x for x in (f"《{link['title']}》" if link.get("title") else "",
                                   f"（{_chinese_date(link['date'])}）" if link.get("date") else "",
                                   f"{link['author']}：" if link.get("author") else "", link.get("text") or "") if x)
        links.append((labels.get(link.get("kind"), "关联"), clean(text)))
    version_at = pack.created_at or time.strftime("%Y-%m-%dT%H:%M:%S")
    year, month = int(version_at[:4]), int(version_at[5:7])
    stamp = {"version": pack.version, "version_at": _short_time(pack.created_at), "version_by": clean(pack.created_by),
             "change": clean(pack.change), "index_generation": pack.index_state.get("generation"),
             "index_updated": _short_time(pack.index_state.get("updated")),
             "model": _model_name(pack.index_state.get("model")), "index_documents": pack.index_state.get("documents"),
             "index_now": index_now, "exported_at": _short_time(time.strftime("%Y-%m-%dT%H:%M:%S")),
             "exported_by": clean(user), "topic_id": clean(pack.topic_id)}
    return Dossier(title="调研资料汇编", topic_title=clean(topic.get("title", pack.topic_id)), topic_id=pack.topic_id,
                   format=clean(topic.get("format", "")), year=str(topic.get("year") or ""),
                   lead=clean(topic.get("lead") or ""), sectors=clean("、".join(topic.get("sectors") or [])),
                   keywords=clean("、".join(topic.get("keywords") or [])),
                   description=clean(topic.get("description") or ""), step=clean(step), office=clean(office),
                   date_label=f"{year}年{month}月", intro=clean(intro), facts=facts, links=links, sections=sections,
                   sources=list(sources.values()), stamp=stamp, item_count=item_count, key_count=key_count)


# -- cover titles: broken at phrase boundaries, in balanced lines -------------------------
_CLOSING = "”’」』》〉）)】〕，、。：；！？,.:;!?·\u3000 "
_OPENING = "“‘「『《〈（(【〔"
# The final noun phrase of a consultation or document title: the line may break before it.
_TITLE_TAILS = ("双月座谈会", "专题协商会", "专题协商", "界别协商", "对口协商", "提案办理协商", "面对面协商", "网络协商",
                "座谈会", "协商会", "议政会", "推进会", "调研报告", "实施方案", "实施意见", "指导意见", "若干意见",
                "行动方案", "行动计划", "管理办法", "暂行办法", "若干政策措施", "政策措施", "协商纪要", "的通知")
_SHORTEST_LINE = 3  # a line of one or two characters looks like an accident


def _em(text: str) -> float:
    """Width in ems: a Chinese character or full-width mark is one, Latin letters and digits about half."""
    return sum(0.55 if ord(ch) < 0x2000 else 1.0 for ch in text)


def _title_breaks(title: str) -> dict[int, float]:
    """Where a title may break (index of the first character of the next line) and at what cost."""
    words: set[int] = set()
    try:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # as indexer/keywords.py: no dictionary-loading chatter
        at = 0
        for word in jieba.lcut(title, HMM=False):
            at += len(word)
            words.add(at)
    except ImportError:  # pragma: no cover - jieba is in requirements.txt
        pass
    tails = {len(title) - len(t) for t in _TITLE_TAILS if title.endswith(t) and len(t) < len(title)}
    depth, inside = 0, set()
    for i, ch in enumerate(title):
        depth += (ch in "“「《") - (ch in "”」》")
        if depth > 0:
            inside.add(i + 1)
    costs: dict[int, float] = {}
    for i in range(1, len(title)):
        before, after = title[i - 1], title[i]
        if after in _CLOSING or before in _OPENING:
            continue                       # no line starts with a closing mark or ends with an opening one
        latin = before.isascii() and before.isalnum()
        if latin and (after.isascii() and after.isalnum() or after in "年月日号期届次"):
            continue                       # 2025年, e5 stay whole
        if before in _CLOSING or after in _OPENING:
            cost = 0.0
        elif title[:i].endswith(("关于", "之间")) or title.startswith(("的", "关于"), i) or i in tails:
            cost = 1.0
        elif i in words:
            cost = 6.0
        else:
            cost = 40.0                    # inside a word: only when nothing else fits
        costs[i] = cost + (4.0 if i in inside and cost else 0.0)
    return costs


def title_lines(title: str, max_em: float = 18) -> list[str]:
    """A title as balanced lines of at most `max_em` ems, broken at phrase boundaries
    (punctuation and quotes, after 关于/之间, before 的 and the final noun phrase such as
    座谈会), never leaving a line of one or two characters."""
    title = title.strip()
    if _em(title) <= max_em or len(title) < 2 * _SHORTEST_LINE:
        return [title]
    costs = _title_breaks(title)
    cuts = sorted(costs)
    fewest = math.ceil(_em(title) / max_em)
    best: tuple[float, list[int]] | None = None
    for lines in range(fewest, fewest + 2):  # one more line than needed may balance better
        ideal = _em(title) / lines
        # cheapest[k][j]: (cost, cut positions) of the first j characters laid out in k lines
        cheapest: list[dict[int, tuple[float, list[int]]]] = [{0: (0.0, [])}] + [{} for _ in range(lines)]
        for k in range(1, lines + 1):
            ends = [len(title)] if k == lines else cuts
            for start, (cost, path) in cheapest[k - 1].items():
                for end in ends:
                    line = title[start:end]
                    if end <= start or len(line) < _SHORTEST_LINE or _em(line) > max_em:
                        continue
                    total = cost + costs.get(end, 0.0) + (_em(line) - ideal) ** 2 / ideal
                    if end not in cheapest[k] or total < cheapest[k][end][0]:
                        cheapest[k][end] = (total, path + [end])
        found = cheapest[lines].get(len(title))
        if found and (best is None or found[0] + 4 * lines < best[0]):
            best = (found[0] + 4 * lines, found[1])
    if best is None:
        return [title]
    bounds = [0] + best[1]
    return [title[a:b].strip() for a, b in zip(bounds, bounds[1:])]


# -- writing safely ---------------------------------------------------------------------
@dataclass
class ExportResult:
    path: Path
    format: str
    version: int
    bytes: int
    seconds: float
    items: int
    pages: int | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def resolve_target(out: str | os.PathLike, fmt: str, dossier_name: str) -> Path:
    """The file to write: `out` itself, or a file named after the pack inside `out` if it is a folder."""
    path = Path(out).expanduser()
    if path.is_dir():
        path = path / f"{dossier_name}{_SUFFIX[fmt]}"
    return path


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise ExportError(f"无法写入 {path}：{exc.strerror or exc}",
                          hint="换一个有写入权限的文件夹，例如用户目录或桌面") from exc
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; an export is meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"无法写入 {path}：{exc.strerror or exc}",
                          hint="检查磁盘空间和文件夹权限；文件是否正被其他程序打开") from exc
    finally:
        tmp.unlink(missing_ok=True)


def export_pack(pack: "BriefingPack", fmt: str, out: str | os.PathLike, *, office: str,
                notes_for: Callable | None = None, index_now: dict | None = None, user: str = "",
                other_notes: list | None = None, titles: dict[str, str] | None = None) -> ExportResult:
    """Write `pack` as `fmt` to `out` (a file, or a folder to put a named file in). `other_notes` are
    expert notes on passages in no item (titled from `titles`, doc id → title), shown in a part of their own."""
    fmt = (fmt or "").lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportError(f"不支持的导出格式“{fmt}”", hint="可选 docx、pdf、html、md")
    if pack.is_empty():
        raise ExportError(f"议题“{pack.title}”的汇编（第 {pack.version} 版）没有任何条目，无法导出",
                          hint="先用 kb pack draft 起草，或用 kb pack add 添加材料")
    started = time.perf_counter()
    dossier = build_dossier(pack, office=office, notes_for=notes_for, index_now=index_now or {}, user=user)
    dossier.other_notes = [_note_view(n, (titles or {}).get(getattr(n, "doc_id", ""), "")) for n in other_notes or []]
    name = safe_filename(f"{dossier.topic_title}_调研资料汇编_第{pack.version}版")
    path = resolve_target(out, fmt, name)
    pages: list[int] = []
    if fmt == "md":
        text = render_markdown(dossier)
        _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    elif fmt == "html":
        text = render_html(dossier)
        _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    elif fmt == "docx":
        _write_atomically(path, lambda tmp: write_docx(dossier, tmp, WORD_FONTS))
    else:
        _write_atomically(path, lambda tmp: pages.append(write_pdf(dossier, tmp)))
    return ExportResult(path=path.resolve(), format=fmt, version=pack.version, bytes=path.stat().st_size,
                        seconds=round(time.perf_counter() - started, 2), items=dossier.item_count,
                        pages=pages[0] if pages else None)


# -- Markdown -----------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md(text: str) -> str:
    """Escape what Markdown would read as markup; Chinese punctuation is left alone."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_block(text: str, prefix: str = "> ") -> str:
    lines = [_md(line).strip() for line in text.split("\n")]
    lines = [re.sub(r"^(\d+)\.", r"\1\\.", line) for line in lines]  # “1.” at a line start is not a list
    return "\n".join(prefix + line if line else prefix.rstrip() for line in lines)


def _md_note(note: NoteView) -> list[str]:
    """A list entry: the quoted sentence, then who said what, then the replies."""
    said = f"{_md(note.byline)}：{_md(note.text)}{_md(note.status)}"
    lines = [f"- {_md(note.quote_line)}  ", f"  {said}"] if note.quote_line else [f"- {said}"]
    return lines + [f"  - 回复 {_md(reply)}" for reply in note.replies]


def render_markdown(d: Dossier) -> str:
    out = [f"# {_md(d.topic_title)}", "", f"## {d.title}", ""]
    out += [f"**{label}**：{_md(value)}  " for label, value in d.facts[:5]]
    stamp = "<!-- " + " ｜ ".join(d.stamp_lines).replace("--", "—") + " -->"  # for staff: not rendered
    out += ["", f"{_md(d.office)}　{d.date_label}　{d.version_label}", "", stamp, "", "## 目录", ""]
    out += ["- 编辑说明"] + [f"- {s.title_line}（{len(s.items)} 条）" for s in d.sections] + ["- 资料来源", ""]
    out += ["## 编辑说明", "", _md(d.intro), ""]
    out += [f"- **{label}**：{_md(value)}" for label, value in d.facts[5:]]
    out += [f"- **{label}**：{_md(value)}" for label, value in d.links]
    out.append("")
    for section in d.sections:
        out += [f"## {section.title_line}", ""]
        if section.thin_note:
            out += [f"*【材料不足】{_md(section.thin_note)}*", ""]
        for item in section.items:
            out += [f"### {_md(item.title_line)}", ""]
            if item.status_note:
                out += [f"**【{_md(item.status_note)}】**", ""]
            out += [_md_block(item.quote), "", f"出处：{_md(item.citation)}", ""]
            if item.editor_note:
                out += [f"**编者按**：{_md(item.editor_note)}", ""]
            if item.notes:
                out += ["**专家意见**：", ""]
                for note in item.notes:
                    out += _md_note(note)
                out.append("")
    if d.other_notes:
        out += [f"## {OTHER_NOTES_TITLE}", "", _md(OTHER_NOTES_INTRO), ""]
        for note in d.other_notes:
            out += _md_note(note)
        out.append("")
    out += ["## 资料来源", ""]
    out += [_md(s.line).replace(".", "\\.", 1) for s in d.sources]
    out.append("")
    return "\n".join(out)


# -- HTML ---------------------------------------------------------------------------------
_CSS = """
@page { size: A4; margin: 2.6cm 2.4cm 2.4cm 2.6cm; }
body { font-family: "Noto Serif CJK SC", "Source Han Serif SC", "SimSun", "Songti SC", serif;
       font-size: 12pt; line-height: 1.75; color: #111; max-width: 46em; margin: 2em auto; padding: 0 1em; }
h1, h2, h3, .cover .name, .office { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "SimHei",
       "Heiti SC", sans-serif; }
.cover { text-align: center; min-height: 92vh; display: flex; flex-direction: column; justify-content: space-between; }
.cover .secret { text-align: left; font-size: 10.5pt; }
.cover .topic { font-size: 20pt; font-weight: bold; margin-top: 3em; }
.cover .name { font-size: 30pt; letter-spacing: .5em; margin: .6em 0 1.2em; }
.cover table { margin: 0 auto; font-size: 13pt; text-align: left; border-collapse: collapse; }
.cover td { padding: .2em .6em; vertical-align: top; }
.office { font-size: 15pt; }
h2 { font-size: 16pt; border-bottom: 2px solid #8b0000; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 13pt; margin: 1.4em 0 .4em; }
.key { color: #8b0000; }
blockquote { margin: .4em 0 .4em 1em; padding: .5em 1em; background: #f5f3ee; border-left: 4px solid #a08a5a;
             font-family: "Noto Serif CJK SC", "KaiTi", "STKaiti", serif; white-space: pre-wrap;
             overflow-wrap: anywhere; }
.citation { font-size: 10.5pt; color: #333; margin-left: 1em; }
.editor { margin-left: 1em; }
.status { color: #b00020; font-weight: bold; margin-left: 1em; }
.thin { color: #7a5a00; background: #fff8e1; padding: .4em .8em; font-style: italic; }
.notes { margin: .3em 0 0 1em; font-size: 11pt; }
.notes li { margin-bottom: .3em; }
.notes .replies { color: #444; }
.notes blockquote.note-quote { margin: .2em 0; padding: .2em .8em; font-size: 10.5pt; }
ol.sources { font-size: 10.5pt; }
nav.toc ol { list-style: none; padding-left: 1em; }
nav.toc a { color: inherit; text-decoration: none; }
@media print {
  body { margin: 0; max-width: none; }
  .cover { min-height: 24cm; page-break-after: always; }
  nav.toc, section.intro { page-break-after: always; }
  section.part { page-break-before: always; }
  h2, h3 { page-break-after: avoid; }
  blockquote { page-break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _html_note(n: NoteView) -> str:
    e = html.escape
    quote = f'<blockquote class="note-quote">{e(n.quote_line)}</blockquote>' if n.quote_line else ""
    replies = "".join(f'<div class="replies">回复 {e(r)}</div>' for r in n.replies)
    return f"<li>{quote}{e(n.byline)}：{e(n.text)}{e(n.status)}{replies}</li>"


def render_html(d: Dossier) -> str:
    """One self-contained page; every piece of text is escaped."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
           f"<title>{e(d.topic_title)} · {e(d.title)}</title>",
           '<meta name="generator" content="协商研究助手">',
           f'<meta name="kb-stamp" content="{e(" | ".join(d.stamp_lines))}">',
           f"<style>{_CSS}</style></head><body>",
           '<section class="cover">', '<div class="secret">内部资料　注意保存</div>',
           f'<div><div class="topic">{"<br>".join(e(line) for line in title_lines(d.topic_title, COVER_TITLE_EM))}'
           f'</div><div class="name">{e(d.title)}</div><table>']
    out += [f"<tr><td>{e(label)}：</td><td>{e(value)}</td></tr>" for label, value in d.facts[:5]]
    out += ["</table></div>", f'<div><div class="office">{e(d.office)}</div><div>{e(d.date_label)}</div>',
            f"<div>{e(d.version_label)}</div></div>", "</section>"]
    out += ['<nav class="toc"><h2>目　录</h2><ol>', '<li><a href="#intro">编辑说明</a></li>']
    for s in d.sections:
        out.append(f'<li><a href="#s{s.number}">{e(s.title_line)}</a><ol>')
        out += [f'<li><a href="#i{i.ref}">{e(i.title_line)}</a></li>' for i in s.items]
        out.append("</ol></li>")
    out += ['<li><a href="#sources">资料来源</a></li></ol></nav>',
            '<section class="intro" id="intro"><h2>编辑说明</h2>', f"<p>{e(d.intro)}</p><ul>"]
    out += [f"<li><b>{e(label)}</b>：{e(value)}</li>" for label, value in d.facts[5:] + d.links]
    out.append("</ul></section>")
    for s in d.sections:
        out.append(f'<section class="part" id="s{s.number}"><h2>{e(s.title_line)}</h2>')
        if s.thin_note:
            out.append(f'<p class="thin">【材料不足】{e(s.thin_note)}</p>')
        for i in s.items:
            star = '<span class="key">★</span>' if i.key else ""
            out.append(f'<article id="i{i.ref}" data-item="{e(i.item_id)}"><h3>{i.number}．{star}{e(i.heading)}</h3>')
            if i.status_note:
                out.append(f'<p class="status">【{e(i.status_note)}】</p>')
            out.append(f"<blockquote>{e(i.quote)}</blockquote>")
            out.append(f'<p class="citation">出处：{e(i.citation)}</p>')
            if i.editor_note:
                out.append(f'<p class="editor"><b>编者按：</b>{e(i.editor_note)}</p>')
            if i.notes:
                out.append('<div class="notes"><b>专家意见：</b><ul>')
                out += [_html_note(n) for n in i.notes]
                out.append("</ul></div>")
            out.append("</article>")
        out.append("</section>")
    if d.other_notes:
        out += [f'<section class="part" id="other-notes"><h2>{e(OTHER_NOTES_TITLE)}</h2>',
                f"<p>{e(OTHER_NOTES_INTRO)}</p>", '<div class="notes"><ul>']
        out += [_html_note(n) for n in d.other_notes]
        out.append("</ul></div></section>")
    out.append('<section class="part" id="sources"><h2>资料来源</h2><ol class="sources">')
    out += [f"<li>{e(s.citation)}" + (f"（{e(s.status)}）" if s.status else "") + "</li>" for s in d.sources]
    out += ["</ol>", "</section>", "</body></html>"]
    return "\n".join(out)


# -- Word -------------------------------------------------------------------------------
def write_docx(d: Dossier, path: Path, fonts: FontSet = WORD_FONTS, toc_pages: dict[str, int] | None = None) -> None:
    """The dossier as a Word file. `toc_pages` (heading → page) writes page numbers into the
    table of contents; without it Word fills them in when it updates the field on opening."""
    try:
        import docx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ExportError("缺少 python-docx，无法生成 Word 文件", hint="pip install python-docx") from exc
    _DocxWriter(d, fonts).write(path, toc_pages)


# Elements that must follow w:shd in a paragraph's properties, and w:updateFields in settings.
_PPR_AFTER_SHD = ("w:tabs", "w:suppressAutoHyphens", "w:kinsoku", "w:wordWrap", "w:overflowPunct",
                  "w:topLinePunct", "w:autoSpaceDE", "w:autoSpaceDN", "w:bidi", "w:adjustRightInd", "w:snapToGrid",
                  "w:spacing", "w:ind", "w:contextualSpacing", "w:mirrorIndents", "w:suppressOverlap", "w:jc",
                  "w:textDirection", "w:textAlignment", "w:textboxTightWrap", "w:outlineLvl", "w:divId",
                  "w:cnfStyle", "w:rPr", "w:sectPr", "w:pPrChange")
_SETTINGS_AFTER_UPDATE_FIELDS = ("w:hdrShapeDefaults", "w:footnotePr", "w:endnotePr", "w:compat", "w:docVars",
                                 "w:rsids", "m:mathPr", "w:attachedSchema", "w:themeFontLang", "w:clrSchemeMapping",
                                 "w:doNotIncludeSubdocsInStats", "w:doNotAutoCompressPictures", "w:forceUpgrade",
                                 "w:captions", "w:readModeInkLockDown", "w:smartTagType", "sl:schemaLibrary",
                                 "o:shapedefaults", "w:doNotEmbedSmartTags", "w:decimalSymbol", "w:listSeparator")


class _DocxWriter:
    """Builds the Word document paragraph by paragraph in the office's layout."""

    GREY, AMBER, RED = "666666", "7A5A00", "B00020"

    def __init__(self, d: Dossier, fonts: FontSet):
        from docx import Document

        self.d, self.fonts = d, fonts
        self.doc = Document()

    def write(self, path: Path, toc_pages: dict[str, int] | None) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH as ALIGN
        from docx.enum.text import WD_BREAK

        d, f, doc = self.d, self.fonts, self.doc
        self._page_setup()
        self._styles()
        # the technical stamp goes into the file's properties, not onto a page a member reads
        props = doc.core_properties
        props.title, props.subject, props.author = f"{d.topic_title} · {d.title}", d.topic_title, d.office
        props.keywords, props.comments = d.stamp_keywords, " | ".join(d.stamp_lines)
        props.category, props.revision = d.title, max(int(d.stamp["version"] or 1), 1)

        # cover: one page, spaced with paragraph spacing so it never spills onto a second page
        self.para("内部资料　注意保存", f.heading, 10.5, after=0, single=True)
        p = self.para("", f.heading, 20, bold=True, align=ALIGN.CENTER, before=110, after=20, single=True)
        for n, line in enumerate(title_lines(d.topic_title, COVER_TITLE_EM)):
            if n:
                p.runs[-1].add_break()
            self.run(p, line, f.heading, 20, bold=True)
        self.para(d.title, f.heading, 34, align=ALIGN.CENTER, before=10, after=44, single=True)
        for label, value in d.facts[:5]:
            p = self.para("", f.body, 14, align=ALIGN.CENTER, after=8, single=True)
            self.run(p, f"{label}：", f.heading, 14)
            self.run(p, value, f.body, 14)
        self.para(d.office, f.heading, 16, align=ALIGN.CENTER, before=120, after=6, single=True)
        self.para(d.date_label, f.body, 14, align=ALIGN.CENTER, after=6, single=True)
        self.para(d.version_label, f.body, 12, align=ALIGN.CENTER, after=0, single=True)
        doc.paragraphs[-1].add_run().add_break(WD_BREAK.PAGE)

        # table of contents
        self.para("目　　录", f.heading, 18, align=ALIGN.CENTER, after=18)
        entries = [("编辑说明", 1)]
        for s in d.sections:
            entries += [(s.title_line, 1)] + [(i.title_line, 2) for i in s.items]
        entries.append(("资料来源", 1))
        self.toc(entries, toc_pages)
        doc.add_page_break()

        # editor's introduction, then the sections
        self.heading("编辑说明", 1)
        self.para(d.intro, f.body, 12, first_line=True)
        for label, value in d.facts[5:] + d.links:
            p = self.para("", f.body, 12, first_line=True)
            self.run(p, f"{label}：", f.heading, 12)
            self.run(p, value, f.body, 12)
        p = self.para("", f.body, 12, first_line=True)
        self.run(p, "版本：", f.heading, 12)
        self.run(p, d.version_note, f.body, 12)
        for s in d.sections:
            doc.add_page_break()
            self.heading(s.title_line, 1)
            if s.thin_note:
                self.para(f"【材料不足】{s.thin_note}", f.quote, 11, italic=True, color=self.AMBER)
            for item in s.items:
                self.item(item)
        if d.other_notes:
            doc.add_page_break()
            self.heading(OTHER_NOTES_TITLE, 1)
            self.para(OTHER_NOTES_INTRO, f.body, 12, first_line=True)
            for note in d.other_notes:
                self.expert_note(note)
        doc.add_page_break()
        self.heading("资料来源", 1)
        for src in d.sources:
            self.para(src.line, f.body, 10.5, hanging_cm=0.74, after=3)
        if toc_pages is None:
            self._update_fields_on_open()
        doc.save(str(path))

    def item(self, item: ItemView) -> None:
        f = self.fonts
        self.heading(item.title_line, 2)
        if item.status_note:
            status = self.para(f"【{item.status_note}】", f.heading, 11, bold=True, color=self.RED)
            status.paragraph_format.keep_with_next = True
        lines = [line for line in item.quote.split("\n") if line.strip()]
        for n, line in enumerate(lines):
            self.quote(line, last=n == len(lines) - 1)
        citation = self.para(f"出处：{item.citation}", f.body, 10.5, indent_cm=0.74, after=6)
        if item.editor_note:
            # the 编者按 is never left alone at the top of a page: it is chained to its passage
            citation.paragraph_format.keep_with_next = True
            p = self.para("", f.body, 11, indent_cm=0.74)
            p.paragraph_format.keep_together = True
            self.run(p, "编者按：", f.heading, 11)
            self.run(p, item.editor_note, f.body, 11)
        if item.notes:
            self.para("专家意见：", f.heading, 11, indent_cm=0.74, after=2)
            for note in item.notes:
                self.expert_note(note)

    def expert_note(self, note: NoteView) -> None:
        """The quoted sentence, then who said what, then the replies."""
        f = self.fonts
        if note.quote_line:
            self.para(note.quote_line, f.quote, 10.5, indent_cm=1.2, after=0)
        p = self.para("", f.body, 10.5, indent_cm=1.2, after=2)
        self.run(p, note.byline + "：", f.heading, 10.5)
        self.run(p, note.text + note.status, f.body, 10.5)
        for reply in note.replies:
            self.para(f"回复 {reply}", f.body, 10, indent_cm=1.8, after=2, color="444444")

    # -- building blocks ------------------------------------------------------------------
    def _page_setup(self) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH as ALIGN
        from docx.shared import Cm

        section = self.doc.sections[0]
        section.page_height, section.page_width = Cm(29.7), Cm(21.0)
        section.top_margin, section.bottom_margin = Cm(3.0), Cm(2.6)
        section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)
        section.different_first_page_header_footer = True  # no header or page number on the cover
        header = section.header.paragraphs[0]
        header.alignment = ALIGN.CENTER
        self.run(header, f"{self.d.topic_title} · {self.d.title}", self.fonts.body, 9, color=self.GREY)
        footer = section.footer.paragraphs[0]
        footer.alignment = ALIGN.CENTER
        self.run(footer, "— ", self.fonts.body, 10.5)
        self.field(footer, "PAGE", "1")
        self.run(footer, " —", self.fonts.body, 10.5)

    def _styles(self) -> None:
        from docx.enum.style import WD_STYLE_TYPE
        from docx.enum.text import WD_LINE_SPACING
        from docx.shared import Pt, RGBColor

        f, styles = self.fonts, self.doc.styles
        normal = styles["Normal"]
        normal.font.size = Pt(12)
        self.set_fonts(normal.element, f.body)
        normal.paragraph_format.line_spacing_rule = WD_LINE_SPACING.ONE_POINT_FIVE
        normal.paragraph_format.space_after = Pt(4)
        for name, size, before, after in (("Heading 1", 16, 12, 12), ("Heading 2", 13, 12, 4)):
            style = styles[name]
            style.font.size, style.font.bold, style.font.italic = Pt(size), name == "Heading 2", False
            style.font.color.rgb = RGBColor(0, 0, 0)
            self.set_fonts(style.element, f.heading)
            fmt = style.paragraph_format
            fmt.space_before, fmt.space_after, fmt.keep_with_next = Pt(before), Pt(after), True
            fmt.line_spacing_rule = WD_LINE_SPACING.SINGLE
        for level in (1, 2):
            name = f"TOC {level}"
            style = styles[name] if name in [s.name for s in styles] else styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
            style.base_style = normal
            style.font.size = Pt(12 if level == 1 else 11)
            self.set_fonts(style.element, f.heading if level == 1 else f.body)
            style.paragraph_format.left_indent = Pt(0 if level == 1 else 40)
            style.paragraph_format.first_line_indent = Pt(0 if level == 1 else -16)  # wrapped lines clear the number
            style.paragraph_format.space_after = Pt(2)
            style.paragraph_format.line_spacing_rule = WD_LINE_SPACING.SINGLE

    def set_fonts(self, element, cjk: str) -> None:
        """Latin and East Asian fonts of a run or style; theme fonts would otherwise win."""
        from docx.oxml.ns import qn

        rpr = element.get_or_add_rPr()
        fonts = rpr.find(qn("w:rFonts"))
        if fonts is None:
            fonts = rpr.makeelement(qn("w:rFonts"), {})
            rpr.insert(0, fonts)
        for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
            fonts.attrib.pop(qn(attr), None)
        for attr in ("w:ascii", "w:hAnsi", "w:cs"):
            fonts.set(qn(attr), self.fonts.latin)
        fonts.set(qn("w:eastAsia"), cjk)

    def run(self, paragraph, text: str, font: str, size: float, bold: bool = False, italic: bool = False,
            color: str | None = None):
        from docx.shared import Pt, RGBColor

        run = paragraph.add_run(text)
        run.font.size = Pt(size)
        run.font.bold = bold or None
        run.font.italic = italic or None
        if color:
            run.font.color.rgb = RGBColor.from_string(color)
        self.set_fonts(run._element, font)
        return run

    def para(self, text: str, font: str, size: float, *, bold: bool = False, italic: bool = False, align=None,
             before: float | None = None, after: float | None = None, color: str | None = None,
             indent_cm: float = 0, hanging_cm: float = 0, first_line: bool = False, single: bool = False):
        from docx.enum.text import WD_LINE_SPACING
        from docx.shared import Cm, Pt

        p = self.doc.add_paragraph()
        if text:
            self.run(p, text, font, size, bold, italic, color)
        fmt = p.paragraph_format
        if align is not None:
            p.alignment = align
        if before is not None:
            fmt.space_before = Pt(before)
        if after is not None:
            fmt.space_after = Pt(after)
        if single:
            fmt.line_spacing_rule = WD_LINE_SPACING.SINGLE
        if indent_cm:
            fmt.left_indent = Cm(indent_cm)
        if hanging_cm:
            fmt.left_indent, fmt.first_line_indent = Cm(hanging_cm), Cm(-hanging_cm)
        if first_line:
            fmt.first_line_indent = Pt(24)
        return p

    def heading(self, text: str, level: int):
        p = self.doc.add_paragraph(style=f"Heading {level}")
        p.add_run(text)
        return p

    def quote(self, text: str, last: bool):
        """One line of a quotation: indented and shaded, with a rule on the left."""
        from docx.oxml.ns import qn
        from docx.shared import Cm, Pt

        p = self.para(text, self.fonts.quote, 11.5, indent_cm=0.74, after=4 if last else 0)
        p.paragraph_format.keep_with_next = True  # heading, quotation and citation stay on one page when they fit
        p.paragraph_format.right_indent = Cm(0.4)
        p.paragraph_format.line_spacing = 1.35
        p.paragraph_format.first_line_indent = Pt(23)
        ppr = p._element.get_or_add_pPr()
        borders = ppr.makeelement(qn("w:pBdr"), {})
        borders.append(borders.makeelement(qn("w:left"), {qn("w:val"): "single", qn("w:sz"): "18",
                                                          qn("w:space"): "8", qn("w:color"): "A08A5A"}))
        shading = ppr.makeelement(qn("w:shd"), {qn("w:val"): "clear", qn("w:color"): "auto", qn("w:fill"): "F5F3EE"})
        # Word wants pPr children in schema order: keepNext … pBdr, shd, tabs … spacing, ind …
        ppr.insert_element_before(borders, *_PPR_AFTER_SHD, "w:shd")
        ppr.insert_element_before(shading, *_PPR_AFTER_SHD)
        return p

    def field(self, paragraph, instruction: str, placeholder: str = "") -> None:
        """A complex field such as PAGE inside `paragraph`."""
        self._fld(paragraph, "begin")
        self._instr(paragraph, instruction)
        self._fld(paragraph, "separate")
        self.run(paragraph, placeholder, self.fonts.body, 10.5)
        self._fld(paragraph, "end")

    @staticmethod
    def _fld(paragraph, kind: str) -> None:
        from docx.oxml import OxmlElement
        from docx.oxml.ns import qn

        el = OxmlElement("w:fldChar")
        el.set(qn("w:fldCharType"), kind)
        paragraph.add_run()._element.append(el)

    @staticmethod
    def _instr(paragraph, instruction: str) -> None:
        from docx.oxml import OxmlElement
        from docx.oxml.ns import qn

        el = OxmlElement("w:instrText")
        el.set(qn("xml:space"), "preserve")
        el.text = f" {instruction} "
        paragraph.add_run()._element.append(el)

    def toc(self, entries: list[tuple[str, int]], pages: dict[str, int] | None) -> None:
        """A TOC field spanning the entry paragraphs: Word can update it, and every reader
        sees the written list (with page numbers when they are known)."""
        from docx.enum.text import WD_TAB_ALIGNMENT, WD_TAB_LEADER
        from docx.shared import Cm

        section = self.doc.sections[0]
        width = section.page_width - section.left_margin - section.right_margin
        for n, (text, level) in enumerate(entries):
            p = self.doc.add_paragraph(style=f"TOC {level}")
            if n == 0:
                self._fld(p, "begin")
                self._instr(p, 'TOC \\o "1-2" \\h \\z \\u')
                self._fld(p, "separate")
            p.add_run(text)
            if pages is not None:
                p.paragraph_format.tab_stops.add_tab_stop(width - Cm(0.05), WD_TAB_ALIGNMENT.RIGHT, WD_TAB_LEADER.DOTS)
                p.add_run("\t" + str(pages.get(text, "")))
            if n == len(entries) - 1:
                self._fld(p, "end")

    def _update_fields_on_open(self) -> None:
        """Ask Word to refresh the TOC page numbers when the file is opened."""
        from docx.oxml import OxmlElement
        from docx.oxml.ns import qn

        el = OxmlElement("w:updateFields")
        el.set(qn("w:val"), "true")
        self.doc.settings.element.insert_element_before(el, *_SETTINGS_AFTER_UPDATE_FIELDS)


# -- PDF ------------------------------------------------------------------------------------
def soffice_path() -> str:
    """LibreOffice's command, or an `ExportError` saying how to install it."""
    found = os.environ.get("KB_SOFFICE") or shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        for candidate in ("/usr/lib/libreoffice/program/soffice", "/opt/libreoffice/program/soffice",
                          "/Applications/LibreOffice.app/Contents/MacOS/soffice"):
            if Path(candidate).exists():
                found = candidate
                break
    if not found:
        raise ExportError("导出 PDF 需要 LibreOffice，本机未找到 soffice 命令",
                          hint="运行 scripts/system_deps.sh 安装（或 apt-get install libreoffice-writer），"
                               "也可先导出 docx 再用 Word/WPS 另存为 PDF")
    return found


def check_cjk_fonts() -> None:
    """The Noto CJK fonts the PDF is set in must be installed, or the PDF would show boxes."""
    names = ("NotoSerifCJK", "NotoSansCJK")
    for folder in CJK_FONT_DIRS:
        if folder.exists() and any(any(n in p.name for n in names) for p in folder.rglob("*")):
            return
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    if "Noto Serif CJK SC" in listed and "Noto Sans CJK SC" in listed:
        return
    raise ExportError("导出 PDF 需要中文字体 Noto Serif/Sans CJK SC，本机未安装",
                      hint="运行 scripts/system_deps.sh（或 apt-get install fonts-noto-cjk）后重试")


def _convert(docx_path: Path, workdir: Path) -> Path:
    """docx → pdf with LibreOffice in its own throwaway profile (so it runs beside an open office)."""
    profile = workdir / "lo-profile"
    command = [soffice_path(), "--headless", "--norestore", "--nolockcheck",
               f"-env:UserInstallation={profile.resolve().as_uri()}",
               "--convert-to", "pdf:writer_pdf_Export", "--outdir", str(workdir), str(docx_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SOFFICE_TIMEOUT,
                              env={**os.environ, "HOME": str(workdir)})
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"LibreOffice 转换 PDF 超时（{SOFFICE_TIMEOUT} 秒）", hint="关闭其他 LibreOffice 窗口后重试") from exc
    except OSError as exc:
        raise ExportError(f"无法启动 LibreOffice：{exc}", hint="检查 LibreOffice 安装") from exc
    pdf = workdir / (docx_path.stem + ".pdf")
    if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        detail = (done.stderr or done.stdout or "").strip().splitlines()
        raise ExportError("LibreOffice 未能生成 PDF" + (f"：{detail[-1]}" if detail else ""),
                          hint="先导出 docx 检查内容，或用 Word/WPS 另存为 PDF")
    return pdf


def _heading_pages(pdf: Path, headings: list[str], first_body_text: str) -> dict[str, int]:
    """Page (as printed in the footer: the cover is page 1) of each heading, found in reading
    order after the table of contents."""
    from pypdf import PdfReader

    texts = [re.sub(r"\s+", "", page.extract_text() or "") for page in PdfReader(str(pdf)).pages]
    marker = re.sub(r"\s+", "", first_body_text)[:24]
    start = next((n for n, text in enumerate(texts) if marker and marker in text), None)
    if start is None:
        return {}
    found: dict[str, int] = {}
    page = start
    for heading in headings:
        key = re.sub(r"\s+", "", heading)
        for n in range(page, len(texts)):
            if key in texts[n]:
                found[heading] = n + 1
                page = n
                break
    return found


def write_pdf(d: Dossier, path: Path) -> int:
    """The dossier as a PDF with embedded CJK fonts; returns the page count."""
    from pypdf import PdfReader

    soffice_path()
    check_cjk_fonts()
    headings = ["编辑说明"] + [h for s in d.sections for h in [s.title_line] + [i.title_line for i in s.items]]
    headings.append("资料来源")
    with tempfile.TemporaryDirectory(prefix="kb-pdf-") as tmp:
        work = Path(tmp)
        source = work / "dossier.docx"
        # same layout in both passes: only the digits of the page numbers change
        write_docx(d, source, PDF_FONTS, toc_pages={})
        pages = _heading_pages(_convert(source, work), headings, d.intro)
        write_docx(d, source, PDF_FONTS, toc_pages=pages)
        final = _convert(source, work)
        count = len(PdfReader(str(final)).pages)
        _write_pdf_properties(final, path, d)
    return count


def _write_pdf_properties(pdf: Path, path: Path, d: Dossier) -> None:
    """Copy `pdf` to `path` with the stamp (version, index generation, model, who exported it)
    in the document properties, where staff can look it up and members do not read it."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(pdf)))
    writer.add_metadata({"/Title": f"{d.topic_title} · {d.title}", "/Author": d.office,
                         "/Subject": " | ".join(d.stamp_lines), "/Keywords": d.stamp_keywords,
                         "/Creator": "协商研究助手"})
    with open(path, "wb") as out:
        writer.write(out)
