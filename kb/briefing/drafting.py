"""Drafting a pack: search every section for the topic, keep what a dossier needs, share the places.

Drafting never pads: a passage only gets in when it is not boilerplate, its document mentions
the topic's specific terms, and the search found it by its words (not by vector similarity
alone) — or it is a provision of a core regulation that the search reached, the regulation
itself having been found by its words. A section with too little material says so instead
(`PackSection.note`).

What a director insists on decides the steps (docs/dossier.md measures them):

* Boilerplate stays out by the structure of Chinese official documents, not by lists of
  sentences: `passage_span` cuts a document's front matter (header lines, the addressee, the
  forwarding line, the issuer and date, a case's provenance note, a speech's salutation and
  opening paragraph) and a closing at the end of any chunk (同志们，…希望大家…, 谢谢大家, a
  sign-off); `passage_role` names purpose clauses, scope clauses, 附则, generic 法律责任,
  backgrounds and introductions, attendee lists and training-quota filler, which are dropped.
* The topic's core regulations (`core_documents`: policies in force whose title names the
  topic, at the most local level) give all their provisions the searches reached — a
  director wants every operative article of the city's own 办法, and no score tells the
  per-meal rates from the rest. Other documents share `per_section` places round robin.
* A passage keeps its best score in any one search (each search scales its scores 0..1), so
  an article found by the one query that uses its words is not outweighed by an overview
  passage that every query finds a little.

The functions take what they use — the search, a document lookup, the topic's
`Relevance` — so they can run against any knowledge base or a test's stand-ins.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from indexer.keywords import is_word

from ..citations import Citation
from ..search import Hit, SearchFilters
from ..topics import Topic
from .model import SECTIONS, PackItem, PackSection, item_id_for, now

if TYPE_CHECKING:
    from ..documents import Document
    from ..storage import Store

DEFAULT_PER_SECTION = 6   # places for passages of documents that are not core regulations
PER_DOCUMENT = 3          # beside core regulations, another document gets at most this many places
CORE_PER_DOCUMENT = 30    # a core regulation's operative provisions (a safety bound, not a quota)
CANDIDATES_PER_QUERY = 30
# A topic term found in more than this share of all documents says nothing about the topic.
GENERIC_SHARE = 0.5
# A document must mention the topic's specific terms this often, or this densely (per 1000 characters).
DOC_MIN_MENTIONS = 10
DOC_MIN_DENSITY = 4.0
# A passage whose best search score is below this share of the section's best is too far off to list.
RELATIVE_FLOOR = 0.35
_DF_SAMPLE = 2000         # documents sampled to estimate how common a term is
# Levels of government, most general first: a topic's core regulations are the most local ones.
_LEVEL_ORDER = ("national", "provincial", "city", "county")

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
    """Topic terms: the topic's keywords, and words of its subject that are specific to it.

    Keywords are the office's own words for the topic and always count. Words of the subject
    common to most of the knowledge base (推进, 服务 …) are ignored — but keywords are not: in a
    knowledge base that holds little besides the topic's own material, the topic's words are in
    every document, which makes them no less the topic's."""

    def __init__(self, topic: Topic, tokenize: Callable[[str], list[str]], store: "Store"):
        keywords = [k for k in dict.fromkeys(topic.keywords) if k]
        words = [t for t in dict.fromkeys(tokenize(core_title(topic.title)))
                 if len(t) >= 2 and not t.isdigit() and is_word(t) and t not in keywords]
        total = store.counts()["documents"]
        if words and total >= 10:  # shares are meaningless in a handful of documents
            sampled, counts = store.term_document_counts(words, math.ceil(total / _DF_SAMPLE))
            words = [t for t in words if counts[t] / max(sampled, 1) <= GENERIC_SHARE]
        self.terms = keywords + words

    def mentions(self, text: str) -> int:
        """How many times `text` mentions a specific term (nested terms count for each)."""
        return sum(text.count(t) for t in self.terms)

    def density(self, text: str) -> float:
        """Mentions per 1000 characters."""
        return self.mentions(text) * 1000 / max(len(text), 1)

    def on_topic(self, text: str) -> bool:
        """A document is on topic when it mentions the topic's terms often, or densely.
        (Other topics' documents in the sample corpus stay under 3 per 1000 characters,
        on-topic ones are above 5.)"""
        if not self.terms:
            return True  # nothing specific to judge by; the search's own floor has to do
        return self.mentions(text) >= DOC_MIN_MENTIONS or self.density(text) >= DOC_MIN_DENSITY

    def about(self, text: str) -> bool:
        """A document dense in the topic's terms is about the topic as a whole: its passages need
        not repeat the topic's name (a regulation's articles say 补助资金, 授权, 专用标志)."""
        return not self.terms or self.density(text) >= DOC_MIN_DENSITY

    def in_passage(self, text: str) -> bool:
        return not self.terms or self.mentions(text) > 0

    def names_topic(self, title: str) -> bool:
        return any(t in title for t in self.terms)


# -- the structure of Chinese official documents ------------------------------------------------
_ARTICLE = re.compile(r"^第[一二三四五六七八九十百零〇\d]+条")
_HEADER_LINE = re.compile(r"^(?:#+\s*)?(?:[\u4e00-\u9fa5]{2,6}[：:]\s*\S.{0,150}|【[^】]{1,10}】.*)$")
_PARAGRAPHS_LABEL = re.compile(r"^第1(?:–(\d+))?段$")
_PARAGRAPHS_LABEL_ANY = re.compile(r"^第\d+(?:–\d+)?段$")
_CIRCULAR_TITLE = re.compile(r"^.{0,60}关于印发.{2,80}的通知$")
# 各县（区）人民政府，市政府各部门： — who a circular is sent to
_ADDRESSEE = re.compile(r"^各[^。；！？]{1,100}[：:]$")
# 现印发给你们 / 审议通过，现予印发 / 常务委员会第七次会议通过 — how it was adopted and sent on
_FORWARDING = re.compile(r"印发给你们|现予(?:印发|公布|发布)|会议.{0,20}(?:审议)?通过|批准.{0,10}(?:印发|公布)")
_DATE_LINE = re.compile(r"^\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日$")
_ISSUER_LINE = re.compile(r"^(?![（(]?[一二三四五六七八九十\d]+[、）)．.])"
                          r"[\u4e00-\u9fa5（）()\s、]{2,60}(?:人民政府|办公室|办公厅|委员会|政府|厅|局|委|院|会)$")
_PRINTING = re.compile(r"^[（(]此件[^）)]{0,12}[）)]$")
# （外地案例，供…调研参考。整理：…） — where a case comes from and what it is for
_PROVENANCE = re.compile(r"^[（(][^（）()]{0,20}供.{0,150}参考.{0,80}[）)]$")
_SALUTATION = re.compile(r"^(?:[\u4e00-\u9fa5]{2,6}[，、,])*(?:同志们|各位[\u4e00-\u9fa5]{1,6}|女士们、先生们|朋友们)[：:]$")
_CLOSING = re.compile(r"^(?:(?:同志们|各位[\u4e00-\u9fa5]{1,6}|朋友们)[，,！!]|谢谢(?:大家|各位)[！!。.]?$)")
_SIGN_OFF = re.compile(r"^(?:论证专家|执笔|整理|记录)[：:]")
_FINAL_CLAUSE = re.compile(r"负责解释|(?:自|从).{0,25}(?:之日|日)起(?:施行|试行|执行)|有效期(?:至|为|\d)|"
                           r"制定(?:具体)?实施(?:细则|办法)|另行制定|参照本.{1,4}执行")
_LIABILITY = re.compile(r"玩忽职守|滥用职权|徇私舞弊|已有(?:法律责任)?规定的，从其规定")
_PURPOSE = re.compile(r"^为(?:了)?[^。]{4,240}?(?:制定|特制定)本[^。，]{0,6}?(?:办法|条例|规定|细则|规则|措施|方案|意见|计划)|"
                      r"^为(?:了)?[^。]{4,240}?(?:现|特)提出(?:如下|以下)意见")
# 总则 articles that only say where the text applies and what its words mean
_GENERAL = re.compile(r"适用本(?:条例|办法|规定|规则|措施|细则)|^本[^。]{1,12}(?:适用于|所称)")
# who attended a meeting (参加人员：… lines, or a section of its own in 协商纪要)
_ATTENDEES = re.compile(r"^(?:参加|出席|列席|参会)(?:人员|会议|单位)?[：:]")
_ATTENDEES_LABEL = re.compile(r"参加人员|出席人员|参会人员|列席人员|出席名单")
# context rather than content: a case's 背景, a meeting's 概况, an opinion's 受…委托…提出以下意见
_BACKGROUND_LABEL = re.compile(r"^[一二三四五六七八九十\d]+[、.．]\s*(?:背景|基本情况|会议概况|概况|总体情况)")
_INTRODUCTION = re.compile(r"(?:提出|形成)(?:如下|以下)(?:论证)?意见[。：:]?|(?:论证|调研|考察)[^。]{0,30}(?:如下|以下)[。：:]?$")
_TRAINING = re.compile(r"培训")
_TRAINING_FILLER = re.compile(r"培训补贴目录|培训[^。；]{0,30}\d+(?:\.\d+)?万?人次")


def _body(text: str) -> str:
    """A passage without its article number or bracketed heading (第五条　/ （三）强化人才支撑。)."""
    text = text.strip()
    text = re.sub(r"^第[一二三四五六七八九十百零〇\d]+条\s*", "", text)
    return re.sub(r"^[（(][一二三四五六七八九十\d]+[）)][^。：:\n]{0,20}[。：:\n]\s*", "", text)


def passage_role(text: str, label: str | None = None) -> str:
    """What a passage does in its document: `provision` (what a dossier is for) or the kind of
    boilerplate it is — `purpose` (目的条款 为…制定本办法), `general` (a 总则 article that only
    gives the scope and the definitions), `background` (a case's 背景, a meeting's 概况, an opinion's
    introduction), `attendees` (a minutes' 参加人员 section), `final_clause`
    (附则: 负责解释, 自…起施行, 实施细则), `liability` (generic 法律责任: 玩忽职守…依法给予处分,
    从其规定), `training` (a clause on nothing but training quotas and 培训补贴目录). Judged from the
    chunk's structural label and the text, as the structure of official documents has them."""
    label = label or ""
    body = _body(text)
    sentences = [s for s in re.split(r"[。；;]", body) if s.strip()]
    short = len(body) <= 120
    if "附则" in label:
        return "final_clause"
    if _ATTENDEES_LABEL.search(label):
        return "attendees"
    if _PURPOSE.search(body):
        return "purpose"
    if _BACKGROUND_LABEL.match(label) or (_PARAGRAPHS_LABEL_ANY.match(label) and _INTRODUCTION.search(body)):
        return "background"
    if "总则" in label and _ARTICLE.match(text.strip()) and _GENERAL.search(body):
        return "general"
    if short and _FINAL_CLAUSE.search(body):
        return "final_clause"
    if _LIABILITY.search(body):
        return "liability"
    if sentences and _TRAINING_FILLER.search(body) and all(_TRAINING.search(s) or "人才" in s for s in sentences):
        return "training"
    return "provision"


def _lines(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """(start, end, stripped text) of the non-empty lines of text[start:end]."""
    out, pos = [], start
    while pos < end:
        line_end = text.find("\n", pos, end)
        line_end = end if line_end == -1 else line_end
        line = text[pos:line_end].strip()
        if line:
            out.append((pos, line_end, line))
        pos = line_end + 1
    return out


def _front_matter(line: str, doc) -> bool:
    """A line of a document's opening that the citation gives or that says nothing: title,
    header (发文机关：…), notice, addressee, forwarding, issuer and date, printing note, provenance."""
    bare = re.sub(r"\s+", "", line.lstrip("#"))
    title = re.sub(r"\s+", "", doc.title)
    number = re.sub(r"\s+", "", getattr(doc, "doc_number", "") or "")
    return bool(_HEADER_LINE.match(line) or (bare and bare in title) or _CIRCULAR_TITLE.match(bare)
                or (number and bare == number)
                or _ADDRESSEE.match(bare) or (len(bare) <= 150 and _FORWARDING.search(bare))
                or _tail_matter(line, doc))


def _tail_matter(line: str, doc) -> bool:
    """A line that closes a text: the issuer and date, a sign-off, a printing note, a provenance note."""
    bare = re.sub(r"\s+", "", line)
    issuer = re.sub(r"\s+", "", getattr(doc, "issuer", "") or "")
    return bool(_DATE_LINE.match(bare) or _PRINTING.match(bare) or _SIGN_OFF.match(bare) or _ATTENDEES.match(bare)
                or _PROVENANCE.match(bare) or (issuer and bare == issuer) or _ISSUER_LINE.match(bare))


def _closing(line: str, doc) -> bool:
    """A closing line: 同志们，…希望大家… / 谢谢大家, or what `_tail_matter` names, or a short final clause."""
    bare = re.sub(r"\s+", "", line)
    return bool(_CLOSING.match(bare) or _tail_matter(line, doc)
                or (len(bare) <= 80 and not _ARTICLE.match(bare) and _FINAL_CLAUSE.search(bare)))


def passage_span(doc, start: int, end: int, label: str | None, page: int | None):
    """The span to quote for a chunk, without what a dossier does not need: the opening chunk of a
    document loses its title and front matter (发文机关：…, 【示例材料】, the addressee, forwarding
    and provenance lines, a speech's salutation and opening paragraph), which the citation gives or
    which say nothing; any chunk loses a closing at its end (同志们，…希望大家…, 谢谢大家, a sign-off,
    the issuer and date). Returns (start, end, label, page), or None when nothing is left."""
    first = len(doc.text) - len(doc.text.lstrip())
    opening = start <= first and _PARAGRAPHS_LABEL.match(label or "")
    lines = _lines(doc.text, start, end)
    head = 0
    if opening:
        while head < len(lines):
            line = lines[head][2]
            if _SALUTATION.match(re.sub(r"\s+", "", line)):
                head += 2  # the salutation and the opening paragraph (今天我们召开… 下面，我讲三点意见)
            elif _front_matter(line, doc):
                head += 1
            else:
                break
    tail = len(lines)
    while tail > head and _closing(lines[tail - 1][2], doc):
        tail -= 1
    kept = lines[head:tail]
    if not kept or len("".join(line for _, _, line in kept)) < 20:
        return None
    new_start, new_end = kept[0][0], kept[-1][1]
    if opening and (head or tail < len(lines)):
        before = len(_lines(doc.text, 0, new_start))
        a, b = before + 1, before + len(kept)
        label = f"第{a}段" if a == b else f"第{a}–{b}段"
        page = next((number for number, s, e in doc.pages if s <= new_start < e + 1), page)
    return new_start, new_end, label, page


def _quote_hash(text: str) -> str:
    return hashlib.sha1(re.sub(r"\s+", "", text).encode("utf-8")).hexdigest()


# -- choosing a section's passages ----------------------------------------------------------------
@dataclass
class _Candidate:
    """A passage found by one or more of the draft's searches.

    `best` is its best score in any one search (each search scales its scores 0..1); `fused` the
    reciprocal-rank sum over the searches, which only breaks ties: a sum rewards overview
    passages that repeat the topic's words in every search over the operative article that one
    search finds (第二十二条, the per-meal rates, is found by 「助餐补贴」 alone)."""

    hit: Hit
    score: float = 0.0
    query: str = ""
    start: int = 0
    end: int = 0
    label: str | None = None
    page: int | None = None
    best: float = 0.0
    fused: float = 0.0


def _gather(search: Search, key: str, queries: list[str], linked: set[str]) -> dict[int, _Candidate]:
    """Run every query against one section's documents; a passage keeps its best score."""
    searches = [(q, SearchFilters(doc_types=[key])) for q in queries]
    if key == "minutes" and linked:  # earlier consultations linked to the topic are searched directly
        searches += [(q, SearchFilters(doc_ids=sorted(linked))) for q in queries[:2]]
    candidates: dict[int, _Candidate] = {}
    for query, filters in searches:
        for rank, hit in enumerate(search(query, top_k=CANDIDATES_PER_QUERY, filters=filters), start=1):
            cand = candidates.setdefault(hit.chunk_id, _Candidate(hit, query=query))
            cand.fused += 1.0 / (60 + rank)
            if hit.score > cand.best:
                cand.best, cand.query = hit.score, query
            cand.hit.weak = cand.hit.weak and hit.weak
    for cand in candidates.values():
        cand.score = cand.best
    return candidates


def core_documents(docs: list, relevance: Relevance) -> set[str]:
    """The topic's core regulations among a section's documents: policies in force whose title
    names the topic, at the most local level of government among them (the city's own 办法 and
    实施方案, not the province's guidance they implement). Their operative provisions all go in."""
    named = [d for d in docs if d.doc_type == "policy" and (d.validity or "in_force") == "in_force"
             and relevance.names_topic(d.title)]
    levels = [_LEVEL_ORDER.index(d.level) for d in named if d.level in _LEVEL_ORDER]
    local = max(levels, default=None)
    return {d.doc_id for d in named if d.level not in _LEVEL_ORDER or _LEVEL_ORDER.index(d.level) == local}


def choose(kept: list[_Candidate], per_section: int, core: set[str] = frozenset()) -> list[_Candidate]:
    """The section's passages from `kept` (best first). Core regulations give all their kept
    provisions (up to `CORE_PER_DOCUMENT`). The other documents share `per_section` places round
    robin — every document's best passage first, then the second best … — so one document cannot
    crowd out another, while a document alone (or with little beside it) fills the places; beside
    core regulations each gets at most `PER_DOCUMENT`."""
    by_doc: dict[str, list[_Candidate]] = {}
    for cand in kept:  # documents come in order of their best passage
        by_doc.setdefault(cand.hit.doc_id, []).append(cand)
    chosen = [c for doc_id, passages in by_doc.items() if doc_id in core for c in passages[:CORE_PER_DOCUMENT]]
    others = [passages for doc_id, passages in by_doc.items() if doc_id not in core]
    cap = PER_DOCUMENT if core & set(by_doc) else per_section
    taken = 0
    for round_ in range(cap):
        for passages in others:
            if round_ < len(passages) and taken < per_section:
                chosen.append(passages[round_])
                taken += 1
    ranked = [d for d in by_doc if d in core] + [d for d in by_doc if d not in core]
    order = {doc_id: n for n, doc_id in enumerate(ranked)}
    chosen.sort(key=lambda c: (order[c.hit.doc_id], c.start))  # core first; reading order within a document
    return chosen


def screen_section(key: str, queries: list[str], *, search: Search, document: Callable[[str], "Document"],
                   relevance: Relevance, linked: set[str] = frozenset(), per_section: int = DEFAULT_PER_SECTION,
                   exclude: set[str] = frozenset(), seen: set[str] | None = None):
    """Search one section and take each candidate through the drafting's steps. Returns the
    chosen candidates, what was found (`PackSection.found`) and, per chunk id, the step it stopped
    at (`fates`: chosen, or why not — benchmarks/dossier.py explains misses with it).

    A passage found by vector similarity alone (weak), or not naming the topic, or far below the
    section's best, is left out — unless it is a provision of a core regulation: the regulation
    was found by its words and its subject is the topic, so all its provisions the searches
    reached belong in the dossier."""
    seen = set() if seen is None else seen
    candidates = _gather(search, key, queries, linked)
    found = {"candidates": len(candidates), "weak": 0, "off_topic": 0, "boilerplate": 0, "duplicates": 0}
    fates: dict[int, dict] = {}
    on_topic: dict[str, tuple[bool, bool]] = {}
    eligible: list[_Candidate] = []
    for cand in sorted(candidates.values(), key=lambda c: (-c.best, -c.fused, c.hit.doc_id, c.hit.start)):
        hit = cand.hit
        fate = fates[hit.chunk_id] = {"score": round(cand.best, 4), "query": cand.query}
        if hit.doc_type != key and hit.doc_id not in linked:
            fate["stage"] = "other_section"
            continue
        doc = document(hit.doc_id)
        span = passage_span(doc, hit.start, hit.end, hit.label, hit.page)
        if span is None:
            fate["stage"] = "header_only"
            continue
        cand.start, cand.end, cand.label, cand.page = span
        role = passage_role(doc.text[cand.start:cand.end], cand.label)
        if role != "provision":
            found["boilerplate"] += 1
            fate.update(stage="boilerplate", role=role)
            continue
        if hit.doc_id not in linked:
            if hit.doc_id not in on_topic:
                on_topic[hit.doc_id] = (relevance.on_topic(doc.text), relevance.about(doc.text))
            if not on_topic[hit.doc_id][0]:
                found["off_topic"] += 1
                fate["stage"] = "off_topic_document"
                continue
        eligible.append(cand)
    core = core_documents([document(d) for d in dict.fromkeys(c.hit.doc_id for c in eligible if not c.hit.weak)],
                          relevance)
    kept: list[_Candidate] = []
    top = 0.0
    for cand in eligible:
        hit, fate = cand.hit, fates[cand.hit.chunk_id]
        text = document(hit.doc_id).text[cand.start:cand.end]
        if hit.doc_id not in core:
            if hit.weak:  # found by vector similarity alone: no words in common with the topic
                found["weak"] += 1
                fate["stage"] = "weak"
                continue
            if hit.doc_id not in linked and not on_topic[hit.doc_id][1] and not relevance.in_passage(text):
                found["off_topic"] += 1
                fate["stage"] = "off_topic_passage"
                continue
            top = top or cand.best
            if cand.best < RELATIVE_FLOOR * top:
                found["off_topic"] += 1
                fate.update(stage="below_floor", floor=round(RELATIVE_FLOOR * top, 4))
                continue
        if any(c.hit.doc_id == hit.doc_id and c.start < cand.end and cand.start < c.end for c in kept) \
                or _quote_hash(text) in seen:
            found["duplicates"] += 1
            fate["stage"] = "duplicate"
            continue
        if item_id_for(hit.doc_id, cand.start, cand.end) in exclude:
            fate["stage"] = "dropped_by_editor"
            continue
        if hit.citation.validity in ("repealed", "amended"):  # superseded texts go after current ones
            cand.score *= 0.5 if hit.citation.validity == "repealed" else 0.8
        kept.append(cand)
        seen.add(_quote_hash(text))
    kept.sort(key=lambda c: (-c.score, -c.fused))
    chosen = choose(kept, per_section, core)
    chosen_ids = {c.hit.chunk_id for c in chosen}
    places: dict[str, int] = {}
    for cand in kept:
        fate = fates[cand.hit.chunk_id]
        fate["span"] = [cand.start, cand.end]
        fate["core"] = cand.hit.doc_id in core
        n = places.get(cand.hit.doc_id, 0)
        places[cand.hit.doc_id] = n + 1
        if cand.hit.chunk_id in chosen_ids:
            fate["stage"] = "chosen"
        elif cand.hit.doc_id in core or (core and n >= PER_DOCUMENT):
            fate["stage"] = "per_document_cap"
        else:
            fate["stage"] = "per_section_cap"
    return chosen, found, fates


def draft_sections(topic: Topic, *, search: Search, document: DocumentLookup, relevance: Relevance, user: str,
                   per_section: int = DEFAULT_PER_SECTION,
                   exclude: set[str] = frozenset()) -> tuple[list[PackSection], list[str]]:
    """Search every section for the topic; keep relevant, non-duplicate passages that are not
    boilerplate; give the core regulations all their provisions and share the other places.
    Returns the sections and the queries run; items in `exclude` (dropped by an editor) stay out."""
    queries = topic_queries(topic)
    # earlier consultations' documents; members' 调研报告 are placed by staff, not in 往期协商
    linked = {link.doc_id for link in topic.links if link.doc_id and link.kind != "research"}
    docs: dict = {}
    seen: set[str] = set()
    sections = []

    def doc_of(doc_id: str):
        if doc_id not in docs:
            docs[doc_id] = document(doc_id)
        return docs[doc_id]

    for key, _label in SECTIONS:
        chosen, found, _fates = screen_section(key, queries, search=search, document=doc_of, relevance=relevance,
                                               linked=linked, per_section=per_section, exclude=exclude, seen=seen)
        items = []
        for cand in chosen:
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
