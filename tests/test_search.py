"""Hybrid search: modes, fusion, filters before ranking, minimum relevance, duplicates, bad queries."""
import numpy as np
import pytest

from indexer.errors import InvalidQuery
from kb.cli import main
from kb.knowledge_base import KnowledgeBase
from kb.search import (MAX_QUERY_CHARS, MAX_WEAK_ONLY, Candidate, QueryPlan, SearchFilters, Searcher,
                       DenseCalibration, calibration_for, query_kind)

from .conftest import CASE


@pytest.fixture
def kb(mini_corpus, kb_home):
    base = KnowledgeBase(kb_home)
    base.index([mini_corpus])
    yield base
    base.close()


def titles(hits):
    return [h.title for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "dense"])
def test_every_mode_finds_the_meal_subsidy(kb, mode):
    hits = kb.search("老年助餐补贴", mode=mode)
    assert hits and hits[0].title == "青溪市社区助餐服务办法"
    assert hits[0].citation.formatted().startswith("《青溪市社区助餐服务办法》")


def test_unknown_mode_and_fusion_are_refused(kb):
    with pytest.raises(InvalidQuery, match="未知检索方式"):
        kb.search("助餐", mode="fuzzy")
    with pytest.raises(InvalidQuery, match="未知融合方式"):
        Searcher(kb.store, kb.embedder, kb.tokenizer, fusion="magic")


def test_doc_number_and_article_number_match_exactly(kb):
    hits = kb.search("青政发[2023]15号", mode="keyword")
    assert hits[0].title == "青溪市社区助餐服务办法"
    hits = kb.search("第四条", mode="keyword")
    assert hits[0].label.endswith("第四条")


def test_filters_apply_before_ranking(kb):
    hits = kb.search("茶产业 品牌", doc_types=["speech"])
    assert hits and all(h.doc_type == "speech" for h in hits)
    assert all(h.doc_type == "case" for h in kb.search("老年助餐补贴", doc_types=["case"]))
    assert kb.search("助餐", filters=SearchFilters(region="火星")) == []
    assert kb.search("助餐", filters=SearchFilters(date_from="2030-01-01")) == []


def test_in_force_and_date_filters(kb):
    hits = kb.search("助餐补贴", filters=SearchFilters(in_force_only=True, date_from="2023-01-01",
                                                  date_to="2023-12-31"))
    assert titles(hits) and set(titles(hits)) == {"青溪市社区助餐服务办法"}


@pytest.mark.parametrize("query, message", [
    ("", "为空"), ("   \n ", "为空"), ("的是怎么", "停用词"), ("请问", "停用词"),
    ("助餐" * (MAX_QUERY_CHARS // 2 + 1), "过长"), ("x" * 10_000, "过长"),
])
def test_bad_queries_give_clear_errors(kb, query, message):
    with pytest.raises(InvalidQuery, match=message) as info:
        kb.search(query)
    assert info.value.hint


def test_absent_subject_returns_nothing_or_a_few_weak_hits(kb):
    hits = kb.search("量子计算机芯片散热设计")
    assert len(hits) <= MAX_WEAK_ONLY and all(h.weak for h in hits)


def test_relevant_hits_are_not_marked_weak(kb):
    hits = kb.search("多式联运")
    assert hits[0].title == "南塘港公铁水联运模式" and not hits[0].weak
    assert "多式联运" in hits[0].matched_terms


def test_near_duplicates_are_grouped_under_one_hit(kb, mini_corpus):
    (mini_corpus / "南塘港案例副本.txt").write_text(CASE, encoding="utf-8")
    kb.index([mini_corpus])
    hits = kb.search("多式联运中心 集装箱班列", top_k=10)
    texts = [h.text for h in hits]
    assert len(texts) == len(set(texts))
    assert any(h.duplicates for h in hits)


def test_query_kind_follows_length_and_wording():
    assert query_kind("放管服") == "keywords"
    assert query_kind("银发经济 一老一小") == "keywords"
    assert query_kind("我想知道家里老人在社区吃饭有没有补贴？") == "question"


def test_weights_lean_by_query_kind_unless_configured(kb):
    searcher = Searcher(kb.store, kb.embedder, kb.tokenizer)
    short = QueryPlan("放管服", ["放管服"], "keywords")
    long = QueryPlan("老人吃饭有补贴吗", ["老人"], "question")
    assert searcher.weights(short)[0] > searcher.weights(short)[1]
    assert searcher.weights(long)[0] < searcher.weights(long)[1]
    fixed = Searcher(kb.store, kb.embedder, kb.tokenizer, keyword_weight=2.0, dense_weight=1.0)
    assert fixed.weights(long) == (2.0, 1.0)


def test_rrf_fusion_still_available(kb):
    searcher = Searcher(kb.store, kb.embedder, kb.tokenizer, fusion="rrf")
    hits = searcher.search("老年助餐补贴")
    assert hits[0].title == "青溪市社区助餐服务办法"
    assert searcher.settings()["fusion"] == "rrf"


def test_search_never_rebuilds_the_keyword_index(kb, monkeypatch):
    from indexer.keywords import KeywordIndex

    kb.search("助餐")  # loads the published index

    def refuse(*args, **kwargs):
        raise AssertionError("bm25 index rebuilt at query time")

    monkeypatch.setattr(KeywordIndex, "build", classmethod(refuse))
    fresh = Searcher(kb.store, kb.embedder, kb.tokenizer)
    assert fresh.search("助餐")


def test_calibration_knows_the_model_families():
    assert calibration_for("multilingual-e5-small@onnx-int8").floor >= 0.75
    assert calibration_for("hashing:64").floor < 0.5


def test_a_model_s_recorded_calibration_wins_over_its_name(kb, monkeypatch):
    """A tuned e5 model spreads its cosines differently; `kb tune` records its levels and the search uses them."""
    assert calibration_for("e5-tuned", recorded={"floor": 0.68, "confident": 0.82}) == DenseCalibration(0.68, 0.82)
    for broken in ({}, {"floor": 0.9, "confident": 0.8}, {"floor": "x", "confident": 0.8}, {"floor": 2, "confident": 3}):
        assert calibration_for("e5-tuned", recorded=broken) == calibration_for("e5")  # unusable: by name
    monkeypatch.setattr(kb.embedder, "calibration", {"floor": 0.11, "confident": 0.22}, raising=False)
    searcher = Searcher(kb.store, kb.embedder, kb.tokenizer)
    assert (searcher.min_dense_score, searcher.confident_dense_score) == (0.11, 0.22)
    chosen = Searcher(kb.store, kb.embedder, kb.tokenizer, min_dense_score=0.3)  # settings.toml still wins
    assert chosen.min_dense_score == 0.3 and chosen.confident_dense_score == 0.22


def test_cli_filter_matching_nothing_says_so(kb, capsys):
    code = main(["search", "助餐", "--home", str(kb.home), "--region", "火星"])
    out = capsys.readouterr().out
    assert code == 0 and "筛选" in out


def test_cli_weak_hits_are_marked(kb, capsys):
    main(["search", "量子计算机芯片散热设计", "--home", str(kb.home)])
    out = capsys.readouterr().out
    assert "没有找到" in out or "弱相关" in out


def test_approximate_index_beyond_the_exact_limit_is_recorded_and_searchable(mini_corpus, kb_home, monkeypatch):
    import indexer.store as store_mod

    monkeypatch.setattr(store_mod, "APPROXIMATE_FROM", 3)
    base = KnowledgeBase(kb_home)
    base.index([mini_corpus])
    assert base.store.read_manifest()["dense_index"].startswith("ivf")
    assert base.search("老年助餐补贴")[0].title == "青溪市社区助餐服务办法"
    assert base.searcher.settings()["dense_index"].startswith("ivf")
    base.close()


def test_amended_text_ranks_below_the_text_in_force(kb, mini_corpus):
    from .conftest import REGULATION

    old = (REGULATION.replace("青政发〔2023〕15号", "青政发〔2019〕3号").replace("现行有效", "已修订")
           .replace("每餐补贴三元", "每餐补贴二元"))
    (mini_corpus / "旧版助餐办法.txt").write_text(old.replace("青溪市社区助餐服务办法", "青溪市社区助餐服务暂行办法"),
                                                encoding="utf-8")
    kb.index([mini_corpus])
    hits = [h for h in kb.search("八十周岁以上老年人每餐补贴", top_k=5) if "第三条" in h.label]
    assert [h.citation.validity for h in hits[:2]] == ["in_force", "amended"]
    assert hits[0].score > hits[1].score


def test_best_sentence_reorders_the_head_only(kb, monkeypatch):
    searcher = kb.searcher
    dim = kb.embedder.dim
    query = np.zeros(dim, dtype=np.float32)
    query[0] = 1.0
    sentences = np.zeros((2, dim), dtype=np.float32)
    sentences[1, 0] = 1.0  # chunk 2's second sentence is exactly the question
    monkeypatch.setattr(kb.store, "sentence_vectors", lambda ids, d: {2: ([(10, 20), (20, 30)], sentences)})
    monkeypatch.setattr("kb.search.RERANK_DEPTH", 3)
    cands = [Candidate(1, score=0.9, dense_score=0.3), Candidate(2, score=0.8, dense_score=0.3),
             Candidate(3, score=0.5, dense_score=0.2), Candidate(4, score=0.4, dense_score=0.95)]
    searcher._sentence_rerank(cands, query)
    order = sorted(cands, key=lambda c: -c.score)
    assert [c.chunk_id for c in order] == [2, 1, 3, 4]
    assert order[0].focus == (20, 30) and order[0].sentence_score == pytest.approx(1.0)
    assert all(0.5 <= c.score <= 0.9 for c in order[:3])  # the head keeps its range
    assert order[3].score == 0.4 and order[3].sentence_score is None  # beyond the head: untouched


def test_hits_mark_the_sentence_that_answers(kb):
    hits = kb.search("全市茶园面积稳定在多少万亩")
    speech = next(h for h in hits if h.title == "在全市茶产业发展大会上的讲话")
    assert speech.focus_text() == "过去三年，全市茶园面积稳定在十二万亩，茶叶产值突破四十亿元。"
    assert speech.as_dict()["focus_text"] == speech.focus_text()
    plain = Searcher(kb.store, kb.embedder, kb.tokenizer, sentence_weight=0).search("全市茶园面积稳定在多少万亩")
    assert all(h.focus is None for h in plain)
