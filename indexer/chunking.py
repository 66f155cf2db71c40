"""Split a document along its own structure.

* regulations: one chunk per 第X条, labelled with its 章 (long articles continue
  in a second chunk labelled “（续）”);
* material with numbered sections (一、二、… or headings): sections, packed by paragraph;
* speeches and everything else: paragraphs packed up to `max_chars`.

Every chunk is a span `[start, end)` of the normalised text, so `text[start:end]`
is the exact quotation a citation shows.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

CHINESE_NUMERAL = r"[一二三四五六七八九十百千零〇两\d]+"
_ARTICLE_RE = re.compile(rf"^第{CHINESE_NUMERAL}条")
_CHAPTER_RE = re.compile(rf"^第{CHINESE_NUMERAL}[章节编]")
_SECTION_RE = re.compile(r"^([一二三四五六七八九十]+、|（[一二三四五六七八九十]+）)")
_SENTENCE_RE = re.compile(r"[^。！？；!?;\n]*[。！？；!?;]?")
# An article number (第十二条, 第十条之一), the same for chunking, embedding and keywords.
ARTICLE_NUMBER = rf"第{CHINESE_NUMERAL}条(?:之[一二三四五六七八九十]+)?"
# A leading article number (“第五条 ”), matched at a given position (no ^: see `re.match` pos).
ARTICLE_LABEL_RE = re.compile(rf"\s*{ARTICLE_NUMBER}\s*")
# Sentence ends; a line break ends one too (a heading, a list line) unless it follows a
# colon, where a lead-in (“有下列情形之一的：”) belongs with its first item.
_CLAUSE_END_RE = re.compile(r"[。！？；!?;]|(?<![：:])\n")
MIN_SENTENCE_CHARS = 6

DEFAULT_MAX_CHARS = 500
DEFAULT_MIN_CHARS = 120


@dataclass(frozen=True)
class ChunkSpan:
    start: int
    end: int
    label: str
    page: int | None = None

    def text_of(self, text: str) -> str:
        return text[self.start:self.end]


def content_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences of the chunk `text[start:end]` (split after 。！？； and at line
    breaks not preceded by a colon, leading 第X条
    dropped, pieces under `MIN_SENTENCE_CHARS` left out); [] when it holds fewer than two.

    A chunk's vector averages all its sentences; a question usually asks about one
    of them, so search also compares the question with each sentence (kb.search).
    """
    label = ARTICLE_LABEL_RE.match(text, start, end)
    piece = label.end() if label else start
    spans = []
    for match in _CLAUSE_END_RE.finditer(text, piece, end):
        spans.append(_trim(text, piece, match.end()))
        piece = match.end()
    spans.append(_trim(text, piece, end))
    spans = [(s, e) for s, e in spans if len(re.sub(r"\s", "", text[s:e])) >= MIN_SENTENCE_CHARS]
    return spans if len(spans) >= 2 else []


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty line, offsets into `text`."""
    spans, pos = [], 0
    for line in text.split("\n"):
        if line.strip():
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut [start, end) at sentence ends into pieces of at most ~max_chars."""
    if end - start <= max_chars:
        return [(start, end)]
    pieces, piece_start, pos = [], start, start
    for match in _SENTENCE_RE.finditer(text, start, end):
        if not match.group():
            continue
        if match.end() - piece_start > max_chars and pos > piece_start:
            pieces.append((piece_start, pos))
            piece_start = pos
        pos = match.end()
        while pos - piece_start > max_chars:  # a single sentence longer than max_chars
            pieces.append((piece_start, piece_start + max_chars))
            piece_start += max_chars
    if piece_start < end:
        pieces.append((piece_start, end))
    return [(s, e) for s, e in pieces if text[s:e].strip()]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _articles(text: str, lines, max_chars: int) -> list[ChunkSpan]:
    chunks: list[ChunkSpan] = []
    chapter = ""
    article_starts = [i for i, (s, e) in enumerate(lines) if _ARTICLE_RE.match(text[s:e])]
    preamble_end = lines[article_starts[0]][0]
    chunks += _paragraph_pack(text, [l for l in lines if l[1] <= preamble_end and not _CHAPTER_RE.match(text[l[0]:l[1]])],
                              max_chars, DEFAULT_MIN_CHARS, label_prefix="")
    for i, (s, e) in enumerate(lines[: article_starts[0]]):
        if _CHAPTER_RE.match(text[s:e]):
            chapter = text[s:e].strip()
    bounds = article_starts + [len(lines)]
    for a, b in zip(bounds, bounds[1:]):
        body = []
        next_chapter = None
        for s, e in lines[a:b]:
            if _CHAPTER_RE.match(text[s:e]):
                next_chapter = text[s:e].strip()
                break
            body.append((s, e))
        first = text[body[0][0]:body[0][1]]
        article = _ARTICLE_RE.match(first).group()
        label = f"{chapter} {article}".strip()
        start, end = _trim(text, body[0][0], body[-1][1])
        for n, (ps, pe) in enumerate(_split_long(text, start, end, max_chars)):
            chunks.append(ChunkSpan(*_trim(text, ps, pe), label=label if n == 0 else f"{label}（续）"))
        # trailing lines after a chapter heading belong to the next article anyway
        if next_chapter:
            chapter = next_chapter
    return chunks


def _paragraph_pack(text, lines, max_chars, min_chars, label_prefix) -> list[ChunkSpan]:
    """Pack consecutive paragraphs into chunks of up to max_chars, labelled 第m–n段."""
    chunks: list[ChunkSpan] = []
    group: list[int] = []
    paragraphs = []
    for n, (s, e) in enumerate(lines, start=1):
        paragraphs.append((n, s, e))

    def flush():
        if not group:
            return
        first, last = paragraphs[group[0]], paragraphs[group[-1]]
        label = f"第{first[0]}段" if first is last else f"第{first[0]}–{last[0]}段"
        label = f"{label_prefix} {label}".strip()
        start, end = _trim(text, first[1], last[2])
        pieces = _split_long(text, start, end, max_chars)
        for k, (ps, pe) in enumerate(pieces):
            chunks.append(ChunkSpan(*_trim(text, ps, pe), label=label if k == 0 else f"{label}（续）"))
        group.clear()

    for idx, (n, s, e) in enumerate(paragraphs):
        size = (e - paragraphs[group[0]][1]) if group else (e - s)
        if group and size > max_chars and (paragraphs[group[-1]][2] - paragraphs[group[0]][1]) >= min_chars:
            flush()
        group.append(idx)
    flush()
    if label_prefix and len(chunks) == 1:  # a section that fits in one chunk is labelled by its heading alone
        chunks[0] = ChunkSpan(chunks[0].start, chunks[0].end, label_prefix)
    return chunks


def section_title(line: str, limit: int = 24) -> str:
    """“（七）建立补助机制。各地要……” → “（七）建立补助机制”: a heading line often runs into its text."""
    line = line.strip()
    head = re.split(r"[。；：:！？]", line, maxsplit=1)[0]
    return head if len(head) <= limit else head[:limit].rstrip("，、 ") + "…"


def _sections(text, lines, max_chars) -> list[ChunkSpan]:
    chunks: list[ChunkSpan] = []
    starts = [i for i, (s, e) in enumerate(lines) if _SECTION_RE.match(text[s:e])]
    head = lines[: starts[0]]
    if head:
        chunks += _paragraph_pack(text, head, max_chars, DEFAULT_MIN_CHARS, "")
    bounds = starts + [len(lines)]
    for a, b in zip(bounds, bounds[1:]):
        s, e = lines[a]
        title = section_title(text[s:e])
        chunks += _paragraph_pack(text, lines[a:b], max_chars, DEFAULT_MIN_CHARS, title)
    return chunks


def _assign_pages(chunks: list[ChunkSpan], pages) -> list[ChunkSpan]:
    if not pages:
        return chunks
    out = []
    for chunk in chunks:
        page = next((number for number, s, e in pages if s <= chunk.start < e + 1), pages[-1][0])
        out.append(ChunkSpan(chunk.start, chunk.end, chunk.label, page))
    return out


def chunk_text(text: str, pages=(), max_chars: int = DEFAULT_MAX_CHARS) -> list[ChunkSpan]:
    """Chunks of `text` following its structure; see the module docstring."""
    lines = _lines(text)
    if not lines:
        return []
    line_texts = [text[s:e] for s, e in lines]
    if sum(1 for t in line_texts if _ARTICLE_RE.match(t)) >= 2:
        chunks = _articles(text, lines, max_chars)
    elif sum(1 for t in line_texts if _SECTION_RE.match(t)) >= 2:
        chunks = _sections(text, lines, max_chars)
    else:
        chunks = _paragraph_pack(text, lines, max_chars, DEFAULT_MIN_CHARS, "")
    chunks = [c for c in chunks if c.end > c.start]
    return _assign_pages(chunks, list(pages))
