"""Retrieval evaluation on BEIR-layout test sets (`kb eval`).

A bench folder holds `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl`
(`_id`, `text`) and `qrels/test.tsv` (`query-id`, `corpus-id`, `score`). Each
passage becomes one document with one chunk, embedded the way the indexer embeds
(title, newline, text), so the figures measure the search the users get.

The index of a corpus is cached under `KB_EVAL_CACHE` (default
`~/.cache/xieshang-kb/eval/`), keyed by the corpus hash, the model and
`EVAL_FORMAT`. Vectors are the expensive part; keyword tokens are re-segmented
in place when the dictionaries or the tokenizer change. An interrupted build
resumes where it stopped. With `database` (a PostgreSQL URL; `kb eval --database`)
the passages go into that database instead of the cache folder's `kb.sqlite` — the
same figures, measured on the team server's backend; the search files stay in a
cache folder of their own.

Metrics are those of `shared/bench/score.py`: nDCG@10 (gain = qrels score, log2
discount), Recall@10, Recall@100 and MRR@10, averaged over the queries that have
at least one relevant passage.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from indexer.build import fill_sentences, store_records
from indexer.chunking import ChunkSpan
from indexer.embedding import Embedder
from indexer.errors import InvalidQuery
from indexer.keywords import KeywordIndex, Tokenizer
from indexer.store import DocumentRecord

from .errors import BenchError
from .search import MODES, Searcher
from .storage import Database, Store

EVAL_FORMAT = 4  # bump when what is stored per passage (text, title, chunking, vector forms) changes
METRIC_KEYS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
RUN_DEPTH = 100
_BUILD_BATCH = 256


@dataclass
class Bench:
    """A BEIR-layout test set read into memory."""

    name: str
    folder: Path
    corpus: dict[str, tuple[str, str]]  # _id → (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query-id → {corpus-id: gain > 0}
    corpus_hash: str


@dataclass
class EvalReport:
    """Scores of one run, stamped with what produced them."""

    mode: str
    metrics: dict[str, float]
    queries: int
    bench: str
    model: str
    settings: dict = field(default_factory=dict)
    failed_queries: dict[str, str] = field(default_factory=dict)  # query-id → reason
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        """Exactly the documented keys: the four metrics, `queries` and `mode`."""
        return {**self.metrics, "queries": self.queries, "mode": self.mode}


def default_cache_root() -> Path:
    return Path(os.environ.get("KB_EVAL_CACHE") or Path.home() / ".cache" / "xieshang-kb" / "eval")


# -- reading a bench folder -------------------------------------------------
def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{path} 第 {n} 行不是合法的 JSON（{exc.msg}）",
                                 hint="每行应是一个 JSON 对象，例如 {\"_id\": \"q1\", \"text\": \"…\"}") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise BenchError(f"{path} 第 {n} 行缺少 _id 字段", hint="BEIR 格式要求每行都有 _id")
            yield n, row


def load_bench(folder: str | os.PathLike) -> Bench:
    """Read and check a BEIR-layout folder; raise `BenchError` with what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchError(f"评测集文件夹 {folder} 不存在", hint="给出含 corpus.jsonl、queries.jsonl、qrels/test.tsv 的文件夹")
    paths = {name: folder / name for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise BenchError(f"评测集 {folder} 缺少文件：{'、'.join(missing)}",
                         hint="BEIR 格式需要 corpus.jsonl、queries.jsonl 和 qrels/test.tsv")
    digest = hashlib.sha1()
    corpus: dict[str, tuple[str, str]] = {}
    for _, row in _jsonl(paths["corpus.jsonl"]):
        title, text = str(row.get("title") or "").strip(), str(row.get("text") or "")
        corpus[str(row["_id"])] = (title, text)
        digest.update(f"{row['_id']}\t{title}\t{text}\n".encode("utf-8"))
    if not corpus:
        raise BenchError(f"{paths['corpus.jsonl']} 是空的", hint="语料至少要有一段文本")
    queries = {str(row["_id"]): str(row.get("text") or "") for _, row in _jsonl(paths["queries.jsonl"])}
    qrels = _read_qrels(paths["qrels/test.tsv"])
    if not qrels:
        raise BenchError(f"{paths['qrels/test.tsv']} 里没有相关性判断（score > 0 的行）",
                         hint="每行：query-id<TAB>corpus-id<TAB>score")
    _check_ids(qrels, queries, corpus)
    return Bench(name=folder.resolve().name, folder=folder, corpus=corpus, queries=queries, qrels=qrels,
                 corpus_hash=digest.hexdigest())


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 3:
                parts = line.split()
            if not line.strip():
                continue
            if len(parts) < 3:
                raise BenchError(f"{path} 第 {n} 行应有三列（query-id、corpus-id、score）", hint="用制表符分隔")
            try:
                gain = int(float(parts[2]))
            except ValueError:
                if n == 1:
                    continue  # header
                raise BenchError(f"{path} 第 {n} 行的 score 不是数字：{parts[2]!r}", hint="score 应为整数") from None
            if gain > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = gain
    return qrels


def _check_ids(qrels: dict, queries: dict, corpus: dict) -> None:
    bad_queries = sorted(q for q in qrels if q not in queries)
    bad_docs = sorted({d for rel in qrels.values() for d in rel if d not in corpus})
    problems = []
    if bad_queries:
        problems.append(f"{len(bad_queries)} 个 query-id 不在 queries.jsonl 中（如 {', '.join(bad_queries[:3])}）")
    if bad_docs:
        problems.append(f"{len(bad_docs)} 个 corpus-id 不在 corpus.jsonl 中（如 {', '.join(bad_docs[:3])}）")
    if problems:
        raise BenchError("qrels/test.tsv 与语料或问题对不上：" + "；".join(problems),
                         hint="检查三个文件是否来自同一个评测集、编号是否一致")


# -- scoring ------------------------------------------------------------------
def score_run(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> dict[str, float]:
    """The four metrics averaged over the qrels queries; a query missing from `run` scores zero."""
    totals = dict.fromkeys(METRIC_KEYS, 0.0)
    for qid, rel in qrels.items():
        ranked = run.get(qid, [])
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
        totals["ndcg@10"] += dcg / ideal
        totals["recall@10"] += len(set(ranked[:10]) & rel.keys()) / len(rel)
        totals["recall@100"] += len(set(ranked[:100]) & rel.keys()) / len(rel)
        totals["mrr@10"] += next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in rel), 0.0)
    n = max(1, len(qrels))
    return {key: round(value / n, 4) for key, value in totals.items()}


# -- the cached index -------------------------------------------------------
def cache_key(bench: Bench, embedder: Embedder) -> str:
    raw = f"{bench.corpus_hash}|{embedder.name}|{embedder.dim}|format{EVAL_FORMAT}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]


def _record(doc_id: str, title: str, text: str, tokenizer: Tokenizer) -> DocumentRecord:
    body = text if text.strip() else title
    record = DocumentRecord(doc_id=doc_id, source=f"bench:{doc_id}",
                            file_hash=hashlib.sha1(f"{title}\n{body}".encode("utf-8")).hexdigest(),
                            text=body, meta={"title": title, "doc_type": "policy"},
                            chunks=[ChunkSpan(0, len(body), "")])
    record.tokens = [tokenizer.tokenize_passage(body, title)]
    return record


def ensure_index(bench: Bench, embedder: Embedder, tokenizer: Tokenizer, cache_root: Path | None = None,
                 progress: Callable[[int, int], None] | None = None, database: str | None = None) -> Store:
    """The cached store of `bench`'s corpus, built or completed (and re-segmented) as needed;
    its rows in the PostgreSQL `database` when given (empty, or holding this corpus from before)."""
    home = (cache_root or default_cache_root()) / f"{bench.name}-{cache_key(bench, embedder)}"
    if database:
        home = home.with_name(f"{home.name}-pg{hashlib.sha1(database.encode('utf-8')).hexdigest()[:8]}")
    store = Store(home, db=Database(home, url=database or ""))
    stored = {doc_id for doc_id, _ in store.file_hashes().values()}
    if stored - set(bench.corpus):
        store.close()
        raise BenchError(f"数据库 {store.db.path} 里有不属于评测集 {bench.name} 的文档，没有改动它",
                         hint="评测用一个新建的空数据库（或上次评测这个评测集用过的数据库）")
    manifest = store.read_manifest()
    complete = manifest is not None and manifest["counts"]["documents"] == len(bench.corpus) and \
        len(stored) == len(bench.corpus) and store.count_without_sentences() == 0
    if complete and manifest["keyword"]["fingerprint"] == tokenizer.fingerprint:
        return store
    with store.write_lock(wait=3600):
        if store.get_setting("tokenizer") not in (None, tokenizer.fingerprint):
            _resegment(store, bench, tokenizer)
        store.check_model(embedder.name, embedder.dim)
        store.set_setting("tokenizer", tokenizer.fingerprint)
        todo = [doc_id for doc_id in bench.corpus if doc_id not in stored]
        done = len(bench.corpus) - len(todo)
        if progress and todo:
            progress(done, len(bench.corpus))
        for start in range(0, len(todo), _BUILD_BATCH):
            batch = [_record(d, *bench.corpus[d], tokenizer) for d in todo[start:start + _BUILD_BATCH]]
            store_records(store, embedder, batch)
            done += len(batch)
            if progress:
                progress(done, len(bench.corpus))
        fill_sentences(store, embedder, progress)  # a cache from before sentence vectors
        store.publish(embedder.name, embedder.dim, tokenizer.fingerprint, KeywordIndex.build)
    return store


def _resegment(store: Store, bench: Bench, tokenizer: Tokenizer) -> None:
    """New dictionaries or tokenizer: recompute the stored tokens (vectors stay)."""
    tokens = {}
    for row in store.chunk_passages():
        title, text = bench.corpus.get(row["doc_id"], ("", ""))
        tokens[row["chunk_id"]] = tokenizer.tokenize_passage(text if text.strip() else title, title)
    store.set_tokens(tokens)


# -- running ----------------------------------------------------------------
def run_queries(searcher: Searcher, bench: Bench, mode: str, depth: int = RUN_DEPTH
                ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """({query-id: [corpus-id, …] best first}, {query-id: why it could not run}) for the qrels queries."""
    run: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    for qid in bench.qrels:
        try:
            hits = searcher.search(bench.queries[qid], top_k=depth, mode=mode)
        except InvalidQuery as exc:
            failed[qid] = exc.user_message()
            run[qid] = []
            continue
        ranked: list[str] = []
        for hit in hits:
            for doc_id in (hit.doc_id, *hit.duplicates):  # a grouped duplicate is as good a find
                if doc_id not in ranked:
                    ranked.append(doc_id)
        run[qid] = ranked[:depth]
    return run, failed


def evaluate(bench_dir: str | os.PathLike | Bench, embedder: Embedder, *, mode: str = "hybrid",
             cache_root: Path | None = None, searcher_options: dict | None = None,
             run_path: Path | None = None, progress: Callable[[int, int], None] | None = None,
             database: str | None = None) -> EvalReport:
    """Build or reuse the cached index of `bench_dir` (rows in the PostgreSQL `database` when
    given), run its queries in `mode`, score them."""
    if mode not in MODES:
        raise BenchError(f"未知检索方式 {mode}", hint="可选 " + " / ".join(MODES))
    bench = bench_dir if isinstance(bench_dir, Bench) else load_bench(bench_dir)
    extra = [bench.folder / "userdict.txt"]
    tokenizer = Tokenizer(extra_dicts=extra)
    started = time.perf_counter()
    store = ensure_index(bench, embedder, tokenizer, cache_root, progress, database)
    indexed = time.perf_counter()
    searcher = Searcher(store, embedder, tokenizer, **(searcher_options or {}))
    run, failed = run_queries(searcher, bench, mode)
    finished = time.perf_counter()
    if run_path is not None:
        write_run(run, Path(run_path))
    store.close()
    return EvalReport(mode=mode, metrics=score_run(bench.qrels, run), queries=len(bench.qrels), bench=bench.name,
                      model=embedder.name, settings=searcher.settings(), failed_queries=failed,
                      seconds={"index": round(indexed - started, 1), "queries": round(finished - indexed, 1)})


def write_run(run: dict[str, list[str]], path: Path) -> None:
    """A TREC run file (`qid Q0 docid rank score tag`) that `score.py` reads."""
    lines = [f"{qid} Q0 {doc_id} {rank} {RUN_DEPTH - rank + 1} kb"
             for qid, ranked in run.items() for rank, doc_id in enumerate(ranked, start=1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def stderr_progress(label: str) -> Callable[[int, int], None]:
    """A plain progress line on stderr (embedding a large corpus takes minutes)."""
    started = time.perf_counter()
    baseline: dict[str, int] = {}

    def report(done: int, total: int) -> None:
        base = baseline.setdefault("done", done)  # the first call reports what was cached already
        rate = (done - base) / max(time.perf_counter() - started, 1e-6)
        print(f"\r{label}：已嵌入 {done}/{total} 段（{rate:.0f} 段/秒）", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)

    return report
