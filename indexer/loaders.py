"""Files → normalised text (+ page spans). One function per format, one entry point.

The normalised text is what chunks, citations and expert notes point into, so
every offset in the system is an offset into the string returned here.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EmptyDocument, LoadError, UnsupportedFormat

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".docx", ".pdf", ".html", ".htm"}

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_SENTENCE_END = "。！？；：…」』”）)】"
_STRUCTURE_START = re.compile(
    r"^(第[一二三四五六七八九十百千零〇\d]+[章节条]|[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|\d+[.、．]|#"
    r"|[\u4e00-\u9fa5]{2,6}[：:])")  # the last: header lines such as 文号：…


@dataclass
class LoadedText:
    text: str
    pages: list[tuple[int, int, int]] = field(default_factory=list)  # (page number, start, end)
    encoding: str | None = None
    properties: dict = field(default_factory=dict)  # what the format itself says (docx title, html <title>)


def normalise(text: str) -> str:
    """Unify newlines, drop zero-width characters and indentation, collapse blank runs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_ZERO_WIDTH)
    lines = [line.strip(" \t\u3000\xa0") for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


def decode_bytes(data: bytes, path: Path) -> tuple[str, str]:
    """Decode UTF-8 or GB18030/GBK text; refuse binary content with a reason."""
    if not data.strip():
        raise EmptyDocument(path, "文件为空")
    if b"\x00" in data[:4096]:
        raise LoadError(path, "不是文本文件（含二进制内容）", hint="检查文件是否被错误改了扩展名")
    nul = data.find(b"\x00")
    if nul >= 0:  # UTF-8 and GBK text never holds a NUL byte: the file is damaged past its start
        raise LoadError(path, f"第 {nul} 字节处有空字符（NUL），文件可能已损坏或混入了二进制内容",
                        hint="用文本编辑器打开检查，另存为 UTF-8 后重试")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text, "utf-8" if encoding == "utf-8-sig" else encoding
    raise LoadError(path, "无法识别文本编码（既不是 UTF-8 也不是 GBK/GB18030）", hint="请另存为 UTF-8 后重试")


def _looks_like_text(text: str) -> bool:
    sample = text[:20000]
    if not sample:
        return False
    bad = sum(1 for ch in sample if unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs") and ch not in "\n\r\t")
    return bad / len(sample) < 0.01


def _strip_markdown(text: str) -> str:
    text = re.sub(r"(?m)^#{1,6}\s*", "", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    return re.sub(r"(?m)^>\s?", "", text)


def _load_text(path: Path) -> LoadedText:
    raw, encoding = decode_bytes(path.read_bytes(), path)
    if path.suffix.lower() in (".md", ".markdown"):
        raw = _strip_markdown(raw)
    return LoadedText(normalise(raw), encoding=encoding)


def _load_docx(path: Path) -> LoadedText:
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError
    except ImportError as exc:  # pragma: no cover
        raise LoadError(path, "未安装 python-docx", hint="运行 make setup") from exc
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise LoadError(path, "Word 文件损坏或不是 .docx 格式", hint="用 Word/WPS 打开后另存为 .docx") from exc
    except Exception as exc:  # zipfile.BadZipFile, lxml errors …
        raise LoadError(path, f"Word 文件损坏（{type(exc).__name__}）", hint="用 Word/WPS 打开后另存为 .docx") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text.strip() for cell in row.cells))
    props = {}
    if document.core_properties.title:
        props["title"] = document.core_properties.title.strip()
    return LoadedText(normalise("\n".join(parts)), properties=props)


def _join_wrapped_lines(page_text: str) -> str:
    """PDF text layers break lines at the page edge; rejoin lines inside a paragraph."""
    lines = [line.strip() for line in page_text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line:
            continue
        if out and not out[-1].endswith(tuple(_SENTENCE_END)) and not _STRUCTURE_START.match(line) and len(out[-1]) > 15:
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def _load_pdf(path: Path) -> LoadedText:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover
        raise LoadError(path, "未安装 pypdf", hint="运行 make setup") from exc
    try:
        reader = PdfReader(str(path))
        # some producers' ToUnicode maps yield UTF-16 NUL padding; it is never content
        page_texts = [(page.extract_text() or "").replace("\x00", "") for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError, TypeError) as exc:
        raise LoadError(path, "PDF 文件损坏或不完整", hint="重新下载或导出该 PDF") from exc
    except Exception as exc:
        raise LoadError(path, f"PDF 无法解析（{type(exc).__name__}）", hint="重新导出该 PDF") from exc
    text, pages = "", []
    for number, page_text in enumerate(page_texts, start=1):
        chunk = normalise(_join_wrapped_lines(page_text))
        if not chunk:
            continue
        start = len(text)
        # a paragraph running over the page break continues on the same line
        if text and (text.endswith(tuple(_SENTENCE_END)) or _STRUCTURE_START.match(chunk)):
            text += "\n"
            start += 1
        text += chunk
        pages.append((number, start, len(text)))
    if not text.strip():
        raise EmptyDocument(path, "PDF 没有文字层（可能是扫描件）", hint="先做文字识别（OCR）再导入")
    props = {}
    meta = reader.metadata
    if meta is not None and meta.title:
        props["title"] = str(meta.title).strip()
    return LoadedText(text, pages=pages, properties=props)


_BLOCK_TAGS = ["p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "table", "section", "article",
               "blockquote", "pre", "dd", "dt"]
# Page furniture that sits inside many government article templates.
_HTML_CHROME_RE = re.compile(r"(字号[：:]|浏览次数|打印本页|关闭窗口|分享到|【打印】|【关闭】)")


def _load_html(path: Path) -> LoadedText:
    from bs4 import BeautifulSoup

    raw, encoding = decode_bytes(path.read_bytes(), path)
    soup = BeautifulSoup(raw, "lxml")
    page_title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "form"]):
        tag.decompose()
    article = soup.select_one(".article, article, main, #content") or soup.body or soup
    heading = article.find(["h1", "h2"])
    # The article's own heading beats <title>, which sites pad with “_栏目_网站名”.
    title = heading.get_text(strip=True) if heading is not None else page_title.split("_")[0]
    props = {"title": title} if title else {}
    body = article
    # Inline tags (<a>, <span>) must not break lines; block tags must.
    for br in body.find_all("br"):
        br.replace_with("\n")
    for tag in body.find_all(_BLOCK_TAGS):
        tag.insert_after("\n")
    lines = [line for line in body.get_text().split("\n") if not _HTML_CHROME_RE.search(line)]
    text = normalise("\n".join(lines))
    return LoadedText(text, encoding=encoding, properties=props)


_LOADERS = {".docx": _load_docx, ".pdf": _load_pdf, ".html": _load_html, ".htm": _load_html}


def load_file(path: str | Path) -> LoadedText:
    """Read one file into normalised text. Raises a `LoadError` subclass naming the file and reason."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFormat(path, f"不支持的文件格式 {suffix or '（无扩展名）'}",
                                hint="支持 .txt .md .docx .pdf .html")
    try:
        loaded = _LOADERS.get(suffix, _load_text)(path)
    except OSError as exc:
        raise LoadError(path, f"无法读取文件（{exc.strerror or exc}）") from exc
    if not loaded.text.strip():
        raise EmptyDocument(path, "文件没有可索引的文字")
    return loaded
