"""Chinese keyword search: segmentation, exact 文号/条 tokens, colloquial framing, bm25s on disk."""
import numpy as np
import pytest

from indexer.keywords import (BIGRAM, UNIGRAM, KeywordIndex, Tokenizer, is_word, strip_colloquial)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


def words(tokens):
    return [t for t in tokens if is_word(t)]


def test_domain_terms_stay_whole_and_stop_words_go(tokenizer):
    tokens = words(tokenizer.tokenize("关于开展请你来协商和双月座谈的通知"))
    assert "请你来协商" in tokens and "双月座谈" in tokens
    assert "的" not in tokens and "关于" not in tokens


def test_doc_number_and_article_are_exact_tokens(tokenizer):
    tokens = tokenizer.tokenize("根据青政发[2023]15号第十二条规定")
    assert "青政发〔2023〕15号" in tokens  # brackets normalised
    assert "第十二条" in tokens


def test_character_grams_are_marked_and_never_collide_with_words(tokenizer):
    tokens = tokenizer.tokenize("私堵通道")
    assert UNIGRAM + "堵" in tokens and BIGRAM + "私堵" in tokens
    assert not is_word(UNIGRAM + "堵")
    assert all(t.startswith((UNIGRAM, BIGRAM)) for t in tokens if not is_word(t))


def test_grams_can_be_switched_off(tokenizer):
    plain = Tokenizer(char_grams=False)
    assert all(is_word(t) for t in plain.tokenize("社区老年助餐服务"))
    assert plain.fingerprint != tokenizer.fingerprint


def test_colloquial_framing_is_stripped_from_queries():
    assert "请问" not in strip_colloquial("请问老年助餐补贴标准是什么？")
    assert "怎么办" not in strip_colloquial("邻居堵了通道该怎么办")
    assert strip_colloquial("请问") == "请问"  # nothing would be left: keep the original
    assert "吗啡" in strip_colloquial("吗啡属于麻醉药品吗？")  # particles only go at a clause end


def test_stop_word_only_query_has_no_words(tokenizer):
    assert words(tokenizer.tokenize_query("的是怎么")) == []
    assert words(tokenizer.tokenize_query("是否可以吗？")) == []


def test_user_dictionary_in_the_knowledge_base_changes_segmentation(tmp_path, tokenizer):
    custom = tmp_path / "userdict.txt"
    custom.write_text("青溪白茶 30 n\n", encoding="utf-8")
    with_dict = Tokenizer(extra_dicts=[custom])
    assert "青溪白茶" in with_dict.tokenize("打响青溪白茶品牌")
    assert with_dict.fingerprint != tokenizer.fingerprint


def test_index_saves_loads_and_scores_with_coverage(tmp_path, tokenizer):
    docs = ["老年助餐服务补贴标准", "茶产业区域公用品牌建设", "多式联运物流枢纽"]
    index = KeywordIndex.build([tokenizer.tokenize(d) for d in docs], [11, 12, 13])
    index.save(tmp_path / "bm25")
    loaded = KeywordIndex.load(tmp_path / "bm25")
    result = loaded.search(tokenizer.tokenize_query("老年助餐补贴"), k=5)
    assert result.ids[0] == 11 and result.coverage[0] == pytest.approx(1.0)
    scores, coverage = loaded.scores(tokenizer.tokenize_query("量子芯片 助餐"))
    assert 0 < coverage[0] < 1 and coverage[1] == 0
    allowed = loaded.rows_for([12, 13])
    assert 11 not in loaded.search(tokenizer.tokenize_query("老年助餐补贴"), 5, allowed).ids


def test_empty_index_loads_and_finds_nothing(tmp_path, tokenizer):
    KeywordIndex.build([], []).save(tmp_path / "bm25")
    loaded = KeywordIndex.load(tmp_path / "bm25")
    assert len(loaded.search(tokenizer.tokenize("助餐"), 10)) == 0
    assert loaded.scores(["助餐"])[0].shape == (0,)


def test_unknown_terms_give_no_scores(tokenizer):
    index = KeywordIndex.build([tokenizer.tokenize("老年助餐")], [1])
    scores, coverage = index.scores(["火星探测器"])
    assert np.all(scores == 0) and np.all(coverage == 0)


def test_lay_words_expand_to_official_ones(tokenizer):
    extra = tokenizer.expand_query("老人吃饭有补贴吗")
    assert "老年人" in extra and "助餐" in extra
    assert tokenizer.expand_query("告知义务") == []  # one-character lay words only as whole words
    assert tokenizer.expand_query("老年助餐") == []


def test_knowledge_base_synonyms_file_adds_groups(tmp_path):
    (tmp_path / "synonyms.txt").write_text("茶叶 白茶 茶产业\n", encoding="utf-8")
    local = Tokenizer(extra_dicts=[tmp_path / "userdict.txt"])
    assert "白茶" in local.expand_query("茶叶品牌")


def test_expansion_counts_half_and_not_toward_coverage(tokenizer):
    index = KeywordIndex.build([tokenizer.tokenize("配偶的债务"), tokenizer.tokenize("老婆饼的做法")], [1, 2])
    query = tokenizer.tokenize_query("老婆")
    plain, _ = index.scores(query)
    expanded, coverage = index.scores(query, tokenizer.expand_query("老婆"))
    assert plain[0] == 0 and 0 < expanded[0] < expanded[1]
    assert coverage[0] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_is_the_exact_k_best_with_ties_by_row(seed):
    """top() sorts only the rows that can be among the k best; the result is that of a full sort."""
    rng = np.random.default_rng(seed)
    n = 50_000
    index = KeywordIndex({}, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.arange(n) + 100)
    scores = np.round(rng.gamma(1.0, 2.0, n), 1).astype(np.float32)  # many equal scores
    scores[rng.random(n) < 0.3] = 0
    coverage = rng.random(n).astype(np.float32)
    allowed = rng.random(n) < 0.5
    for k, mask in ((10, None), (100, None), (100, allowed), (3, None), (n, None)):
        masked = scores if mask is None else np.where(mask, scores, 0)
        expected = sorted(np.flatnonzero(masked > 0), key=lambda r: (-masked[r], r))[:k]
        result = index.top(scores, coverage, k, mask)
        assert list(result.ids) == [r + 100 for r in expected]
        assert np.array_equal(result.coverage, coverage[expected])
