"""The dossier benchmark: how much of what a director insists on does a drafted 调研资料汇编 hold?

    python benchmarks/dossier.py --home KB [--gold tests/data/dossier_gold.yaml] [--per-section 6]
                                 [--topics id,id] [--no-trace] [--json]

`KB` is a knowledge base indexed with corpus/ and with corpus/topics.yaml imported. It is copied
to a temporary folder first and the copy is drafted (`PackService.draft`, the product's path), so
the folder given is never changed. The yardstick is tests/data/dossier_gold.yaml (see its header
and docs/dossier.md): per topic, the passages a director insists on (`must`, each with the section
it belongs in) and the boilerplate that must stay out.

Per topic the JSON reports
* `recall`: share of must-haves found in their own section — an item of that section, quoting
  that file, contains the must-have's quote (whitespace ignored); `recall_any_section` ignores
  the section;
* `boilerplate_included` (and which): boilerplate passages that some item contains;
  `filler_items`: items with under 20 characters left once boilerplate lines are taken out
  (an addressee line, a case's provenance note, a bare heading);
* `items` and `items_per_section`; `on_target_items`: items holding at least one must-have;
  `by_section`: must-haves, found, items and (traced) `chunks_needed`, the places a pack needs
  to hold all of the section's must-haves as the index chunks them;
* `baseline_search_recall`: the same number of passages per section taken straight from one
  search for the topic's subject and keywords, measured in the same run — a draft should beat it;
* `missed`: each must-have not in its section (and where else it is); unless --no-trace, each
  with the stage of the drafting that lost it
  (`not_retrieved` … `per_section_cap`, see `STAGES`), traced by running the drafting's own
  screening (`kb.briefing.drafting.screen_section`, which records where every candidate stopped)
  again on the same knowledge base (`trace_matches_draft` says the trace chose what the draft
  chose), and `recall_if_uncapped`: what the draft would hold without its places
  (per_section, PER_DOCUMENT, CORE_PER_DOCUMENT).
`totals` sums the topics (micro recall).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from kb.briefing.model import SECTION_KEYS  # noqa: E402

DEFAULT_GOLD = ROOT / "tests" / "data" / "dossier_gold.yaml"
BOILERPLATE_KINDS = ("header", "notice", "addressee", "forwarding", "signature", "printing", "provenance",
                     "salutation", "opening", "closing", "attendees", "training", "final_clause", "liability")
FILLER_CHARS = 20   # an item with less than this left once boilerplate lines are gone says nothing
# Where the drafting loses a must-have, in the order of its steps (kb/briefing/drafting.py).
STAGES = {
    "split_across_chunks": "the quote is not inside one chunk, so no passage can hold it",
    "not_indexed": "its file is not in the knowledge base",
    "not_retrieved": "none of the section's searches returned its chunk among their top CANDIDATES_PER_QUERY",
    "other_section": "found only by the searches of a linked earlier consultation, as another type",
    "header_only": "nothing is left of the chunk once its front matter and closing are cut (passage_span)",
    "boilerplate": "the passage is boilerplate by its role (passage_role: purpose, general, background, attendees, "
                   "final_clause, liability, training)",
    "off_topic_document": "its document does not mention the topic's specific terms often or densely enough",
    "weak": "found by vector similarity only (no words in common with the query), outside a core regulation",
    "off_topic_passage": "the passage mentions none of the topic's terms, in a document not dense in them",
    "below_floor": "its best search score is under RELATIVE_FLOOR × the section's best (not for core regulations)",
    "duplicate": "overlaps a passage already kept, or repeats its text",
    "dropped_by_editor": "an editor dropped it from an earlier version",
    "per_document_cap": "kept, but its document had its places (PER_DOCUMENT beside core regulations, "
                        "CORE_PER_DOCUMENT for a core regulation)",
    "per_section_cap": "kept, but the section's shared places were full (per_section)",
    "chosen": "chosen (yet the pack does not hold it: the trace and the draft disagree)",
}


@dataclass(frozen=True)
class GoldPassage:
    """A passage of the yardstick: a file (relative to corpus/) and a verbatim quote of it."""

    file: str
    quote: str
    section: str | None = None   # must-haves: the pack section it belongs in
    kind: str | None = None      # boilerplate: what sort
    note: str = ""


@dataclass(frozen=True)
class GoldTopic:
    topic_id: str
    folder: str
    must: tuple[GoldPassage, ...]
    boilerplate: tuple[GoldPassage, ...]


def load_gold(path: str | os.PathLike = DEFAULT_GOLD) -> dict[str, GoldTopic]:
    """The yardstick by topic id; raises ValueError naming the first malformed entry."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("topics"), dict):
        raise ValueError(f"{path}: no `topics` mapping")
    out = {}
    for topic_id, raw in data["topics"].items():
        must, boilerplate = [], []
        for n, entry in enumerate(raw.get("must") or []):
            if entry.get("section") not in SECTION_KEYS or not entry.get("file") or not entry.get("quote"):
                raise ValueError(f"{topic_id} must #{n + 1}: needs section ({'/'.join(SECTION_KEYS)}), file, quote")
            must.append(GoldPassage(str(entry["file"]), str(entry["quote"]), section=entry["section"],
                                    note=str(entry.get("note") or "")))
        for n, entry in enumerate(raw.get("boilerplate") or []):
            if entry.get("kind") not in BOILERPLATE_KINDS or not entry.get("file") or not entry.get("quote"):
                raise ValueError(f"{topic_id} boilerplate #{n + 1}: needs kind ({'/'.join(BOILERPLATE_KINDS)}), "
                                 "file, quote")
            boilerplate.append(GoldPassage(str(entry["file"]), str(entry["quote"]), kind=entry["kind"]))
        out[topic_id] = GoldTopic(topic_id, str(raw.get("folder") or ""), tuple(must), tuple(boilerplate))
    return out


def squash(text: str) -> str:
    """Text without whitespace: PDF line breaks and full-width spaces do not decide a match."""
    return re.sub(r"\s+", "", text)


def same_file(source: str | None, file: str) -> bool:
    """Whether an item's source path is the gold file (given relative to corpus/)."""
    if not source:
        return False
    source = source.replace("\\", "/")
    return source == file or source.endswith("/" + file)


def holds(item, passage: GoldPassage) -> bool:
    """Whether a pack item (anything with `.source` and `.quote`) quotes the gold passage."""
    return same_file(item.source, passage.file) and squash(passage.quote) in squash(item.quote)


def _sections_of(pack) -> list[tuple[str, list]]:
    """(key, items) of a BriefingPack, or of a plain {key: items} mapping (tests)."""
    if isinstance(pack, Mapping):
        return [(key, list(pack.get(key, []))) for key in SECTION_KEYS]
    return [(section.key, list(section.items)) for section in pack.sections]


def filler(item, boilerplate: Iterable[GoldPassage]) -> bool:
    """An item that says nothing once the boilerplate lines of its file (and blank space) are taken out."""
    parts = [squash(line) for p in boilerplate if same_file(item.source, p.file) for line in p.quote.split("\n")]
    parts = [p for p in parts if p]
    kept = [squash(line) for line in item.quote.split("\n")]
    kept = [line for line in kept if line and not any(part in line for part in parts)]
    return len("".join(kept)) < FILLER_CHARS


def score_pack(pack, gold: GoldTopic) -> dict:
    """Recall of the must-haves (in their section, and anywhere), boilerplate included, items per section."""
    sections = _sections_of(pack)
    by_key = dict(sections)
    all_items = [item for _, items in sections for item in items]
    by_section = {}
    found = found_any = 0
    missed = []
    for key in SECTION_KEYS:
        wanted = [p for p in gold.must if p.section == key]
        hit = [p for p in wanted if any(holds(item, p) for item in by_key.get(key, []))]
        by_section[key] = {"must": len(wanted), "found": len(hit), "items": len(by_key.get(key, []))}
        found += len(hit)
    for p in gold.must:
        in_section = any(holds(item, p) for item in by_key.get(p.section, []))
        elsewhere = [key for key, items in sections if key != p.section and any(holds(i, p) for i in items)]
        found_any += in_section or bool(elsewhere)
        if not in_section:
            missed.append({"section": p.section, "file": p.file, "quote": p.quote, "note": p.note,
                           "found_in": elsewhere})
    included = [{"kind": p.kind, "file": p.file, "quote": p.quote,
                 "sections": [key for key, items in sections if any(holds(i, p) for i in items)]}
                for p in gold.boilerplate if any(holds(item, p) for item in all_items)]
    n = len(gold.must)
    return {
        "must": n,
        "found": found,
        "recall": round(found / n, 3) if n else None,
        "found_any_section": found_any,
        "recall_any_section": round(found_any / n, 3) if n else None,
        "boilerplate": len(gold.boilerplate),
        "boilerplate_included": len(included),
        "boilerplate_by_kind": dict(Counter(p["kind"] for p in included)),
        "filler_items": sum(filler(item, gold.boilerplate) for item in all_items),
        "items": len(all_items),
        "items_per_section": {key: len(by_key.get(key, [])) for key in SECTION_KEYS},
        "on_target_items": sum(any(holds(item, p) for p in gold.must) for item in all_items),
        "by_section": by_section,
        "missed": missed,
        "included_boilerplate": included,
    }


def totals(per_topic: Mapping[str, dict]) -> dict:
    """Sums over topics; recall is micro-averaged (every must-have weighs the same)."""
    rows = [r for r in per_topic.values() if "must" in r]
    must = sum(r["must"] for r in rows)
    found = sum(r["found"] for r in rows)
    found_any = sum(r["found_any_section"] for r in rows)
    out = {"topics": len(rows), "must": must, "found": found, "recall": round(found / must, 3) if must else None,
           "found_any_section": found_any, "recall_any_section": round(found_any / must, 3) if must else None,
           "boilerplate_included": sum(r["boilerplate_included"] for r in rows),
           "filler_items": sum(r["filler_items"] for r in rows),
           "items": sum(r["items"] for r in rows),
           "items_per_section": {k: sum(r["items_per_section"][k] for r in rows) for k in SECTION_KEYS}}
    for key in ("baseline_search_recall", "recall_if_uncapped"):
        counts = [r[key + "_found"] for r in rows if key + "_found" in r]
        if counts and must:
            out[key] = round(sum(counts) / must, 3)
    reasons = sum((Counter(r.get("miss_reasons", {})) for r in rows), Counter())
    if reasons:
        out["miss_reasons"] = dict(reasons.most_common())
    return out


# -- against a real knowledge base ----------------------------------------------------------------
def _doc_ids_by_file(kb, files: Iterable[str]) -> dict[str, str]:
    docs = kb.documents()
    out = {}
    for file in set(files):
        match = [d.doc_id for d in docs if same_file(d.source, file)]
        if match:
            out[file] = match[0]
    return out


def _chunk_of(doc, quote: str):
    """The chunk holding the whole quote, or None when chunking split it."""
    start = doc.text.find(quote)
    if start < 0:
        return None
    end = start + len(quote)
    return next((c for c in doc.chunks if c.start <= start and end <= c.end), None)


def trace_sections(topic, *, search, document, relevance, per_section: int) -> dict[str, dict[int, dict]]:
    """Where every candidate chunk of every section stopped (a `STAGES` key), by section.

    Runs the drafting's own screening (`kb.briefing.drafting.screen_section`) section by section,
    as `draft_sections` does (sharing the quotes already taken), and keeps what it records for
    each candidate, so the trace cannot drift from the drafting; `trace_matches_draft` in the
    report still checks it chose what the draft chose."""
    from kb.briefing import drafting as d

    queries = d.topic_queries(topic)
    linked = {link.doc_id for link in topic.links if link.doc_id}
    docs: dict = {}

    def doc_of(doc_id: str):
        if doc_id not in docs:
            docs[doc_id] = document(doc_id)
        return docs[doc_id]

    seen: set[str] = set()
    fates = {}
    for key in SECTION_KEYS:
        _chosen, _found, fates[key] = d.screen_section(key, queries, search=search, document=doc_of,
                                                       relevance=relevance, linked=linked, per_section=per_section,
                                                       seen=seen)
    return fates


def _deep_rank(search, topic, key: str, chunk_id: int, depth: int = 100) -> dict:
    """How far down the section's searches the chunk is when they are not cut at CANDIDATES_PER_QUERY."""
    from kb.briefing.drafting import topic_queries
    from kb.search import SearchFilters

    best = None
    for query in topic_queries(topic):
        for rank, hit in enumerate(search(query, top_k=depth, filters=SearchFilters(doc_types=[key])), start=1):
            if hit.chunk_id == chunk_id:
                if best is None or rank < best["rank"]:
                    best = {"rank": rank, "query": query, "weak": hit.weak}
                break
    return best or {"rank": None}


def baseline_search(kb, topic, per_section: int) -> dict[str, list]:
    """The plain-search baseline: per section, the top `per_section` hits of one search for the
    topic's subject and keywords, as items (source + quote)."""
    from types import SimpleNamespace

    from kb.briefing.drafting import core_title
    from kb.search import SearchFilters

    query = " ".join([core_title(topic.title), *topic.keywords[:6]])
    out = {}
    for key in SECTION_KEYS:
        hits = kb.search(query, top_k=per_section, filters=SearchFilters(doc_types=[key]))
        out[key] = [SimpleNamespace(source=h.citation.source, quote=h.text) for h in hits]
    return out


def measure_topic(kb, topic, gold: GoldTopic, per_section: int, trace: bool) -> dict:
    """Draft the topic's pack in `kb` (a throw-away copy) and score it against the yardstick."""
    from kb.briefing.drafting import Relevance

    if kb.packs.exists(topic):  # a redraft keeps hand-made items and leaves dropped ones out
        earlier = kb.packs.get(topic)
        if earlier.dropped or any(item.touched for _, _, item in earlier.items()):
            return {"title": topic.title, "skipped": "the knowledge base holds an edited pack for this topic; "
                                                     "measure on one without edited packs"}
    started = time.perf_counter()
    pack = kb.packs.draft(topic, per_section=per_section)
    result = {"title": topic.title, "draft_s": round(time.perf_counter() - started, 2), **score_pack(pack, gold)}
    result["found_by_draft"] = {s.key: s.found for s in pack.sections}
    baseline = score_pack(baseline_search(kb, topic, per_section), gold)
    result["baseline_search_recall"] = baseline["recall"]
    result["baseline_search_recall_found"] = baseline["found"]
    result["baseline_search_found_by_section"] = {k: v["found"] for k, v in baseline["by_section"].items()}
    if not trace:
        return result

    relevance = Relevance(topic, kb.tokenizer.tokenize, kb.store)
    result["relevance_terms"] = relevance.terms
    doc_ids = _doc_ids_by_file(kb, [p.file for p in gold.must])
    fates = trace_sections(topic, search=kb.search, document=kb.document, relevance=relevance,
                           per_section=per_section)
    drafted = {s.key: {i.chunk_id for i in s.items} for s in pack.sections}
    chosen = {key: {cid for cid, row in fate.items() if row.get("stage") == "chosen"} for key, fate in fates.items()}
    result["trace_matches_draft"] = chosen == drafted
    docs: dict[str, object] = {}
    for key in SECTION_KEYS:  # places a pack needs to hold every must-have of the section, as chunked
        chunks = set()
        for p in gold.must:
            if p.section == key and p.file in doc_ids:
                doc = docs.setdefault(doc_ids[p.file], kb.document(doc_ids[p.file]))
                chunk = _chunk_of(doc, p.quote)
                chunks.add(chunk.chunk_id if chunk else (p.file, p.quote))
        result["by_section"][key]["chunks_needed"] = len(chunks)
    for miss in result["missed"]:
        miss.update(_why_missed(kb, topic, miss, doc_ids, docs, fates))
    uncapped = result["found"] + sum(m["stage"] in ("per_document_cap", "per_section_cap") for m in result["missed"])
    result["recall_if_uncapped"] = round(uncapped / len(gold.must), 3) if gold.must else None
    result["recall_if_uncapped_found"] = uncapped
    result["miss_reasons"] = dict(Counter(m["stage"] for m in result["missed"]).most_common())
    return result


def _why_missed(kb, topic, miss: dict, doc_ids: dict, docs: dict, fates: dict) -> dict:
    doc_id = doc_ids.get(miss["file"])
    if doc_id is None:
        return {"stage": "not_indexed"}
    if doc_id not in docs:
        docs[doc_id] = kb.document(doc_id)
    doc = docs[doc_id]
    chunk = _chunk_of(doc, miss["quote"])
    if chunk is None:
        return {"stage": "split_across_chunks"}
    out = {"chunk": chunk.label}
    row = fates[miss["section"]].get(chunk.chunk_id)
    if row is None:
        out["stage"] = "not_retrieved"
        out["deep_rank"] = _deep_rank(kb.search, topic, miss["section"], chunk.chunk_id)
        return out
    out.update({k: v for k, v in row.items() if k != "span"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", required=True, help="knowledge base indexed with corpus/ and topics imported")
    parser.add_argument("--gold", default=str(DEFAULT_GOLD), help="the yardstick (default: %(default)s)")
    parser.add_argument("--per-section", type=int, default=None, help="items per section (default: the draft's)")
    parser.add_argument("--topics", default="", help="comma-separated topic ids (default: all in the yardstick)")
    parser.add_argument("--model", default=None, help="embedding model (default: the knowledge base's settings)")
    parser.add_argument("--no-trace", action="store_true", help="leave out why each must-have was missed")
    parser.add_argument("--json", action="store_true", help="print the JSON object only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from embed_speed import _machine, _versions

    from kb.briefing import drafting
    from kb.errors import KBError
    from kb.knowledge_base import KnowledgeBase

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    home = Path(args.home)
    if not home.is_dir():
        print(f"错误：没有知识库文件夹 {home}", file=sys.stderr)
        return 2
    gold_path = Path(args.gold)
    gold = load_gold(gold_path)
    wanted = [t for t in args.topics.split(",") if t] or list(gold)
    per_section = args.per_section or drafting.DEFAULT_PER_SECTION
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="kb-dossier-"))
    try:
        copy = work / "kb"
        shutil.copytree(home, copy)
        kb = KnowledgeBase(copy, model=args.model, create=False)
        try:
            manifest = kb.store.read_manifest() or {}
            result: dict = {
                "benchmark": "dossier", "home": str(home.resolve()), "model": manifest.get("model"),
                "documents": manifest.get("counts", {}).get("documents"),
                "gold": {"path": str(gold_path), "sha1": hashlib.sha1(gold_path.read_bytes()).hexdigest()[:12]},
                "settings": {"per_section": per_section, "per_document": drafting.PER_DOCUMENT,
                             "core_per_document": drafting.CORE_PER_DOCUMENT,
                             "candidates_per_query": drafting.CANDIDATES_PER_QUERY,
                             "relative_floor": drafting.RELATIVE_FLOOR,
                             "doc_min_mentions": drafting.DOC_MIN_MENTIONS,
                             "doc_min_density": drafting.DOC_MIN_DENSITY, "generic_share": drafting.GENERIC_SHARE},
                "machine": _machine(), "versions": _versions(), "topics": {}}
            for topic_id in wanted:
                if topic_id not in gold:
                    result["topics"][topic_id] = {"skipped": "not in the yardstick"}
                    continue
                try:
                    topic = kb.topics.get(topic_id)
                except KBError as exc:
                    result["topics"][topic_id] = {"skipped": exc.user_message()}
                    continue
                log(f"drafting {topic_id} …")
                result["topics"][topic_id] = measure_topic(kb, topic, gold[topic_id], per_section,
                                                           trace=not args.no_trace)
            result["totals"] = totals(result["topics"])
        finally:
            kb.close()
    except KBError as exc:  # said of the copy: name the folder given
        print(f"错误：{exc.user_message().replace(str(work / 'kb'), str(home))}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
