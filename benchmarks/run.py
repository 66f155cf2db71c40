"""The search benchmarks in one JSON object: embedding speed, query latency at scale, index size, eval.

    python benchmarks/run.py --json [--sizes 10000,100000] [--queries 200] [--skip-embed] [--skip-eval]
    python benchmarks/run.py --json --only latency_1m [--chunks-1m 1000000]    (alone: ~10 min, up to 7 GB)

* `embed_passages_per_s`, `embed_speedup_vs_st_fp32`: from `benchmarks/embed_speed.py`
  (fp32 sentence-transformers and the int8 backend on the same 200–500-character
  chunks, alternating in this run).
* `query_p50_ms` / `query_p95_ms` per size: hybrid `Searcher.search` (query
  embedding by the real model, BM25, faiss, fusion, hits with citations) over a
  knowledge base of synthetic policy chunks. Chunk texts are recombined policy
  sentences; their vectors are random unit vectors, which cost faiss exactly what
  real ones do. `first_query_s`: loading the index plus the first query.
* `index_mb_per_100k`: the knowledge-base folder (SQLite with text, chunk and
  sentence vectors and keyword words, faiss, BM25) scaled to 100k chunks.
* `latency_1m` (only with `--only latency_1m`): a million chunks — the dense index the product
  chooses at that size (build seconds, recall@10 against exact search), BM25 over as many
  synthetic chunks, per-query p50/p95 of embedding, dense search and BM25, and the peak RSS.
* `eval`: `kb eval` figures for ../shared/bench/stard-mini in the three modes, and plain RRF.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from indexer.chunking import ChunkSpan, sentence_spans  # noqa: E402
from indexer.embedding import load_embedder  # noqa: E402
from indexer.keywords import KeywordIndex, Tokenizer  # noqa: E402
from indexer.store import DocumentRecord  # noqa: E402
from kb.storage import Store  # noqa: E402
from kb.config import DEFAULT_MODEL_DIR  # noqa: E402
from kb.evaluation import evaluate  # noqa: E402
from kb.search import Searcher  # noqa: E402

STARD_MINI = ROOT.parent / "shared" / "bench" / "stard-mini"
CHUNKS_PER_DOC = 10
# Short jargon and lay questions, the two kinds of query members type.
QUERIES = ["放管服", "银发经济", "一老一小", "长三角物流", "茶叶品牌", "老年助餐补贴标准", "请你来协商",
           "乡村议事会怎么组织", "我想知道社区食堂的补贴有多少？", "冷链物流设施有哪些短板",
           "政协委员怎样收集社情民意信息", "公铁水联运能降低多少成本", "地理标志产品保护",
           "数字茶园建设的目标是什么", "提案办理满意率", "村级议事协商阵地建设资金从哪里来"]


def synthetic_store(home: Path, n_chunks: int, dim: int, tokenizer: Tokenizer, seed: int = 0) -> float:
    """Fill `home` with `n_chunks` synthetic chunks and publish; returns seconds taken."""
    from embed_speed import _BUILTIN_SENTENCES, _corpus_sentences

    started = time.perf_counter()
    pool = _BUILTIN_SENTENCES + _corpus_sentences(ROOT / "corpus")
    pool_tokens = [tokenizer.tokenize(s) for s in pool]  # segment each sentence once, recombine tokens
    rng = random.Random(seed)
    vec_rng = np.random.default_rng(seed)
    store = Store(home)
    store.check_model("synthetic", dim)
    records, n_docs = [], (n_chunks + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC
    for d in range(n_docs):
        text, spans, tokens = "", [], []
        for _ in range(min(CHUNKS_PER_DOC, n_chunks - d * CHUNKS_PER_DOC)):
            start, target, chunk_tokens = len(text), rng.randint(200, 500), []
            while len(text) - start < target:
                i = rng.randrange(len(pool))
                text += pool[i]
                chunk_tokens += pool_tokens[i]
            spans.append(ChunkSpan(start, len(text), f"第{len(spans) + 1}段"))
            tokens.append(chunk_tokens)
            text += "\n"
        records.append(DocumentRecord(doc_id=f"s{d:07d}", source=f"synthetic/{d}.txt", file_hash=str(d), text=text,
                                      meta={"title": f"合成文件{d}", "doc_type": "policy"}, chunks=spans,
                                      tokens=tokens))
        if len(records) == 500 or d == n_docs - 1:
            count = sum(len(r.chunks) for r in records)
            vectors = _unit_rows(vec_rng, count, dim)
            sentences = []
            for rec in records:
                for span in rec.chunks:
                    spans = sentence_spans(rec.text, span.start, span.end)
                    sentences.append((spans, _unit_rows(vec_rng, len(spans), dim)))
            store.put_documents(records, vectors, sentences)
            records = []
    store.publish("synthetic", dim, tokenizer.fingerprint, KeywordIndex.build)
    store.close()
    return time.perf_counter() - started


def _unit_rows(rng, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


class _NamedAs:
    """The real embedder under the synthetic store's model name (the store refuses a mismatch)."""

    def __init__(self, embedder, name: str):
        self._embedder, self.name, self.dim = embedder, name, embedder.dim

    def embed_query(self, text):
        return self._embedder.embed_query(text)


def query_latency(n_chunks: int, embedder, tokenizer: Tokenizer, n_queries: int) -> dict:
    """Build a synthetic knowledge base of `n_chunks` and time hybrid searches on it."""
    home = Path(tempfile.mkdtemp(prefix=f"kb-bench-{n_chunks}-"))
    try:
        build_s = synthetic_store(home, n_chunks, embedder.dim, tokenizer)
        started = time.perf_counter()
        searcher = Searcher(Store(home), _NamedAs(embedder, "synthetic"), tokenizer)
        searcher.search(QUERIES[0])
        first_query_s = time.perf_counter() - started
        timings = []
        for i in range(n_queries):
            query = QUERIES[i % len(QUERIES)]
            t0 = time.perf_counter()
            searcher.search(query, top_k=10)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        searcher.store.close()
        return {"chunks": n_chunks, "queries": n_queries, "build_s": round(build_s, 1),
                "first_query_s": round(first_query_s, 2),
                "query_p50_ms": round(statistics.median(timings), 1),
                "query_p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
                "dense_index": searcher.manifest["dense_index"], "folder_mb": round(folder_mb(home), 1)}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _structured_vectors(sentence_vectors: np.ndarray, n: int, rng, noise: float = 0.02) -> np.ndarray:
    """`n` unit vectors shaped like chunk vectors: each the normalised mean of 3–8 real sentence
    vectors of the pool, plus a little noise (random unit vectors would have no neighbours to
    find, which flatters no index and says nothing about recall)."""
    dim = sentence_vectors.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 50_000):
        m = min(50_000, n - lo)
        picks = rng.integers(0, len(sentence_vectors), size=(m, 8))
        weights = (np.arange(8)[None, :] < rng.integers(3, 9, size=(m, 1))).astype(np.float32)
        rows = np.einsum("mk,mkd->md", weights, sentence_vectors[picks])
        rows += noise * rng.standard_normal((m, dim)).astype(np.float32)
        out[lo:lo + m] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def _tiled_keyword_index(tokenizer: Tokenizer, n_chunks: int, base: int = 20_000) -> tuple[KeywordIndex, int]:
    """A BM25 index of `n_chunks` synthetic chunks: `base` chunks of recombined policy sentences
    (tokens as the indexer makes them, character grams included), repeated to the size wanted.
    Returns it with the number of (term, chunk) entries per chunk."""
    from embed_speed import _BUILTIN_SENTENCES, _corpus_sentences

    pool = _BUILTIN_SENTENCES + _corpus_sentences(ROOT / "corpus")
    pool_tokens = [tokenizer.tokenize(s) for s in pool]
    rng = random.Random(0)
    lists = []
    for _ in range(base):
        tokens, chars, target = [], 0, rng.randint(200, 500)
        while chars < target:
            i = rng.randrange(len(pool))
            tokens += pool_tokens[i]
            chars += len(pool[i])
        lists.append(tokens)
    small = KeywordIndex.build(lists, np.arange(base))
    tiles = -(-n_chunks // base)
    # as `KeywordIndex.load` holds it: without the character grams a query never reads
    keep = ~small.skipped_terms()
    lengths = np.where(keep, np.diff(small._indptr), 0)
    held = np.repeat(keep, np.diff(small._indptr))
    indices, tf = small._indices[held], small._tf[held]
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    term = np.repeat(np.arange(len(lengths)), lengths)
    first = np.arange(len(indices)) + indptr[:-1][term] * (tiles - 1)  # where tile 0 of each entry goes
    big_indices = np.empty(len(indices) * tiles, dtype=np.int32)
    big_tf = np.empty(len(indices) * tiles, dtype=np.uint8)
    for t in range(tiles):
        big_indices[first + t * lengths[term]] = indices + t * base
        big_tf[first + t * lengths[term]] = tf
    del term, first
    ids = np.arange(base * tiles, dtype=np.int64)
    index = KeywordIndex(small._vocab, indptr * tiles, big_indices, ids, tf=big_tf,
                         doc_len=np.tile(small._doc_len, tiles), df=np.diff(small._indptr) * tiles)
    return index, round(len(small._indices) / base)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency_1m(embedder, tokenizer: Tokenizer, n_chunks: int = 1_000_000, n_queries: int = 200) -> dict:
    """A million chunks: the dense index the product chooses at that size (indexer.store.dense_index),
    built, written and loaded like a generation's vectors.faiss, with its recall@10 against exact
    search of the same vectors; and the BM25 index of as many synthetic chunks. Timed per query:
    the query embedding, the dense search as `Searcher` runs it (one thread, 100 candidates) and
    BM25 over every chunk (100 candidates), the size-dependent part of a hybrid query. Run it
    alone (`--only latency_1m`): the peak RSS is then that of this process (model, vectors being
    indexed, both indexes)."""
    import faiss

    from embed_speed import _BUILTIN_SENTENCES, _corpus_sentences
    from indexer.store import APPROXIMATE_FROM, dense_index

    rng = np.random.default_rng(0)
    pool = _BUILTIN_SENTENCES + _corpus_sentences(ROOT / "corpus")
    basis = embedder.embed_passages(pool)
    queries = list(QUERIES)
    if (STARD_MINI / "queries.jsonl").exists():
        queries += [json.loads(line)["text"] for line in (STARD_MINI / "queries.jsonl").read_text("utf-8").splitlines()
                    if line.strip()]
    qvecs = np.vstack([embedder.embed_query(q) for q in queries]).astype(np.float32)
    vectors = _structured_vectors(basis, n_chunks, rng)
    ids = np.arange(1, n_chunks + 1, dtype=np.int64)
    exact = np.zeros((len(qvecs), 10), dtype=np.int64)  # by blocks: no second copy of the vectors
    best = np.full((len(qvecs), 10), -np.inf, dtype=np.float32)
    for lo in range(0, n_chunks, 100_000):
        sims = qvecs @ vectors[lo:lo + 100_000].T
        cand = np.hstack([best, sims])
        cand_ids = np.hstack([exact, np.broadcast_to(ids[lo:lo + 100_000], sims.shape)])
        top = np.argsort(-cand, axis=1)[:, :10]
        best, exact = np.take_along_axis(cand, top, 1), np.take_along_axis(cand_ids, top, 1)
    home = Path(tempfile.mkdtemp(prefix="kb-bench-1m-"))
    try:
        started = time.perf_counter()
        index, kind = dense_index(vectors, ids, vectors.shape[1])
        faiss.write_index(index, str(home / "vectors.faiss"))
        build_s = time.perf_counter() - started
        del index, vectors
        index = faiss.read_index(str(home / "vectors.faiss"))
        file_mb = (home / "vectors.faiss").stat().st_size / 1e6
    finally:
        shutil.rmtree(home, ignore_errors=True)
    faiss.omp_set_num_threads(1)  # as Searcher._dense
    found = index.search(qvecs, 10)[1]
    recall = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))
    rss_dense = _peak_rss_mb()
    keyword, entries_per_chunk = _tiled_keyword_index(tokenizer, n_chunks)
    plans = [(q, tokenizer.tokenize_query(q)) for q in queries]
    parts: dict[str, list[float]] = {"embed": [], "dense": [], "keyword": [], "total": []}
    for i in range(n_queries):
        query, tokens = plans[i % len(plans)]
        t0 = time.perf_counter()
        vector = embedder.embed_query(query).reshape(1, -1).astype(np.float32)
        t1 = time.perf_counter()
        index.search(vector, 100)
        t2 = time.perf_counter()
        keyword.top(*keyword.scores(tokens), 100)
        t3 = time.perf_counter()
        for name, ms in (("embed", t1 - t0), ("dense", t2 - t1), ("keyword", t3 - t2), ("total", t3 - t0)):
            parts[name].append(ms * 1000)

    def p(name: str, q: float) -> float:
        values = sorted(parts[name])
        return round(values[int(q * (len(values) - 1))], 1)

    return {"chunks": n_chunks, "dense_index": kind, "approximate_from": APPROXIMATE_FROM,
            "build_s": round(build_s, 1), "index_file_mb": round(file_mb, 1),
            "peak_rss_mb": round(_peak_rss_mb()), "peak_rss_mb_dense_only": round(rss_dense),
            "keyword_entries_per_chunk": entries_per_chunk,
            "keyword_entries_held_per_chunk": round(keyword.entries / n_chunks),
            "keyword_ram_mb": round(keyword.postings_bytes / 1e6),
            "queries": n_queries, "p50_ms": p("total", 0.5), "p95_ms": p("total", 0.95),
            **{f"{name}_{q}_ms": p(name, v) for name in ("embed", "dense", "keyword")
               for q, v in (("p50", 0.5), ("p95", 0.95))},
            "recall_at_10_vs_exact": round(recall, 4), "recall_queries": len(queries)}


def stard_mini_eval(embedder) -> dict:
    if not (STARD_MINI / "corpus.jsonl").exists():
        return {"skipped": f"{STARD_MINI} not present"}
    out = {}
    runs = [("keyword", "keyword", {}), ("dense", "dense", {}), ("hybrid", "hybrid", {}),
            # plain RRF as the common stacks do it: reciprocal ranks, no sentence step
            ("hybrid_plain_rrf", "hybrid", {"fusion": "rrf", "sentence_weight": 0})]
    for key, mode, options in runs:
        out[key] = evaluate(STARD_MINI, embedder, mode=mode, searcher_options=options).as_json()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON object only")
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts for the latency runs")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per size")
    parser.add_argument("--model", default=os.environ.get("KB_MODEL") or str(DEFAULT_MODEL_DIR))
    parser.add_argument("--skip-embed", action="store_true", help="leave out the fp32 vs int8 embedding run")
    parser.add_argument("--skip-eval", action="store_true", help="leave out the stard-mini evaluation")
    parser.add_argument("--only", choices=["latency_1m"],
                        help="run this part alone (latency_1m: the dense index at a million chunks, ~10 min)")
    parser.add_argument("--chunks-1m", type=int, default=1_000_000, help="chunks for latency_1m")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from embed_speed import _machine, _versions, measure

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    embedder = load_embedder(args.model)
    model_load_s = time.perf_counter() - started
    tokenizer = Tokenizer()
    result: dict = {"benchmark": "search", "model": embedder.name, "model_load_s": round(model_load_s, 2),
                    "machine": _machine(), "versions": _versions()}
    if args.only == "latency_1m":
        log(f"dense index at {args.chunks_1m} chunks …")
        result["latency_1m"] = latency_1m(embedder, tokenizer, args.chunks_1m, args.queries)
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    if not args.skip_embed:
        log("embedding speed: fp32 vs int8 …")
        speed = measure(model_dir=args.model)
        result["embed_passages_per_s"] = speed["passages_per_s"]["onnx-int8"]
        result["embed_passages_per_s_st_fp32"] = speed["passages_per_s"]["st-fp32"]
        result["embed_speedup_vs_st_fp32"] = speed["speedup"]
        result["embed_cosine_vs_fp32_min"] = speed["cosine_vs_fp32"]["min"]
    latency = {}
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        log(f"query latency at {size} chunks …")
        latency[str(size)] = query_latency(size, embedder, tokenizer, args.queries)
    result["latency"] = latency
    for size, row in latency.items():
        suffix = f"{int(size) // 1000}k"
        result[f"query_p50_ms_{suffix}"] = row["query_p50_ms"]
        result[f"query_p95_ms_{suffix}"] = row["query_p95_ms"]
    biggest = max(latency.values(), key=lambda r: r["chunks"], default=None)
    if biggest:
        result["index_mb_per_100k"] = round(biggest["folder_mb"] * 100_000 / biggest["chunks"], 1)
    if not args.skip_eval:
        log("stard-mini evaluation …")
        result["eval_stard_mini"] = stard_mini_eval(embedder)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
