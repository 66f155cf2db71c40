"""Drafting a pack: search every section for the topic, keep what is relevant, rank and cap.

Drafting never pads: a passage only gets in when the search found it by its words (not
by vector similarity alone) and it, and its document, mention the topic's specific
terms. A section with too little material says so instead (`PackSection.note`).

The functions take what they use — the search, a document lookup, the topic's
`Relevance` — so they can run against any knowledge base or a test's stand-ins.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..citations import Citation
from ..search import Hit, SearchFilters
from ..topics import Topic
from .model import SECTIONS, PackItem, PackSection, item_id_for, now

if TYPE_CHECKING:
    from ..documents import Document
    from ..storage import Store

DEFAULT_PER_SECTION = 6
PER_DOCUMENT = 3          # passages of one document per section, so a section is not one long file
CANDIDATES_PER_QUERY = 20
# A topic term found in more than this share of all documents says nothing about the topic.
GENERIC_SHARE = 0.5
# A document must mention the topic's specific terms this often, or this densely (per 1000 characters).
DOC_MIN_MENTIONS = 10
DOC_MIN_DENSITY = 4.0
# A passage whose fused score is below this share of the section's best is too far off to list.
RELATIVE_FLOOR = 0.35
_DF_SAMPLE = 2000         # documents sampled to estimate how common a term is

Search = Callable[..., list[Hit]]          # search(query, top_k=…, filters=…)
DocumentLookup = Callable[[str], "Document"]


def core_title(title: str) -> str:
    """The subject of a topic title: the quoted part of 2025年“推进老年助餐服务提质扩面”双月座谈会."""
    quoted = re.findall(r"[“\"「『]([^”\"」』]{2,})[”\"」』]", title)
    if quoted:
        return max(quoted, key=len)
    return re.sub(r"^\d{4}年度?|(?:双月座谈会?|界别协商|网络协商|专题协商|面对面协商|全体会议)$", "", title).strip() or title


def topic_queries(topic: Topic) -> list[str]:
    """The searches a draft runs: the subject, subject plus keywords, each keyword, and the
    description's sentences."""
    subject = core_title(topic.title)
    queries = [subject]
    if topic.keywords:
        queries.append(subject + " " + " ".join(topic.keywords[:6]))
        queries += topic.keywords
    sentences = [s.strip() for s in re.split(r"[。；;！？\n]", topic.description) if len(s.strip()) >= 8]
    queries += [s[:200] for s in sentences[:4]]
    seen: list[str] = []
    for query in queries:
        if query and query not in seen:
            seen.append(query)
    return seen


class Relevance:
    """Topic terms (keywords and words of the subject) that are specific to the topic. Terms
    common to most of the knowledge base (协商, 推进, 服务 …) are ignored."""

    def __init__(self, topic: Topic, tokenize: Callable[[str], list[str]], store: "Store"):
        words = [t for t in tokenize(core_title(topic.title)) if len(t) >= 2 and not t.isdigit()]
        terms: list[str] = []
        for term in [*topic.keywords, *words]:
            if term not in terms:
                terms.append(term)
        self.terms = terms
        total = store.counts()["documents"]
        if total >= 10:  # shares are meaningless in a handful of documents
            sampled, counts = store.term_document_counts(terms, math.ceil(total / _DF_SAMPLE))
            self.terms = [t for t in terms if counts[t] / max(sampled, 1) <= GENERIC_SHARE]

    def mentions(self, text: str) -> int:
        """How many times `text` mentions a specific term (nested terms count for each)."""
        return sum(text.count(t) for t in self.terms)

    def on_topic(self, text: str) -> bool:
        """A document is on topic when it mentions the topic's terms often, or densely.
        (Other topics' documents in the sample corpus stay under 3 per 1000 characters,
        on-topic ones are above 5.)"""
        if not self.terms:
            return True  # nothing specific to judge by; the search's own floor has to do
        hits = self.mentions(text)
        return hits >= DOC_MIN_MENTIONS or hits * 1000 / max(len(text), 1) >= DOC_MIN_DENSITY

    def in_passage(self, text: str) -> bool:
        return not self.terms or self.mentions(text) > 0


@dataclass
class _Candidate:
    """A passage found by one or more of the draft's searches, with its fused score."""

    hit: Hit
    score: float = 0.0
    query: str = ""
    start: int = 0
    end: int = 0
    label: str | None = None
    page: int | None = None


_HEADER_LINE = re.compile(r"^(?:#+\s*)?(?:[\u4e00-\u9fa5]{2,6}[：:]\s*\S.{0,150}|【[^】]{1,10}】.*)$")
_PARAGRAPHS_LABEL = re.compile(r"^第1(?:–(\d+))?段$")


def passage_span(doc, start: int, end: int, label: str | None, page: int | None):
    """The span to quote for a chunk: the opening chunk of a document loses its title and header
    lines (发文机关：…, 讲话人：…, 【示例材料】…), which the citation already gives. Returns
    (start, end, label, page), or None when nothing but header is left."""
    first = len(doc.text) - len(doc.text.lstrip())
    match = _PARAGRAPHS_LABEL.match(label or "")
    if start > first or not match:
        return start, end, label, page
    pos, skipped = start, 0
    title = re.sub(r"\s+", "", doc.title)
    while pos < end:
        line_end = doc.text.find("\n", pos, end)
        line_end = end if line_end == -1 else line_end
        line = doc.text[pos:line_end].strip()
        if line:
            bare = re.sub(r"\s+", "", line.lstrip("#"))
            if not (_HEADER_LINE.match(line) or (bare and bare in title)):
                break
            skipped += 1
        pos = line_end + 1
    if pos >= end or len(doc.text[pos:end].strip()) < 20:
        return None
    if skipped:
        last = int(match.group(1) or 1)
        label = f"第{skipped + 1}段" if skipped + 1 >= last else f"第{skipped + 1}–{last}段"
        page = next((number for number, s, e in doc.pages if s <= pos < e + 1), page)
    return pos, end, label, page


def _quote_hash(text: str) -> str:
    return hashlib.sha1(re.sub(r"\s+", "", text).encode("utf-8")).hexdigest()


def _gather(search: Search, key: str, queries: list[str], linked: set[str]) -> dict[int, _Candidate]:
    """Run every query against one section's documents and fuse the rankings (reciprocal rank)."""
    searches = [(q, SearchFilters(doc_types=[key])) for q in queries]
    if key == "minutes" and linked:  # earlier consultations linked to the topic are searched directly
        searches += [(q, SearchFilters(doc_ids=sorted(linked))) for q in queries[:2]]
    candidates: dict[int, _Candidate] = {}
    for query, filters in searches:
        for rank, hit in enumerate(search(query, top_k=CANDIDATES_PER_QUERY, filters=filters), start=1):
            cand = candidates.setdefault(hit.chunk_id, _Candidate(hit, query=query))
            cand.score += 1.0 / (60 + rank)
            cand.hit.weak = cand.hit.weak and hit.weak
    return candidates


def _round_robin(kept: list[_Candidate], per_section: int) -> list[_Candidate]:
    """Best passage of each document first, then second-best, … so one long document does not
    fill a section; at most `PER_DOCUMENT` per document."""
    by_doc: dict[str, list[_Candidate]] = {}
    for cand in kept:  # kept is sorted best first, so documents come in order of their best passage
        by_doc.setdefault(cand.hit.doc_id, []).append(cand)
    chosen: list[_Candidate] = []
    for round_ in range(PER_DOCUMENT):
        for passages in by_doc.values():
            if round_ < len(passages) and len(chosen) < per_section:
                chosen.append(passages[round_])
    best = {doc_id: n for n, doc_id in enumerate(by_doc)}
    chosen.sort(key=lambda c: (best[c.hit.doc_id], c.start))  # reading order within a document
    return chosen


def draft_sections(topic: Topic, *, search: Search, document: DocumentLookup, relevance: Relevance, user: str,
                   per_section: int = DEFAULT_PER_SECTION,
                   exclude: set[str] = frozenset()) -> tuple[list[PackSection], list[str]]:
    """Search every section for the topic; keep relevant, non-duplicate passages; rank and cap.
    Returns the sections and the queries run; items in `exclude` (dropped by an editor) stay out."""
    queries = topic_queries(topic)
    linked = {link.doc_id for link in topic.links if link.doc_id}
    docs: dict = {}
    doc_on_topic: dict[str, bool] = {}
    seen_hashes: set[str] = set()
    sections = []

    def doc_of(doc_id: str):
        if doc_id not in docs:
            docs[doc_id] = document(doc_id)
        return docs[doc_id]

    for key, _label in SECTIONS:
        candidates = _gather(search, key, queries, linked)
        found = {"candidates": len(candidates), "weak": 0, "off_topic": 0, "duplicates": 0}
        kept: list[_Candidate] = []
        for cand in sorted(candidates.values(), key=lambda c: (-c.score, c.hit.doc_id, c.hit.start)):
            hit = cand.hit
            if hit.doc_type != key and hit.doc_id not in linked:
                continue
            if hit.weak:  # found by vector similarity alone: no words in common with the topic
                found["weak"] += 1
                continue
            doc = doc_of(hit.doc_id)
            span = passage_span(doc, hit.start, hit.end, hit.label, hit.page)
            if span is None:
                continue
            cand.start, cand.end, cand.label, cand.page = span
            text = doc.text[cand.start:cand.end]
            if hit.doc_id not in linked:
                if hit.doc_id not in doc_on_topic:
                    doc_on_topic[hit.doc_id] = relevance.on_topic(doc.text)
                if not doc_on_topic[hit.doc_id] or not relevance.in_passage(text):
                    found["off_topic"] += 1
                    continue
            if kept and cand.score < RELATIVE_FLOOR * kept[0].score:
                found["off_topic"] += 1
                continue
            if any(c.hit.doc_id == hit.doc_id and c.start < cand.end and cand.start < c.end for c in kept) \
                    or _quote_hash(text) in seen_hashes:
                found["duplicates"] += 1
                continue
            if item_id_for(hit.doc_id, cand.start, cand.end) in exclude:
                continue
            if hit.citation.validity in ("repealed", "amended"):  # superseded texts go after current ones
                cand.score *= 0.5 if hit.citation.validity == "repealed" else 0.8
            kept.append(cand)
            seen_hashes.add(_quote_hash(text))
        kept.sort(key=lambda c: -c.score)
        items = []
        for cand in _round_robin(kept, per_section):
            item = item_from_hit(cand.hit, doc_of(cand.hit.doc_id).text, origin="auto", query=cand.query,
                                 score=cand.score, user=user, start=cand.start, end=cand.end)
            item.label, item.page = cand.label, cand.page
            items.append(item)
        sections.append(PackSection(key, items, found))
    return sections, queries


def item_from_hit(hit: Hit, text: str, *, origin: str, user: str, query: str = "", score: float | None = None,
                  start: int | None = None, end: int | None = None) -> PackItem:
    """A pack item quoting `text[start:end]` (the hit's span by default) with the hit's citation."""
    start = hit.start if start is None else start
    end = hit.end if end is None else end
    c = hit.citation
    return PackItem(item_id=item_id_for(hit.doc_id, start, end), doc_id=hit.doc_id, start=start, end=end,
                    quote=text[start:end], title=c.title, doc_type=c.doc_type, issuer=c.issuer,
                    doc_number=c.doc_number, date=c.date, page=c.page, label=c.label, source=c.source,
                    validity=c.validity, chunk_id=hit.chunk_id,
                    score=round(hit.score if score is None else score, 6), origin=origin, query=query,
                    added_by=user, added_at=now())


def hit_for_span(doc: "Document", start: int, end: int) -> Hit:
    """A hit for an arbitrary span of a document, with the page and label of the chunk it starts in."""
    chunk = next((c for c in doc.chunks if c.start <= start < max(c.end, c.start + 1)), None)
    if chunk is None:
        chunk = min(doc.chunks, key=lambda c: abs(c.start - start), default=None)
    page, label = (chunk.page, chunk.label) if chunk else (None, None)
    citation = Citation(doc_id=doc.doc_id, title=doc.title, doc_type=doc.doc_type, issuer=doc.issuer,
                        doc_number=doc.doc_number, date=doc.date, page=page, label=label, start=start,
                        end=end, quote=doc.text[start:end], source=doc.source, validity=doc.validity)
    return Hit(chunk_id=chunk.chunk_id if chunk else -1, doc_id=doc.doc_id, title=doc.title,
               doc_type=doc.doc_type, score=0.0, text=doc.text[start:end], page=page, label=label or "",
               start=start, end=end, citation=citation)
