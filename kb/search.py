"""Hybrid search over the published index: keywords (jieba + bm25s) and dense (faiss), fused.

How a query runs:
1. Filters select the allowed chunks first; both sides only ever see those.
2. Keyword side: the query minus its conversational framing (请问、怎么办 …),
   tokenized like the passages, scored with BM25; each candidate also gets its
   *coverage*, the share of the query's word IDF mass it contains. Lay words add
   official ones at a lower weight than the query's own: single words from
   `synonyms.txt` (老婆 → 配偶) and everyday expressions from the thesaurus
   (`kb.thesaurus`: 老板欠薪 → 拖欠工资 劳动报酬), matched as substrings, used
   when they make up a good part of the question.
3. Dense side: the whole question, embedded with the model's query prompt,
   searched in faiss (as asked: official terms appended to it lowered dense
   nDCG@10 on STARD).
4. Fusion over the union of both candidate lists:
   * ``combsum`` (default): each side's score is scaled to 0..1 between its
     best and its 100th candidate (every candidate gets both scores, read
     from the index, not a zero for “absent”), then weighted. Weights follow the
     query: short keyword queries (放管服, 银发经济) lean on keywords, which
     e5-small barely knows; long questions in the asker's own words lean dense.
   * ``rrf``: weighted reciprocal-rank fusion, what the common Chinese RAG stacks do.
5. Minimum relevance: a candidate needs some evidence of its own (dense cosine
   above the model's floor, or part of the query's words). A hit is *weak*
   unless most query words occur in it or its cosine is high for the model; a
   query with no strong hit returns at most `MAX_WEAK_ONLY` hits, all marked
   weak, and never a padded list.
6. Sentence evidence (hybrid): a chunk's vector averages all its sentences, while
   a question usually asks about one of them. The fused top `RERANK_DEPTH` are
   re-ordered by their fused score plus their best single sentence's cosine
   (sentence vectors are computed at indexing time), both scaled over those
   candidates; `Hit.focus` marks that sentence.
7. Near-duplicate chunks (same content hash) are grouped under one hit.

Figures for these choices are in docs/search.md.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from indexer.embedding import Embedder
from indexer.errors import IndexDamaged, InvalidQuery
from indexer.keywords import KeywordIndex, KeywordResult, Tokenizer, is_word, strip_colloquial

from . import thesaurus as thesaurus_mod
from .citations import Citation

if TYPE_CHECKING:
    from .storage import Store

MODES = ("hybrid", "keyword", "dense")
FUSIONS = ("combsum", "rrf")
SUPERSEDED_FACTOR = 0.8
MAX_QUERY_CHARS = 2000
CANDIDATES = 100
MAX_WEAK_ONLY = 3
# Sentence re-ordering of the fused head (docs/search.md: stard nDCG@10 +0.013).
RERANK_DEPTH = 30
SENTENCE_WEIGHT = 1.0
# Query-aware weights (keyword, dense) for combsum, by query kind; measured on stard-mini.
QUERY_WEIGHTS = {"keywords": (0.7, 0.3), "question": (0.4, 0.6)}
# Thesaurus expansion (docs/search.md): the official terms' BM25 counts THESAURUS_WEIGHT against
# the query's own words (1.0), and only when the lay expressions found make up at least
# THESAURUS_MIN_SHARE of the question's characters: a long story with one everyday phrase in
# it is better served by its own words. The dense side embeds the question as asked
# ("append", the question with its official terms, lowered dense nDCG@10 on STARD).
THESAURUS_WEIGHT = 0.3
THESAURUS_MIN_SHARE = 0.15
THESAURUS_DENSE = "none"
THESAURUS_DENSE_MODES = ("none", "append")
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_QUESTION_RE = re.compile(r"[？?]|吗|呢|怎么|如何|是否|能否|可以|什么|哪些|为什么|谁|应当|应该")


@dataclass(frozen=True)
class DenseCalibration:
    """Cosine levels of a model: below `floor` a dense match is noise; above `confident` it stands alone.

    e5 models give unrelated text cosines of 0.80–0.87 (measured on stard-mini
    with off-topic queries); relevant statute articles score 0.84–0.93.
    """

    floor: float
    confident: float


def calibration_for(model_name: str, recorded: dict | None = None) -> DenseCalibration:
    """The model's own levels when its folder records usable ones (`kb tune` writes them to
    `kb_model.json`), else the levels of its family, told by the name."""
    try:
        floor, confident = float(recorded["floor"]), float(recorded["confident"])
        if -1.0 <= floor < confident <= 1.0:
            return DenseCalibration(floor, confident)
    except (TypeError, KeyError, ValueError):
        pass
    if model_name.startswith("hashing"):
        return DenseCalibration(0.15, 0.5)
    if "e5" in model_name.lower():
        return DenseCalibration(0.80, 0.88)
    return DenseCalibration(0.30, 0.60)  # bge/m3-style models spread cosines wider


@dataclass
class SearchFilters:
    """Metadata filters; empty fields do not filter."""

    doc_types: list[str] = field(default_factory=list)
    issuer: str | None = None
    level: str | None = None
    region: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    in_force_only: bool = False
    tags: list[str] = field(default_factory=list)
    doc_ids: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.doc_types or self.issuer or self.level or self.region or self.date_from
                    or self.date_to or self.in_force_only or self.tags or self.doc_ids)

    def sql(self) -> tuple[str, list]:
        clauses, params = [], []
        if self.doc_types:
            clauses.append(f"d.doc_type IN ({','.join('?' * len(self.doc_types))})")
            params += self.doc_types
        for column, value in (("issuer", self.issuer), ("region", self.region)):
            if value:
                clauses.append(f"d.{column} LIKE ?")
                params.append(f"%{value}%")
        if self.level:
            clauses.append("d.level = ?")
            params.append(self.level)
        if self.date_from:
            clauses.append("d.date >= ?")
            params.append(self.date_from)
        if self.date_to:
            clauses.append("d.date <= ?")
            params.append(self.date_to)
        if self.in_force_only:
            clauses.append("d.validity = 'in_force'")
        for tag in self.tags:
            clauses.append("(d.tags LIKE ? OR d.title LIKE ?)")
            params += [f'%"{tag}"%', f"%{tag}%"]
        if self.doc_ids:
            clauses.append(f"d.doc_id IN ({','.join('?' * len(self.doc_ids))})")
            params += self.doc_ids
        return (" AND ".join(clauses) or "1"), params

    def describe(self) -> str:
        """The active filters in words, for messages."""
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v not in (None, [], False)]
        return "，".join(parts)


@dataclass
class Hit:
    """One search result: a passage with its citation and how it was found."""

    chunk_id: int
    doc_id: str
    title: str
    doc_type: str
    score: float
    text: str
    page: int | None
    label: str
    start: int
    end: int
    citation: Citation
    matched_terms: list[str] = field(default_factory=list)
    keyword_rank: int | None = None
    dense_rank: int | None = None
    dense_score: float | None = None
    duplicates: list[str] = field(default_factory=list)  # doc_ids of near-identical passages
    weak: bool = False
    focus: list[int] | None = None  # [start, end] of the sentence that best matches the query

    def focus_text(self) -> str | None:
        """The sentence of the passage that best matches the query (None for a one-sentence passage)."""
        if not self.focus:
            return None
        return self.text[self.focus[0] - self.start:self.focus[1] - self.start] or None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["focus_text"] = self.focus_text()
        data["citation"] = self.citation.formatted()
        data["citation_fields"] = self.citation.as_dict()
        return data


@dataclass
class Candidate:
    """A chunk under consideration, with the evidence of both sides."""

    chunk_id: int
    score: float = 0.0
    keyword_rank: int | None = None
    keyword_score: float = 0.0
    coverage: float = 0.0
    dense_rank: int | None = None
    dense_score: float | None = None
    strong: bool = False
    sentence_score: float | None = None  # best cosine of one of its sentences
    focus: tuple[int, int] | None = None


@dataclass
class QueryPlan:
    """What the searcher makes of a query before looking anything up."""

    text: str
    keyword_tokens: list[str]
    kind: str  # "keywords" (a few terms, jargon) or "question" (a sentence in the asker's words)
    expansion: list[str] = field(default_factory=list)  # official words for the query's lay words
    lay_matches: list[str] = field(default_factory=list)  # thesaurus expressions found in the query
    official_terms: list[str] = field(default_factory=list)  # their official terms, not already in the query
    official_tokens: list[str] = field(default_factory=list)  # those terms tokenized like passages
    lay_share: float = 0.0  # share of the question's characters inside the lay expressions found
    official_weight: float = 0.0  # BM25 weight of official_tokens (the query's own words count 1); 0: not used

    def dense_text(self, mode: str = THESAURUS_DENSE) -> str:
        """What the dense side embeds: the question, with its official terms appended in "append" mode."""
        if mode == "append" and self.official_weight > 0:
            return f"{self.text}（{' '.join(self.official_terms)}）"
        return self.text

    def as_dict(self) -> dict:
        return asdict(self)


def query_kind(query: str) -> str:
    """Short jargon or space-separated terms → "keywords"; sentences and questions → "question"."""
    core = strip_colloquial(query)
    chars = len(re.findall(r"[\u4e00-\u9fff]", core))
    if _QUESTION_RE.search(query) or chars > 12:
        return "question"
    return "keywords"


def make_plan(query: str, tokenizer: Tokenizer, thesaurus: thesaurus_mod.Thesaurus | None,
              thesaurus_weight: float = THESAURUS_WEIGHT, min_share: float = THESAURUS_MIN_SHARE) -> QueryPlan:
    """The plan of a checked, stripped query: its tokens and kind, the official words of its lay
    words (`synonyms.txt`) and of its everyday expressions (the thesaurus; None: no expansion).
    The thesaurus terms get `thesaurus_weight` when the expressions found cover at least
    `min_share` of the question's characters, else weight 0 (listed, not used)."""
    tokens = tokenizer.tokenize_query(query)
    if not any(is_word(t) for t in tokens):
        raise InvalidQuery("检索词只包含停用词或标点（如“的、是、怎么”）", hint="加上具体的主题词，例如：养老服务 补贴")
    plan = QueryPlan(text=query, keyword_tokens=tokens, kind=query_kind(query))
    if thesaurus is None:
        return plan
    plan.expansion = tokenizer.expand_query(query)
    matched, terms = thesaurus.expand(query)
    if terms:
        plan.lay_matches = [e.lay for e in matched]
        plan.official_terms = terms
        plan.official_tokens = tokenizer.tokenize(" ".join(terms))
        core = _CJK_RE.findall(strip_colloquial(query)) or _CJK_RE.findall(query)
        plan.lay_share = round(min(1.0, sum(len(lay) for lay in plan.lay_matches) / max(len(core), 1)), 3)
        plan.official_weight = thesaurus_weight if plan.lay_share >= min_share else 0.0
    return plan


def _scale(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale to 0..1 between the reference list's last and best value; below the last clips to 0."""
    if not len(reference):
        return np.zeros(len(values), dtype=np.float32)
    hi, lo = float(reference.max()), float(reference.min())
    if hi - lo < 1e-9:
        return (values >= hi).astype(np.float32)
    return np.clip((values - lo) / (hi - lo), 0.0, None).astype(np.float32)


def dense_search_params(index, allowed: list[int] | None):
    """faiss parameters restricting a search of `index` to the `allowed` chunk ids (None: all).
    An inverted file then reads every list: the allowed chunks may sit in any of them."""
    import faiss

    if allowed is None:
        return None
    selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nlist)
    return faiss.SearchParameters(sel=selector)


class Searcher:
    """Loads the published index once; `search` is then cheap."""

    def __init__(self, store: "Store", embedder: Embedder, tokenizer: Tokenizer, *,
                 fusion: str = "combsum", rrf_k: int = 60, keyword_weight: float | None = None,
                 dense_weight: float | None = None, min_dense_score: float | None = None,
                 confident_dense_score: float | None = None, min_coverage: float = 0.3,
                 strong_coverage: float = 0.5, expand: bool = True, sentence_weight: float = SENTENCE_WEIGHT,
                 thesaurus_weight: float = THESAURUS_WEIGHT, thesaurus_min_share: float = THESAURUS_MIN_SHARE,
                 thesaurus_dense: str = THESAURUS_DENSE):
        if fusion not in FUSIONS:
            raise InvalidQuery(f"未知融合方式 {fusion}", hint="可选 " + " / ".join(FUSIONS))
        if thesaurus_dense not in THESAURUS_DENSE_MODES:
            raise InvalidQuery(f"未知的词表语义用法 {thesaurus_dense}", hint="可选 " + " / ".join(THESAURUS_DENSE_MODES))
        self.store = store
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.manifest, self.dense_index, bm25_dir = store.load_published(embedder.name)
        try:
            self.keyword_index = KeywordIndex.load(bm25_dir)
        except Exception as exc:  # bm25s/numpy raise many kinds on a cut or altered file
            raise IndexDamaged(f"关键词索引 {bm25_dir} 无法读取（{type(exc).__name__}）",
                               hint="运行 kb doctor --repair 从数据库重建检索文件") from None
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.keyword_weight = keyword_weight
        self.dense_weight = dense_weight
        calibration = calibration_for(embedder.name, getattr(embedder, "calibration", None))
        self.min_dense_score = calibration.floor if min_dense_score is None else float(min_dense_score)
        self.confident_dense_score = (calibration.confident if confident_dense_score is None
                                      else float(confident_dense_score))
        self.min_coverage = min_coverage
        self.strong_coverage = strong_coverage
        self.expand = expand
        self.sentence_weight = float(sentence_weight)
        self.thesaurus_weight = float(thesaurus_weight)
        self.thesaurus_min_share = float(thesaurus_min_share)
        self.thesaurus_dense = thesaurus_dense

    def settings(self) -> dict:
        """The knobs in force, for stamping eval reports and benchmarks."""
        return {"fusion": self.fusion, "rrf_k": self.rrf_k, "keyword_weight": self.keyword_weight,
                "dense_weight": self.dense_weight, "query_weights": QUERY_WEIGHTS,
                "min_dense_score": self.min_dense_score, "confident_dense_score": self.confident_dense_score,
                "min_coverage": self.min_coverage, "strong_coverage": self.strong_coverage,
                "sentence_weight": self.sentence_weight, "rerank_depth": RERANK_DEPTH,
                "thesaurus_weight": self.thesaurus_weight if self.expand else 0.0,
                "thesaurus_min_share": self.thesaurus_min_share,
                "thesaurus_dense": self.thesaurus_dense if self.expand else "none",
                "thesaurus_entries": len(self.thesaurus()),
                "candidates": CANDIDATES, "dense_index": self.manifest.get("dense_index"),
                "tokenizer": self.manifest.get("keyword", {}).get("fingerprint")}

    # -- query side -------------------------------------------------------
    def plan(self, query: str) -> QueryPlan:
        """Check the query and derive its keyword tokens and kind; raise `InvalidQuery` when unusable."""
        query = (query or "").strip()
        if not query:
            raise InvalidQuery("检索词为空", hint="输入关键词或一个问题，例如：老年助餐 补贴标准")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidQuery(f"检索词过长（{len(query)} 字，上限 {MAX_QUERY_CHARS} 字）",
                               hint="摘取最关键的一两句话再检索")
        return make_plan(query, self.tokenizer, self.thesaurus() if self.expand else None,
                         thesaurus_weight=self.thesaurus_weight, min_share=self.thesaurus_min_share)

    def thesaurus(self) -> thesaurus_mod.Thesaurus:
        """Built-in entries with the knowledge base's own; re-read when a file changes."""
        return thesaurus_mod.load(getattr(self.store, "home", None))

    def keyword_scores(self, plan: QueryPlan) -> tuple[np.ndarray, np.ndarray]:
        """(BM25, coverage) of every chunk: the query's words, its synonyms, and its official
        terms at `plan.official_weight`. Coverage is that of the query's own words, or of the
        official terms scaled by the lay expressions' share of the question, whichever is
        higher: a passage that says 占道经营 answers 门口摆摊 without either of its words."""
        scores, coverage = self.keyword_index.scores(plan.keyword_tokens, plan.expansion)
        if plan.official_tokens and plan.official_weight > 0:
            official, official_coverage = self.keyword_index.scores(plan.official_tokens)
            scores = scores + np.float32(plan.official_weight) * official
            coverage = np.maximum(coverage, np.float32(plan.lay_share) * official_coverage)
        return scores, coverage

    def query_vector(self, plan: QueryPlan) -> np.ndarray:
        """The dense side's query vector (see THESAURUS_DENSE)."""
        return self.embedder.embed_query(plan.dense_text(self.thesaurus_dense))

    def weights(self, plan: QueryPlan) -> tuple[float, float]:
        """(keyword, dense) weights: configured ones win, otherwise by query kind."""
        default_kw, default_dn = QUERY_WEIGHTS[plan.kind] if self.fusion == "combsum" else (1.0, 1.0)
        kw = default_kw if self.keyword_weight is None else float(self.keyword_weight)
        dn = default_dn if self.dense_weight is None else float(self.dense_weight)
        return kw, dn

    def allowed_chunks(self, filters: SearchFilters | None) -> list[int] | None:
        """Chunk ids the filters allow; None when there are no filters."""
        if filters is None or filters.is_empty():
            return None
        where, params = filters.sql()
        return self.store.chunk_ids_where(where, params)

    def _dense(self, plan: QueryPlan, k: int, allowed: list[int] | None):
        import faiss

        if self.dense_index.ntotal == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), None
        vector = self.query_vector(plan).reshape(1, -1).astype(np.float32)
        params = dense_search_params(self.dense_index, allowed)
        # One query is one matrix-vector product: more OpenMP threads only spin against other load.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.dense_index.search(vector, min(k, self.dense_index.ntotal), params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep], vector[0]

    def _cosines(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Exact cosines of keyword-only candidates, so fusion never treats “not in the dense top” as zero."""
        out = {}
        for cid in chunk_ids:
            try:
                out[cid] = float(self.dense_index.reconstruct(int(cid)) @ vector)
            except RuntimeError:  # id not in this index (replaced since publishing)
                continue
        return out

    # -- main entry -------------------------------------------------------
    def search(self, query: str, top_k: int = 10, mode: str = "hybrid",
               filters: SearchFilters | None = None) -> list[Hit]:
        """Ranked hits for `query`; an empty list when nothing clears the relevance floor."""
        if mode not in MODES:
            raise InvalidQuery(f"未知检索方式 {mode}", hint="可选 hybrid / keyword / dense")
        plan = self.plan(query)
        allowed = self.allowed_chunks(filters)
        if allowed is not None and not allowed:
            return []
        # Both sides always run: the mode decides the ranking, but whether the corpus
        # answers the query at all is judged on all the evidence (see `_rank`).
        full_scores = self.keyword_scores(plan)
        mask = self.keyword_index.rows_for(allowed) if allowed is not None else None
        keyword = self.keyword_index.top(*full_scores, CANDIDATES, mask)
        dn_ids, dn_scores, vector = self._dense(plan, CANDIDATES, allowed)
        candidates = self._candidates(keyword, dn_ids, dn_scores, vector, full_scores)
        ranked = self._rank(mode, candidates, keyword, dn_scores, plan, vector)
        used = plan.official_terms if plan.official_weight > 0 else []
        return self._hits(ranked, plan.keyword_tokens + used, top_k)

    def _candidates(self, keyword: KeywordResult, dn_ids, dn_scores, vector, full_scores) -> dict[int, Candidate]:
        """The union of both candidate lists, each candidate with both sides' evidence."""
        pool: dict[int, Candidate] = {}
        for rank, (cid, score, cov) in enumerate(zip(keyword.ids, keyword.scores, keyword.coverage), start=1):
            pool[int(cid)] = Candidate(int(cid), keyword_rank=rank, keyword_score=float(score), coverage=float(cov))
        for rank, (cid, score) in enumerate(zip(dn_ids, dn_scores), start=1):
            cand = pool.setdefault(int(cid), Candidate(int(cid)))
            cand.dense_rank, cand.dense_score = rank, float(score)
        if vector is not None:
            missing = [c.chunk_id for c in pool.values() if c.dense_score is None]
            for cid, cos in self._cosines(vector, missing).items():
                pool[cid].dense_score = cos
        if full_scores is not None:
            scores, coverage = full_scores
            for cand in pool.values():
                row = self.keyword_index.row_of(cand.chunk_id) if cand.keyword_rank is None else None
                if row is not None:
                    cand.keyword_score, cand.coverage = float(scores[row]), float(coverage[row])
        return pool

    def _rank(self, mode, pool: dict[int, Candidate], keyword: KeywordResult, dn_scores, plan,
              vector: np.ndarray | None = None) -> list[Candidate]:
        """Scores by mode, the relevance floor and the strong/weak mark; best first."""
        if mode == "keyword":
            cands = [c for c in pool.values() if c.keyword_rank is not None]
            for c in cands:
                c.score = c.keyword_score
        elif mode == "dense":
            cands = [c for c in pool.values() if c.dense_rank is not None]
            for c in cands:
                c.score = c.dense_score or 0.0
        else:
            cands = list(pool.values())
            self._fuse(cands, keyword, dn_scores, plan)
        if not cands:
            return []
        kept = []
        for c in cands:
            dense = c.dense_score if c.dense_score is not None else -1.0
            if mode == "keyword":
                relevant = c.keyword_score > 0
            elif mode == "dense":
                relevant = dense >= self.min_dense_score
            else:
                relevant = dense >= self.min_dense_score or c.coverage >= self.min_coverage
            if relevant:
                c.strong = c.coverage >= self.min_coverage or dense >= self.confident_dense_score
                kept.append(c)
        if mode == "hybrid" and vector is not None and self.sentence_weight > 0:
            self._sentence_rerank(kept, vector)
        self._demote_superseded(kept)
        kept.sort(key=lambda c: -c.score)
        if not self.answered(pool.values()):
            kept = kept[:MAX_WEAK_ONLY]
            for c in kept:
                c.strong = False
        return kept

    def _sentence_rerank(self, cands: list[Candidate], vector: np.ndarray) -> None:
        """Re-order the best `RERANK_DEPTH` by fused score + weight × best sentence cosine.

        Both are scaled to 0..1 over those candidates; the new scores stay within the
        old head's range, so the order below the head is untouched. A chunk of one
        sentence counts with its own cosine."""
        cands.sort(key=lambda c: -c.score)
        head = cands[:RERANK_DEPTH]
        if len(head) < 2:
            return
        found = self.store.sentence_vectors([c.chunk_id for c in head], len(vector))
        for c in head:
            if c.chunk_id in found:
                spans, vectors = found[c.chunk_id]
                sims = vectors @ vector
                best = int(np.argmax(sims))
                c.sentence_score, c.focus = float(sims[best]), tuple(spans[best])
            else:
                c.sentence_score = c.dense_score if c.dense_score is not None else -1.0
        fused = np.array([c.score for c in head])
        lo, hi = float(fused.min()), float(fused.max())
        sentence = np.array([c.sentence_score for c in head])
        weight = self.sentence_weight
        mixed = (_scale(fused, fused) + weight * _scale(sentence, sentence)) / (1.0 + weight)
        for c, m in zip(head, mixed):
            c.score = lo + (hi - lo) * float(m)

    def _demote_superseded(self, cands: list[Candidate]) -> None:
        """An amended or repealed text ranks below the text in force that says the same thing."""
        if not cands:
            return
        superseded = self.store.superseded_chunk_ids([c.chunk_id for c in cands])
        for c in cands:
            if c.chunk_id in superseded:
                c.score *= SUPERSEDED_FACTOR

    def answered(self, pool) -> bool:
        """Does the corpus speak to this query at all? Most of its words in one chunk, or a confident cosine."""
        return any(c.coverage >= self.strong_coverage or (c.dense_score or -1.0) >= self.confident_dense_score
                   for c in pool)

    def _fuse(self, cands: list[Candidate], keyword: KeywordResult, dn_scores, plan: QueryPlan) -> None:
        kw_w, dn_w = self.weights(plan)
        if self.fusion == "rrf":
            for c in cands:
                c.score = (kw_w / (self.rrf_k + c.keyword_rank) if c.keyword_rank else 0.0) + \
                          (dn_w / (self.rrf_k + c.dense_rank) if c.dense_rank else 0.0)
            return
        kw = _scale(np.array([c.keyword_score for c in cands]), keyword.scores)
        dn = _scale(np.array([c.dense_score if c.dense_score is not None else -1.0 for c in cands]),
                    np.asarray(dn_scores))
        for c, k, d in zip(cands, kw, dn):
            c.score = float(kw_w * k + dn_w * d) / (kw_w + dn_w or 1.0)

    def _hits(self, ranked: list[Candidate], tokens: list[str], top_k: int) -> list[Hit]:
        hits: list[Hit] = []
        by_hash: dict[str, Hit] = {}
        query_terms = sorted({t for t in tokens if is_word(t) and len(t) > 1}, key=len, reverse=True)
        for cand in ranked:
            if len(hits) >= top_k:
                break
            row = self.store.hit_row(cand.chunk_id)
            if row is None:  # chunk replaced since the index was published
                continue
            if row["content_hash"] in by_hash:
                by_hash[row["content_hash"]].duplicates.append(row["doc_id"])
                continue
            citation = Citation(doc_id=row["doc_id"], title=row["title"], doc_type=row["doc_type"],
                                issuer=row["issuer"], doc_number=row["doc_number"], date=row["date"],
                                page=row["page"], label=row["label"], start=row["start"], end=row["end"],
                                quote=row["passage"], source=row["source"], validity=row["validity"])
            ds = cand.dense_score
            hit = Hit(chunk_id=cand.chunk_id, doc_id=row["doc_id"], title=row["title"], doc_type=row["doc_type"],
                      score=round(float(cand.score), 6), text=row["passage"], page=row["page"], label=row["label"],
                      start=row["start"], end=row["end"], citation=citation,
                      matched_terms=[t for t in query_terms if t in row["passage"] or t in row["title"]],
                      keyword_rank=cand.keyword_rank, dense_rank=cand.dense_rank,
                      dense_score=None if ds is None else round(ds, 4), weak=not cand.strong,
                      focus=list(cand.focus) if cand.focus else None)
            by_hash[row["content_hash"]] = hit
            hits.append(hit)
        return hits


def hits_to_json(hits: list[Hit]) -> str:
    return json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=1)
