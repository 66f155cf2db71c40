"""`kb eval`: reading BEIR folders, caching the index, scoring like score.py, clear errors."""
import importlib.util
import json
from pathlib import Path

import pytest

from indexer.embedding import HashingEmbedder
from kb.cli import main
from kb.evaluation import BenchError, evaluate, load_bench, score_run

from .conftest import REPO, SHARED_BENCH

PASSAGES = {
    "p1": ("社区助餐服务办法", "第三条 对八十周岁以上老年人每餐补贴三元，对低保老年人每餐补贴五元。"),
    "p2": ("社区助餐服务办法", "第四条 助餐点应当严格落实食品安全责任，每日留样四十八小时。"),
    "p3": ("茶产业发展讲话", "打响青溪白茶区域公用品牌，推进茶旅融合，建设数字茶园。"),
    "p4": ("南塘港联运模式", "建设多式联运中心，开通至上海港的集装箱班列，物流成本下降。"),
    "p5": ("村民议事会规程", "村民议事会由村民代表组成，讨论村内公共事务。"),
}
QUERIES = {"q1": "老年人吃饭有补贴吗？", "q2": "助餐点的食品安全怎么管", "q3": "茶叶品牌",
           "q4": "集装箱班列", "q9": "没有判断的问题"}
QRELS = [("q1", "p1", 1), ("q2", "p2", 1), ("q3", "p3", 2), ("q4", "p4", 1)]


def write_bench(folder: Path, passages=PASSAGES, queries=QUERIES, qrels=QRELS) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for pid, (title, text) in passages.items():
            fh.write(json.dumps({"_id": pid, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def bench(tmp_path):
    return write_bench(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _eval_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_EVAL_CACHE", str(tmp_path / "eval-cache"))


class CountingEmbedder(HashingEmbedder):
    def __init__(self):
        super().__init__(64)
        self.passages_embedded = 0

    def embed_passages(self, texts, batch_size=32, show_progress=False):
        self.passages_embedded += len(texts)
        return super().embed_passages(texts, batch_size, show_progress)


def test_load_bench_reads_all_three_files(bench):
    data = load_bench(bench)
    assert len(data.corpus) == 5 and data.qrels["q3"] == {"p3": 2}
    assert "q9" not in data.qrels  # no judgement: not scored


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "dense"])
def test_evaluate_scores_every_mode(bench, mode):
    report = evaluate(bench, HashingEmbedder(64), mode=mode)
    assert set(report.as_json()) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "queries", "mode"}
    assert report.queries == 4 and report.mode == mode
    assert report.metrics["recall@100"] > 0.5


def test_index_is_cached_and_only_resegmented_when_dictionaries_change(bench):
    embedder = CountingEmbedder()
    evaluate(bench, embedder)
    assert embedder.passages_embedded == 5
    evaluate(bench, embedder, mode="keyword")
    assert embedder.passages_embedded == 5
    (bench / "userdict.txt").write_text("白茶品牌 20 n\n", encoding="utf-8")
    evaluate(bench, embedder)
    assert embedder.passages_embedded == 5


def test_changed_corpus_gets_its_own_index(bench):
    embedder = CountingEmbedder()
    evaluate(bench, embedder)
    write_bench(bench, passages={**PASSAGES, "p6": ("新文件", "冷链物流")})
    evaluate(bench, embedder)
    assert embedder.passages_embedded == 5 + 6


def test_scores_match_the_reference_scorer(bench, tmp_path):
    scorer = SHARED_BENCH / "score.py"
    if not scorer.exists():
        pytest.skip("../shared/bench/score.py not present")
    spec = importlib.util.spec_from_file_location("reference_score", scorer)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    run_file = tmp_path / "run.trec"
    report = evaluate(bench, HashingEmbedder(64), run_path=run_file)
    expected = reference.score(reference.read_qrels(bench / "qrels" / "test.tsv"), reference.read_run(run_file))
    assert {k: expected[k] for k in report.metrics} == report.metrics


def test_score_run_by_hand():
    qrels = {"a": {"x": 1}, "b": {"y": 1, "z": 1}}
    metrics = score_run(qrels, {"a": ["x"], "b": ["n", "y"]})
    assert metrics["mrr@10"] == pytest.approx((1 + 0.5) / 2, abs=1e-4)
    assert metrics["recall@10"] == pytest.approx((1 + 0.5) / 2, abs=1e-4)


def test_missing_files_are_named(tmp_path):
    folder = write_bench(tmp_path / "broken")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(BenchError, match="queries.jsonl"):
        load_bench(folder)
    with pytest.raises(BenchError, match="不存在"):
        load_bench(tmp_path / "nowhere")


def test_ids_that_do_not_match_are_reported(tmp_path):
    folder = write_bench(tmp_path / "mismatch", qrels=QRELS + [("q1", "p404", 1), ("q77", "p1", 1)])
    with pytest.raises(BenchError) as info:
        load_bench(folder)
    assert "p404" in str(info.value) and "q77" in str(info.value)


def test_malformed_line_is_located(tmp_path):
    folder = write_bench(tmp_path / "bad")
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(BenchError, match="第 6 行"):
        load_bench(folder)


def test_unusable_queries_score_zero_and_are_listed(tmp_path):
    queries = {**QUERIES, "q1": "   ", "q2": "的是怎么", "q3": "茶" * 10_000}
    folder = write_bench(tmp_path / "odd", queries=queries)
    report = evaluate(folder, HashingEmbedder(64))
    assert set(report.failed_queries) == {"q1", "q2", "q3"}
    assert report.queries == 4


def test_cli_eval_json_has_exactly_the_documented_keys(bench, capsys):
    code = main(["eval", str(bench), "--mode", "keyword", "--json", "--model", "hashing:64"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(out) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "queries", "mode"}
    assert out["mode"] == "keyword" and out["queries"] == 4


def test_cli_eval_text_and_errors(bench, tmp_path, capsys):
    assert main(["eval", str(bench), "--model", "hashing:64"]) == 0
    out = capsys.readouterr().out
    assert "nDCG@10" in out and "最贴切句子权重 1）" in out
    assert main(["eval", str(bench), "--model", "hashing:64", "--fusion", "rrf", "--sentence-weight", "0"]) == 0
    assert "（融合 rrf，最贴切句子权重 0）" in capsys.readouterr().out
    (bench / "qrels" / "test.tsv").unlink()
    assert main(["eval", str(bench), "--model", "hashing:64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("错误：") and "qrels/test.tsv" in err and "Traceback" not in err


@pytest.mark.slow
def test_stard_mini_hybrid_beats_both_single_modes_and_plain_rrf_with_the_real_model():
    """Hybrid above keyword and dense alone and above plain RRF, on stard-mini with the real model.

    Issue 4 asks for 0.75; this pipeline measures 0.731 (docs/search.md; 40 questions,
    so one question's articles trading places moves it by ~0.01), so the floor below
    guards against regressions rather than certifying the target. "Plain RRF" is what
    the common stacks do: reciprocal ranks and nothing after.
    """
    bench_dir = SHARED_BENCH / "stard-mini"
    model = REPO / "models" / "multilingual-e5-small"
    if not (bench_dir / "corpus.jsonl").exists():
        pytest.skip("../shared/bench/stard-mini not present")
    if not (model / "config.json").exists():
        pytest.skip("model folder not built (make setup)")
    from indexer.embedding import load_embedder

    embedder = load_embedder(str(model))
    bench = load_bench(bench_dir)
    scores = {mode: evaluate(bench, embedder, mode=mode).metrics["ndcg@10"] for mode in ("keyword", "dense", "hybrid")}
    scores["rrf"] = evaluate(bench, embedder, searcher_options={"fusion": "rrf", "sentence_weight": 0}
                             ).metrics["ndcg@10"]
    assert scores["hybrid"] > max(scores["keyword"], scores["dense"], scores["rrf"]), scores
    assert scores["hybrid"] >= 0.72, scores


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_the_same_figures_on_postgresql(bench, tmp_path, mode):
    from .pg_server import server

    database = server().new_database()
    on_sqlite = evaluate(bench, HashingEmbedder(64), mode=mode, run_path=tmp_path / "sqlite.run")
    on_postgres = evaluate(bench, HashingEmbedder(64), mode=mode, run_path=tmp_path / "pg.run", database=database)
    assert on_postgres.metrics == on_sqlite.metrics and on_sqlite.metrics["ndcg@10"] > 0
    assert (tmp_path / "pg.run").read_text() == (tmp_path / "sqlite.run").read_text()
    counting = CountingEmbedder()  # the rows stay in the database: a second run embeds nothing
    assert evaluate(bench, counting, mode=mode, database=database).metrics == on_sqlite.metrics
    assert counting.passages_embedded == 0


def test_eval_refuses_a_database_holding_something_else(bench, tmp_path, capsys):
    from .pg_server import server

    database = server().new_database()
    evaluate(bench, HashingEmbedder(64), database=database)
    other = write_bench(tmp_path / "other", passages={"x1": ("别的文件", "冷链物流")}, queries={"q1": "冷链"},
                        qrels=[("q1", "x1", 1)])
    code = main(["eval", str(other), "--database", database, "--model", "hashing:64"])
    assert code != 0
    assert "不属于评测集 other 的文档" in capsys.readouterr().err
