"""Text anchors for expert notes: a quote with some context and its offsets, and how to
find it again after the document text changed.

An anchor is described three ways at once (as web annotators do): by position
(`start`, `end`), by the quoted text, and by the text just before and after it.
Relocating tries, in order:

1. the quote still at its old offset;
2. the quote elsewhere: several occurrences are told apart by their context,
   then by distance from the old offset;
3. a fuzzy match of the quote, helped by its context: similar enough on its
   own, or a little less similar with the text on one side unchanged. It also
   wins over an exact occurrence in quite other surroundings (a slightly edited
   sentence that also occurs, unedited, elsewhere in the document).

When none is good enough the anchor is lost and the caller keeps the note as
orphaned.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

CONTEXT_CHARS = 32
# Below this similarity (0–100) a fuzzy match is more likely another passage than an edit of ours…
FUZZY_THRESHOLD = 85.0
# …unless the text right before or after it is unchanged: then a rewording of the passage itself
# (“不是…要” → “并非…关键要”) is still recognised down to this similarity.
CONTEXT_HELPED_THRESHOLD = 70.0
INTACT_SIDE = 90.0
# Short quotes match too easily by chance; they also need their surroundings to agree.
SHORT_QUOTE = 8
SHORT_QUOTE_MIN_CONTEXT = 60.0
# An exact occurrence whose surroundings agree this well is taken without looking further.
SURE_CONTEXT = 60.0


@dataclass(frozen=True)
class TextAnchor:
    """Where a note points: `text[start:end] == quote`, with `prefix`/`suffix` around it."""

    quote: str
    start: int
    end: int
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class Relocation:
    """The outcome of looking for an anchor in (possibly edited) text.

    method: "same_offset" (quote still where it was), "exact" (quote found elsewhere),
    "fuzzy" (a similar passage; the anchor's quote is the new wording) or "lost".
    """

    anchor: TextAnchor | None
    method: str
    score: float
    occurrences: int = 0

    @property
    def found(self) -> bool:
        return self.anchor is not None


def anchor_at(text: str, start: int, end: int, context: int = CONTEXT_CHARS) -> TextAnchor:
    """The anchor of `text[start:end]` with up to `context` characters on each side."""
    return TextAnchor(quote=text[start:end], start=start, end=end,
                      prefix=text[max(0, start - context):start], suffix=text[end:end + context])


def occurrences(text: str, quote: str) -> list[int]:
    """Start offsets of every (possibly overlapping) occurrence of `quote` in `text`."""
    found, pos = [], text.find(quote)
    while pos != -1 and quote:
        found.append(pos)
        pos = text.find(quote, pos + 1)
    return found


def find_loose(text: str, quote: str) -> list[tuple[int, int]]:
    """Spans matching `quote` when whitespace differs (a quote pasted across a line break)."""
    chars = [re.escape(c) for c in quote if not c.isspace()]
    if not chars:
        return []
    pattern = re.compile(r"\s*".join(chars))
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def context_score(text: str, start: int, end: int, prefix: str, suffix: str) -> float:
    """How well the text around `[start, end)` agrees with the remembered context (0–100).

    Each side is compared over the remembered length and weighted by it, so an anchor at
    the very beginning of a document (empty prefix) is judged by its suffix alone.
    """
    parts = _side_scores(text, start, end, prefix, suffix)
    if not parts:
        return 100.0
    return sum(w * s for w, s in parts) / sum(w for w, _ in parts)


def _side_scores(text: str, start: int, end: int, prefix: str, suffix: str) -> list[tuple[int, float]]:
    """(remembered length, similarity) of each non-empty side of the context."""
    parts = []
    if prefix:
        parts.append((len(prefix), fuzz.ratio(prefix, text[max(0, start - len(prefix)):start])))
    if suffix:
        parts.append((len(suffix), fuzz.ratio(suffix, text[end:end + len(suffix)])))
    return parts


def choose(text: str, spans: list[tuple[int, int]], prefix: str = "", suffix: str = "",
           near: int | None = None) -> tuple[int, int]:
    """The span whose context agrees best; ties go to the one nearest `near` (then the first)."""
    def rank(span: tuple[int, int]):
        distance = abs(span[0] - near) if near is not None else span[0]
        return (-round(context_score(text, span[0], span[1], prefix, suffix), 1), distance, span[0])

    return min(spans, key=rank)


def relocate(anchor: TextAnchor, text: str, threshold: float = FUZZY_THRESHOLD,
             context: int = CONTEXT_CHARS) -> Relocation:
    """Find `anchor` in `text`; see the module docstring for the order of attempts."""
    quote = anchor.quote
    if quote and text[anchor.start:anchor.end] == quote:
        return Relocation(anchor_at(text, anchor.start, anchor.end, context), "same_offset", 100.0, 1)
    starts = occurrences(text, quote)
    exact = None
    if starts:
        start, end = choose(text, [(s, s + len(quote)) for s in starts], anchor.prefix, anchor.suffix,
                            near=anchor.start)
        exact = Relocation(anchor_at(text, start, end, context), "exact", 100.0, len(starts))
        exact_ctx = context_score(text, start, end, anchor.prefix, anchor.suffix)
        if exact_ctx >= SURE_CONTEXT:
            return exact
    match = _fuzzy(anchor, text)
    if match is None:
        return exact or Relocation(None, "lost", 0.0)
    start, end, score, ctx = match
    intact_side = max((s for _, s in _side_scores(text, start, end, anchor.prefix, anchor.suffix)), default=0.0)
    similar = score >= threshold or (score >= CONTEXT_HELPED_THRESHOLD and intact_side >= INTACT_SIDE)
    if not similar or (len(quote) < SHORT_QUOTE and ctx < SHORT_QUOTE_MIN_CONTEXT):
        return exact or Relocation(None, "lost", round(score, 1))
    # The same words in other surroundings lose to our own passage, slightly edited, in its own place.
    if exact is not None and _blend(100.0, exact_ctx) >= _blend(score, ctx):
        return exact
    return Relocation(anchor_at(text, start, end, context), "fuzzy", round(score, 1))


def _blend(quote_score: float, context: float) -> float:
    return 0.75 * quote_score + 0.25 * context


def _fuzzy(anchor: TextAnchor, text: str) -> tuple[int, int, float, float] | None:
    """Best approximate span for the quote: (start, end, quote similarity, context similarity)."""
    quote = anchor.quote
    if not quote or not text:
        return None
    candidates: list[tuple[int, int]] = []
    # The quote alone, anywhere in the text.
    hit = fuzz.partial_ratio_alignment(quote, text)
    if hit is not None:
        candidates.append((hit.dest_start, hit.dest_end))
    # The quote with its context: finds the right place when the quote alone is short or repeated.
    framed = anchor.prefix + quote + anchor.suffix
    if len(framed) > len(quote):
        hit = fuzz.partial_ratio_alignment(framed, text)
        if hit is not None:
            lo = max(0, hit.dest_start - len(quote) // 2)
            window = text[lo:hit.dest_end + len(quote) // 2]
            inner = fuzz.partial_ratio_alignment(quote, window)
            if inner is not None:
                candidates.append((lo + inner.dest_start, lo + inner.dest_end))
    best = None
    for start, end in candidates:
        start, end = _refine(quote, text, start, end)
        score = fuzz.ratio(quote, text[start:end])
        ctx = context_score(text, start, end, anchor.prefix, anchor.suffix)
        key = (_blend(score, ctx), -abs(start - anchor.start))
        if best is None or key > best[0]:
            best = (key, (start, end, score, ctx))
    return best[1] if best else None


def _refine(quote: str, text: str, start: int, end: int) -> tuple[int, int]:
    """Move the ends of a same-length window so it covers an edited quote that grew or shrank."""
    slack = min(24, max(4, len(quote) // 5))
    best = (fuzz.ratio(quote, text[start:end]), 0, start, end)
    for s in range(max(0, start - slack), min(len(text), start + slack) + 1):
        for e in range(max(s + 1, end - slack), min(len(text), end + slack) + 1):
            key = (fuzz.ratio(quote, text[s:e]), -(abs(s - start) + abs(e - end)), s, e)
            if key[:2] > best[:2]:
                best = key
    return best[2], best[3]
