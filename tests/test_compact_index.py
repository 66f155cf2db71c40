"""The compact knowledge base (issue 16): stored vector and token forms, the BM25 files, the
dense index chosen by size, and knowledge bases written in the earlier formats."""
from __future__ import annotations

import json
import shutil
import zlib

import numpy as np
import pytest

from indexer.keywords import BM25_B, BM25_K1, KeywordIndex, Tokenizer, char_grams, is_word
from kb.knowledge_base import KnowledgeBase
from kb.maintenance import check
from kb.search import SearchFilters
from kb.storage.documents import (decode_vector, encode_vector, pack_sentence_vectors,
                                  unpack_sentence_vectors)

from .test_storage_backends import backend  # noqa: F401  (the sqlite / postgresql parameter)

QUERIES = ("老年助餐 补贴标准", "茶产业 品牌", "多式联运 集装箱班列", "食品安全 留样", "请问老人吃饭有补贴吗")


def _unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _results(kb: KnowledgeBase, mode: str = "hybrid") -> dict:
    return {q: [(h.chunk_id, round(h.score, 4), h.focus) for h in kb.search(q, top_k=5, mode=mode)]
            for q in QUERIES}


def _assert_same(got: dict, expected: dict, tolerance: float = 1e-3) -> None:
    """The same hits in the same order with the same focus sentence; scores within `tolerance`
    (float16 rows and 4-bit rows of the same vectors differ in the fourth decimal)."""
    assert got.keys() == expected.keys()
    for query in expected:
        assert [(c, f) for c, _, f in got[query]] == [(c, f) for c, _, f in expected[query]], query
        assert np.allclose([s for _, s, _ in got[query]], [s for _, s, _ in expected[query]], atol=tolerance)


# -- stored forms -------------------------------------------------------------
def _sentences_of(chunk: np.ndarray, n: int, seed: int = 2) -> np.ndarray:
    """Sentence vectors as a model gives them: near their chunk's vector (cosines about 0.9)."""
    noise = _unit(n, len(chunk), seed=seed) * 0.5
    return (chunk + noise) / np.linalg.norm(chunk + noise, axis=1, keepdims=True)


def _four_bit_rows(vectors: np.ndarray) -> bytes:
    """The sentence-vector form of the first compact knowledge bases: a float16 scale and 4-bit steps a row."""
    scale = np.maximum(np.abs(vectors).max(axis=1, keepdims=True), 1e-12) / 7.0
    steps = (np.clip(np.rint(vectors / scale), -7, 7) + 8).astype(np.uint8)
    if vectors.shape[1] % 2:
        steps = np.hstack([steps, np.full((len(vectors), 1), 8, dtype=np.uint8)])
    return np.hstack([scale.astype(np.float16).view(np.uint8), (steps[:, 0::2] << 4) | steps[:, 1::2]]).tobytes()


@pytest.mark.parametrize("dim", [384, 33])
def test_sentence_vectors_as_five_bit_residuals_keep_the_cosine(dim):
    """Stored as their difference from the chunk's own (float16) vector in 5 bits: the cosine within
    about 0.001 on average, a third of the error of 4 bits of the vector itself (stard nDCG@10 −0.008)."""
    chunk = decode_vector(encode_vector(_unit(1, dim)[0]), dim)
    vectors = _sentences_of(chunk, 12)
    blob = pack_sentence_vectors(vectors, chunk)
    assert len(blob) == 1 + 12 * (2 + (5 * dim + 7) // 8)  # a marker, then a scale and 5 bits a dimension a row
    back = unpack_sentence_vectors(blob, 12, dim, chunk)
    assert back.shape == (12, dim) and np.allclose(np.linalg.norm(back, axis=1), 1, atol=1e-5)
    queries = _unit(20, dim, seed=1)
    tolerance = 0.006 if dim >= 256 else 0.03  # few dimensions each carry more of the cosine
    assert np.abs(back @ queries.T - vectors @ queries.T).max() < tolerance
    four_bit = unpack_sentence_vectors(_four_bit_rows(vectors), 12, dim)
    assert np.abs(back @ queries.T - vectors @ queries.T).mean() < np.abs(four_bit @ queries.T - vectors @ queries.T).mean() / 3
    with pytest.raises(ValueError):
        unpack_sentence_vectors(blob, 12, dim)  # the residuals mean nothing without their chunk vector


def test_sentence_vectors_written_before_are_still_read():
    vectors = _unit(5, 64)
    old = vectors.astype(np.float16).tobytes()  # before issue 16
    assert np.allclose(unpack_sentence_vectors(old, 5, 64, vectors[0]), vectors, atol=1e-3)
    four_bit = unpack_sentence_vectors(_four_bit_rows(vectors), 5, 64, vectors[0])  # the first compact form
    assert np.abs(np.sum(four_bit * vectors, axis=1) - 1).max() < 0.03


def test_chunk_vector_is_float16_and_float32_rows_still_read():
    vector = _unit(1, 384)[0]
    blob = encode_vector(vector)
    assert len(blob) == 2 * 384
    assert float(decode_vector(blob, 384) @ vector) > 0.9999
    assert np.array_equal(decode_vector(vector.tobytes(), 384), vector)  # a row written before


def test_database_keeps_words_and_publish_adds_the_grams(mini_corpus, kb_home, embedder):
    kb = KnowledgeBase(kb_home, embedder=embedder)
    kb.index([mini_corpus])
    rows = kb.store.conn.execute("SELECT c.tokens, c.words, d.title, substr(d.text, c.start + 1, c.end - c.start) "
                                 "AS p FROM chunks c JOIN documents d USING(doc_id)").fetchall()
    tokenizer = Tokenizer()
    for r in rows:
        assert r["tokens"] == ""
        text = zlib.decompress(bytes(r["words"])).decode("utf-8")
        assert len(bytes(r["words"])) < len(text.encode("utf-8"))
        stored = text.split(" ")
        assert all(is_word(t) for t in stored)
        full = tokenizer.tokenize_passage(r["p"], r["title"])
        assert sorted(stored + char_grams(f"{r['title']} {r['p']}")) == sorted(full)  # nothing lost
    kb.close()


# -- BM25 files -----------------------------------------------------------------
def _corpus(n: int = 400) -> list[list[str]]:
    rng = np.random.default_rng(3)
    return [[f"t{int(x)}" for x in rng.zipf(1.4, size=rng.integers(0, 50)) if x < 500] for _ in range(n)]


def test_keyword_index_scores_as_bm25s_and_round_trips(tmp_path):
    import bm25s

    docs, ids = _corpus(), np.arange(400, dtype=np.int64) * 3 + 7
    index = KeywordIndex.build(docs, ids)
    reference = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    reference.index([d or ["\u2205"] for d in docs], show_progress=False)
    reference.save(str(tmp_path / "old"))
    np.save(tmp_path / "old" / "chunk_ids.npy", ids)
    old = KeywordIndex.load(tmp_path / "old")  # a generation bm25s wrote is still read
    index.save(tmp_path / "new")
    loaded = KeywordIndex.load(tmp_path / "new")
    for query in (["t1"], ["t2", "t7", "t400"], ["t1", "t1", "t30"], ["nothing"]):
        built, _ = index.scores(query)
        assert np.allclose(built, old.scores(query)[0], atol=1e-5)
        assert np.array_equal(built, loaded.scores(query)[0])
    assert list(loaded.search(["t2", "t7"], 5).ids) == list(old.search(["t2", "t7"], 5).ids)

    def size(folder):
        return sum(p.stat().st_size for p in folder.iterdir() if p.name != "chunk_ids.npy")

    assert size(tmp_path / "new") < 0.4 * size(tmp_path / "old")


def test_empty_keyword_index_round_trips(tmp_path):
    KeywordIndex.build([], []).save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    assert len(loaded) == 0 and len(loaded.search(["t1"], 5)) == 0


# -- a knowledge base in the earlier formats --------------------------------------
def report_chunks(kb: KnowledgeBase) -> int:
    return kb.store.counts()["chunks"]


def _to_old_format(kb: KnowledgeBase) -> None:
    """Rewrite every chunk as a knowledge base from before issue 16 stored it."""
    tokenizer = Tokenizer()
    rows = kb.store.conn.execute(
        "SELECT c.chunk_id, c.vector, c.sentences, c.sentence_vectors, d.title, "
        "substr(d.text, c.start + 1, c.end - c.start) AS p FROM chunks c JOIN documents d USING(doc_id)").fetchall()

    def work(conn):
        for r in rows:
            vector = decode_vector(bytes(r["vector"]), kb.embedder.dim).astype(np.float32).tobytes()
            spans = json.loads(r["sentences"])
            chunk = decode_vector(bytes(r["vector"]), kb.embedder.dim)
            sentences = (unpack_sentence_vectors(bytes(r["sentence_vectors"]), len(spans), kb.embedder.dim, chunk)
                         .astype(np.float16).tobytes() if spans else b"")
            tokens = " ".join(tokenizer.tokenize_passage(r["p"], r["title"]))
            conn.execute("UPDATE chunks SET vector=?, sentence_vectors=?, tokens=?, words=NULL WHERE chunk_id=?",
                         (vector, sentences, tokens, r["chunk_id"]))

    kb.store.db.write(work, what="测试")


def test_knowledge_base_in_the_earlier_formats_reads_and_republishes_the_same(
        backend, kb_home, mini_corpus, embedder):  # noqa: F811
    kb = KnowledgeBase(kb_home, embedder=embedder)
    kb.index([mini_corpus])
    compact = _results(kb)
    assert not any("旧格式" in fact for fact in check(kb_home).facts)
    _to_old_format(kb)
    assert len(bytes(kb.store.conn.execute("SELECT vector FROM chunks LIMIT 1").fetchone()[0])) == 4 * embedder.dim
    _assert_same(_results(KnowledgeBase(kb_home, embedder=embedder)), compact)  # the rows read as they are
    report = check(kb_home, repair=False)
    assert report.ok, report.problems
    assert any(f"{report_chunks(kb)} 个段落仍按旧格式存储" in fact for fact in report.facts)
    shutil.rmtree(kb_home / kb.store.read_manifest()["index_dir"])  # rebuilt from the old rows
    assert check(kb_home, repair=True).repaired
    _assert_same(_results(KnowledgeBase(kb_home, embedder=embedder)), compact)
    kb.close()


def test_doctor_names_the_coarse_sentence_rows_of_the_first_compact_form_and_rebuild_rewrites_them(
        backend, kb_home, mini_corpus, embedder):  # noqa: F811
    """The first compact knowledge bases kept 4 bits of each sentence vector, which cost stard 0.008
    nDCG@10; they still work, and the doctor says how many rows `kb index --rebuild` would rewrite."""
    kb = KnowledgeBase(kb_home, embedder=embedder)
    kb.index([mini_corpus])
    compact = _results(kb)
    rows = kb.store.conn.execute("SELECT chunk_id, vector, sentences, sentence_vectors FROM chunks "
                                 "WHERE length(sentence_vectors) > 0").fetchall()
    assert rows and all(bytes(r["sentence_vectors"])[0] == 5 for r in rows)  # written in the residual form
    assert not any("句向量" in fact for fact in check(kb_home).facts)

    def coarsen(conn):
        for r in rows:
            spans = json.loads(r["sentences"])
            exact = unpack_sentence_vectors(bytes(r["sentence_vectors"]), len(spans), embedder.dim,
                                            decode_vector(bytes(r["vector"]), embedder.dim))
            conn.execute("UPDATE chunks SET sentence_vectors=? WHERE chunk_id=?", (_four_bit_rows(exact), r["chunk_id"]))

    kb.store.db.write(coarsen, what="测试")
    report = check(kb_home, repair=False)
    assert report.ok and any(f"{len(rows)} 个段落的句向量" in fact and "--rebuild" in fact for fact in report.facts)
    assert not any("仍按旧格式存储" in fact for fact in report.facts)  # the rest of the row is compact
    assert [h.chunk_id for h in KnowledgeBase(kb_home, embedder=embedder).search("老年助餐 补贴标准", top_k=3)] \
        == [c for c, _, _ in compact["老年助餐 补贴标准"][:3]]  # still read
    kb.index([mini_corpus], rebuild=True)
    assert not any("句向量" in fact for fact in check(kb_home).facts)
    kb.close()


# -- the dense index by size ---------------------------------------------------------
def test_small_knowledge_base_gets_the_exhaustive_quantised_index(mini_corpus, kb_home, embedder):
    kb = KnowledgeBase(kb_home, embedder=embedder)
    kb.index([mini_corpus])
    assert kb.store.read_manifest()["dense_index"] == "flat_fp16"
    kb.close()


def test_approximate_index_above_the_threshold_gives_the_exact_results(mini_corpus, kb_home, tmp_path, embedder):
    exact_home = tmp_path / "exact"
    exact = KnowledgeBase(exact_home, embedder=embedder)
    exact.index([mini_corpus])
    approx = KnowledgeBase(kb_home, embedder=embedder)
    approx.store.files.approximate_from = 4  # a tiny threshold instead of a million chunks
    approx.index([mini_corpus])
    kind = approx.store.read_manifest()["dense_index"]
    assert kind.startswith("ivf") and kind.endswith("_fp16")
    for mode in ("dense", "hybrid"):
        assert [[c for c, _, _ in hits] for hits in _results(approx, mode).values()] == \
            [[c for c, _, _ in hits] for hits in _results(exact, mode).values()]
    only_cases = SearchFilters(doc_types=["case"])
    hits = approx.search("集装箱班列", mode="dense", filters=only_cases)
    assert hits and {h.doc_type for h in hits} == {"case"}
    exact.close()
    approx.close()


def test_doctor_repair_gives_identical_results(mini_corpus, kb_home, embedder):
    kb = KnowledgeBase(kb_home, embedder=embedder)
    kb.index([mini_corpus])
    before = {mode: _results(kb, mode) for mode in ("hybrid", "keyword", "dense")}
    folder = kb_home / kb.store.read_manifest()["index_dir"]
    (folder / "bm25" / "postings.npz").write_bytes(b"broken")
    (folder / "vectors.faiss").unlink()
    assert not check(kb_home).ok
    assert check(kb_home, repair=True).repaired
    again = KnowledgeBase(kb_home, embedder=embedder)
    assert {mode: _results(again, mode) for mode in ("hybrid", "keyword", "dense")} == before
    kb.close()
    again.close()


def test_inverted_file_reads_every_list_under_a_filter(monkeypatch):
    import indexer.store as store_mod
    from kb.search import dense_search_params

    monkeypatch.setattr(store_mod, "IVF_PROBE", 2)
    vectors, ids = _unit(4000, 32, seed=5), np.arange(4000, dtype=np.int64) * 2 + 1
    index, kind = store_mod.dense_index(vectors, ids, 32, approximate_from=1000)
    import faiss

    ivf = faiss.extract_index_ivf(index)
    assert kind == f"ivf{ivf.nlist}_fp16" and ivf.nprobe == 2 < ivf.nlist
    query = vectors[:50] + 0.05 * _unit(50, 32, seed=6)
    exact = np.argsort(-(query @ vectors.T), axis=1)[:, :10]
    found = index.search(query.astype(np.float32), 10)[1]
    assert np.mean([len(set(f) & set(ids[e])) / 10 for f, e in zip(found, exact)]) < 0.9  # 2 lists: approximate
    allowed = [int(i) for i in ids[::97]]  # 42 chunks spread over every list
    for q in query[:5]:
        scores, got = index.search(q.reshape(1, -1).astype(np.float32), 10, params=dense_search_params(index, allowed))
        assert set(got[0]) <= set(allowed)
        assert np.allclose(scores[0], np.sort(vectors[::97] @ q)[::-1][:10], atol=2e-3)  # the exact top 10


def _gram_corpus(n: int = 300) -> list[list[str]]:
    """Chunks of words and character grams; ·a and §ab are in most chunks, ·z in a few."""
    rng = np.random.default_rng(5)
    docs = []
    for _ in range(n):
        doc = [f"w{int(x)}" for x in rng.zipf(1.5, size=rng.integers(5, 40)) if x < 300]
        doc += ["\u00b7a"] * int(rng.integers(1, 4)) + ["\u00a7ab"] * int(rng.random() < 0.6)
        doc += ["\u00b7z"] * int(rng.random() < 0.03)
        docs.append(doc)
    return docs


def test_loaded_index_leaves_out_grams_it_never_reads_and_scores_the_same(tmp_path):
    docs = _gram_corpus()
    index = KeywordIndex.build(docs, np.arange(len(docs)))
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    common = sum("\u00b7a" in d for d in docs) + sum("\u00a7ab" in d for d in docs)
    assert loaded.entries == index.entries - common
    assert loaded.postings_bytes <= 5 * loaded.entries + 4 * len(docs)  # int32 row and byte tf; no float scores
    for query in (["w1", "\u00b7a", "\u00b7z"], ["w2", "w2", "\u00a7ab", "w40"], ["\u00b7a"], ["w1"]):
        built, built_cov = index.scores(query)
        scores, coverage = loaded.scores(query)
        assert np.array_equal(built, scores) and np.array_equal(built_cov, coverage)
        assert list(index.search(query, 20).ids) == list(loaded.search(query, 20).ids)
    assert not loaded.scores(["\u00b7a"])[0].any()  # skipped at query time, as before
    assert loaded.scores(["\u00b7z"])[0].any()


def test_scores_from_term_frequencies_equal_the_precomputed_bm25(tmp_path):
    """The loaded index computes BM25 at query time from byte term frequencies: the same float32
    values as the scores precomputed for every entry (the earlier form), so the same top k."""
    docs = _corpus()
    index = KeywordIndex.build(docs, np.arange(len(docs)))
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    df = np.diff(loaded._indptr)
    n = len(docs)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
    length = np.array([len(d or ["\u2205"]) for d in docs], dtype=np.float32)
    norm = (BM25_K1 * ((1 - BM25_B) + BM25_B * length / np.float32(length.mean()))).astype(np.float32)
    for query in (["t1", "t3"], ["t2", "t2", "t9", "t100"]):
        expected = np.zeros(n, dtype=np.float32)
        for token in query:
            tid = loaded._vocab[token]
            lo, hi = loaded._indptr[tid], loaded._indptr[tid + 1]
            tf = loaded._tf[lo:hi].astype(np.float32)
            expected[loaded._indices[lo:hi]] += 1.0 * (tf / (norm[loaded._indices[lo:hi]] + tf) * idf[tid])
        assert np.array_equal(loaded.scores(query)[0], expected)


def test_rows_are_decoded_the_same_across_blocks(tmp_path):
    from indexer.keywords import _decode_rows

    docs = _gram_corpus(120)
    index = KeywordIndex.build(docs, np.arange(len(docs)))
    index.save(tmp_path)
    with np.load(tmp_path / "postings.npz") as postings:
        gaps, tf = postings["gaps"], postings["tf"]
    escapes, keep = np.load(tmp_path / "escapes.npy"), ~index.skipped_terms()
    whole = _decode_rows(gaps, escapes, index._indptr, keep)
    assert np.array_equal(whole, index._indices[np.repeat(keep, np.diff(index._indptr))])
    for block in (1, 7, 100):
        assert np.array_equal(_decode_rows(gaps, escapes, index._indptr, keep, block=block), whole)
        assert np.array_equal(_decode_rows(gaps, escapes, index._indptr, keep, tf, block=block),
                              index._tf[np.repeat(keep, np.diff(index._indptr))])
