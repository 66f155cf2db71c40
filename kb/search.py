"""Hybrid search over the published index: keywords (jieba + bm25s) and dense (faiss), fused.

Filters are applied before ranking (both sides only see allowed chunks), a
relevance floor keeps unrelated material out, and near-duplicate chunks
(the same passage in two files) are grouped under one hit.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from indexer.embedding import Embedder
from indexer.errors import InvalidQuery
from indexer.keywords import KeywordIndex, Tokenizer
from indexer.store import Store

from .citations import Citation

MODES = ("hybrid", "keyword", "dense")
MAX_QUERY_CHARS = 2000
CANDIDATES = 100


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

    def as_dict(self) -> dict:
        data = asdict(self)
        data["citation"] = self.citation.formatted()
        data["citation_fields"] = self.citation.as_dict()
        return data


class Searcher:
    """Loads the published index once; `search` is then cheap."""

    def __init__(self, store: Store, embedder: Embedder, tokenizer: Tokenizer, *,
                 rrf_k: int = 60, keyword_weight: float = 1.0, dense_weight: float = 1.0,
                 min_dense_score: float | None = None):
        self.store = store
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.manifest, self.dense_index, bm25_dir = store.load_published(embedder.name)
        self.keyword_index = KeywordIndex.load(bm25_dir)
        self.rrf_k = rrf_k
        self.keyword_weight = keyword_weight
        self.dense_weight = dense_weight
        # e5-style models give unrelated text a cosine of ~0.7; below this a dense-only hit is noise.
        self.min_dense_score = min_dense_score if min_dense_score is not None else (
            0.2 if embedder.name.startswith("hashing") else 0.80)

    # -- query side -------------------------------------------------------
    def _query_tokens(self, query: str) -> list[str]:
        query = (query or "").strip()
        if not query:
            raise InvalidQuery("检索词为空", hint="输入关键词或一个问题，例如：老年助餐 补贴标准")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidQuery(f"检索词过长（{len(query)} 字，上限 {MAX_QUERY_CHARS} 字）",
                               hint="摘取最关键的一两句话再检索")
        return self.tokenizer.tokenize(query)

    def _allowed(self, filters: SearchFilters | None) -> list[int] | None:
        if filters is None or filters.is_empty():
            return None
        where, params = filters.sql()
        return [r[0] for r in self.store.conn.execute(
            f"SELECT c.chunk_id FROM chunks c JOIN documents d USING(doc_id) WHERE {where}", params)]

    def _dense(self, query: str, k: int, allowed: list[int] | None):
        import faiss

        if self.dense_index.ntotal == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        vector = self.embedder.embed_query(query).reshape(1, -1).astype(np.float32)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = self.dense_index.search(vector, min(k, self.dense_index.ntotal), params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    # -- main entry -------------------------------------------------------
    def search(self, query: str, top_k: int = 10, mode: str = "hybrid",
               filters: SearchFilters | None = None) -> list[Hit]:
        """Ranked hits for `query`; an empty list when nothing clears the relevance floor."""
        if mode not in MODES:
            raise InvalidQuery(f"未知检索方式 {mode}", hint="可选 hybrid / keyword / dense")
        tokens = self._query_tokens(query)
        if mode != "dense" and not tokens and mode == "keyword":
            raise InvalidQuery("检索词只包含停用词（如“的、是、怎么”）", hint="加上具体的主题词")
        allowed = self._allowed(filters)
        if allowed is not None and not allowed:
            return []
        kw_ids = kw_scores = dn_ids = dn_scores = np.zeros(0)
        if mode in ("hybrid", "keyword") and tokens:
            mask = self.keyword_index.rows_for(allowed) if allowed is not None else None
            kw_ids, kw_scores = self.keyword_index.search(tokens, CANDIDATES, mask)
        if mode in ("hybrid", "dense"):
            dn_ids, dn_scores = self._dense(query, CANDIDATES, allowed)
        fused = self._fuse(mode, kw_ids, kw_scores, dn_ids, dn_scores)
        return self._hits(fused, tokens, top_k)

    def _fuse(self, mode, kw_ids, kw_scores, dn_ids, dn_scores) -> list[tuple[int, float, int | None, int | None, float | None]]:
        """[(chunk_id, score, keyword_rank, dense_rank, dense_score)] best first, floor applied."""
        kw_rank = {int(c): r for r, c in enumerate(kw_ids, start=1)}
        dn_rank = {int(c): r for r, c in enumerate(dn_ids, start=1)}
        dn_score = {int(c): float(s) for c, s in zip(dn_ids, dn_scores)}
        results = []
        for cid in set(kw_rank) | set(dn_rank):
            kr, dr, ds = kw_rank.get(cid), dn_rank.get(cid), dn_score.get(cid)
            if mode == "keyword":
                score = float(kw_scores[kr - 1])
            elif mode == "dense":
                if ds is not None and ds < self.min_dense_score:
                    continue
                score = ds
            else:
                # a dense-only candidate must clear the floor; keyword evidence is its own floor (score > 0)
                if kr is None and (ds is None or ds < self.min_dense_score):
                    continue
                score = (self.keyword_weight / (self.rrf_k + kr) if kr else 0.0) + \
                        (self.dense_weight / (self.rrf_k + dr) if dr else 0.0)
            results.append((cid, score, kr, dr, ds))
        results.sort(key=lambda r: -r[1])
        return results

    def _hits(self, fused, tokens, top_k) -> list[Hit]:
        hits: list[Hit] = []
        by_hash: dict[str, Hit] = {}
        query_terms = sorted({t for t in tokens if len(t) > 1}, key=len, reverse=True)
        for cid, score, kr, dr, ds in fused:
            if len(hits) >= top_k:
                break
            row = self.store.conn.execute(
                "SELECT c.*, d.title, d.doc_type, d.issuer, d.doc_number, d.date, d.source, d.validity, "
                "substr(d.text, c.start + 1, c.end - c.start) AS passage "
                "FROM chunks c JOIN documents d USING(doc_id) WHERE c.chunk_id=?", (cid,)).fetchone()
            if row is None:  # chunk replaced since the index was published
                continue
            if row["content_hash"] in by_hash:
                by_hash[row["content_hash"]].duplicates.append(row["doc_id"])
                continue
            citation = Citation(doc_id=row["doc_id"], title=row["title"], doc_type=row["doc_type"],
                                issuer=row["issuer"], doc_number=row["doc_number"], date=row["date"],
                                page=row["page"], label=row["label"], start=row["start"], end=row["end"],
                                quote=row["passage"], source=row["source"], validity=row["validity"])
            hit = Hit(chunk_id=cid, doc_id=row["doc_id"], title=row["title"], doc_type=row["doc_type"],
                      score=round(float(score), 6), text=row["passage"], page=row["page"], label=row["label"],
                      start=row["start"], end=row["end"], citation=citation,
                      matched_terms=[t for t in query_terms if t in row["passage"]],
                      keyword_rank=kr, dense_rank=dr, dense_score=None if ds is None else round(ds, 4),
                      weak=kr is None)
            by_hash[row["content_hash"]] = hit
            hits.append(hit)
        return hits


def hits_to_json(hits: list[Hit]) -> str:
    return json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=1)
