"""indexer/embedding.py: the embedder interface, its dispatch and the fast ONNX backend."""
from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.embedding import HashingEmbedder, SentenceTransformerEmbedder, load_embedder
from indexer.errors import KBError, ModelNotAvailable


# --- fast ----------------------------------------------------------------------

def test_hashing_is_deterministic_and_unit_length():
    first = HashingEmbedder(64).embed_passages(["请你来协商", "双月座谈会 2024"])
    again = HashingEmbedder(64).embed_passages(["请你来协商", "双月座谈会 2024"])
    np.testing.assert_array_equal(first, again)
    assert first.shape == (2, 64) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    query = HashingEmbedder(64).embed_query("请你来协商")
    assert query.shape == (64,)
    np.testing.assert_allclose(query, first[0])


def test_hashing_empty_inputs():
    embedder = HashingEmbedder(32)
    assert embedder.embed_passages([]).shape == (0, 32)
    assert embedder.embed_passages([]).dtype == np.float32
    assert not embedder.embed_query("   ").any()  # nothing to hash: a zero vector, not NaN


def test_load_embedder_dispatch():
    assert isinstance(load_embedder("hashing"), HashingEmbedder)
    assert load_embedder("hashing").dim == 256
    embedder = load_embedder("hashing:48")
    assert (embedder.dim, embedder.name) == (48, "hashing:48")


def test_load_embedder_rejects_a_malformed_spec():
    with pytest.raises(ModelNotAvailable) as info:
        load_embedder("hashing:abc")
    assert info.value.hint


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailable) as info:
        load_embedder(str(tmp_path / "no-such-model"))
    error = info.value
    assert isinstance(error, KBError)
    assert "no-such-model" in str(error)
    assert "model_setup" in error.hint or "make setup" in error.hint
    assert error.hint in error.user_message()


def test_unknown_backend_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    with pytest.raises(ModelNotAvailable, match="后端"):
        SentenceTransformerEmbedder(tmp_path, backend="tensorrt")


def test_onnx_backend_without_export_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    with pytest.raises(ModelNotAvailable, match="onnx"):
        SentenceTransformerEmbedder(tmp_path, backend="onnx-int8")


# --- slow: the real model, fp32 vs int8 ONNX ----------------------------------------

# Realistic 200–500-character chunks: recombined policy-style sentences.
_SENTENCES = [
    "全国政协十四届常委会第五次会议于2024年1月在北京召开，围绕推进乡村全面振兴开展专题协商。",
    "市政协坚持把“请你来协商”平台建设作为履职创新的重要抓手，推动协商议政向基层延伸。",
    "2023年全市地区生产总值达到1,286.5亿元，同比增长6.2%，高于全省平均水平0.4个百分点。",
    "双月座谈会聚焦养老服务体系建设，与会委员就老年助餐点布局、运营补贴和服务质量提出意见建议。",
    "各界别委员深入30多个乡镇开展专题调研，形成调研报告12篇，提出具体建议86条。",
    "根据《中国人民政治协商会议章程》和有关规定，常委会工作报告提请全体会议审议。",
    "推动数字茶园建设，到2025年建成省级数字农业工厂5家、示范基地20个，茶叶综合产值突破100亿元。",
    "乡村议事会由村民代表、乡贤、政协委员等组成，每季度至少召开一次，重大事项须经议事会协商。",
    "委员们指出，冷链物流设施短板明显，建议统筹布局产地预冷、冷藏运输和城市配送网络。",
    "提案办理实行“面商”制度，承办单位主要负责同志须与提案人当面沟通，办复满意率达98.7%。",
    "专家论证认为，公铁水联运模式可将集装箱综合运输成本降低约15%，碳排放减少20%以上。",
    "ESG信息披露、碳足迹核算等新要求，对出口型茶企提出了更高的标准化管理要求。",
]


def _chunks(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    chunks = []
    for _ in range(n):
        target = int(rng.integers(200, 501))
        text = ""
        while len(text) < target:
            text += _SENTENCES[int(rng.integers(len(_SENTENCES)))]
        chunks.append(text[:target])
    return chunks


@pytest.fixture(scope="session")
def e5_model_dir():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sentence_transformers")
    from indexer.model_setup import DEFAULT_MODEL_DIR, build_default_model

    return build_default_model(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="session")
def both_backends(e5_model_dir):
    return (SentenceTransformerEmbedder(e5_model_dir, backend="torch"),
            SentenceTransformerEmbedder(e5_model_dir, backend="onnx-int8"))


@pytest.mark.slow
def test_auto_picks_onnx_and_names_differ(e5_model_dir, both_backends):
    fp32, fast = both_backends
    auto = SentenceTransformerEmbedder(e5_model_dir)
    assert auto.backend == "onnx-int8" and auto.name == fast.name
    assert fp32.name == "multilingual-e5-small"
    assert fast.name == "multilingual-e5-small@onnx-int8"
    assert fp32.dim == fast.dim == 384


@pytest.mark.slow
def test_onnx_passages_close_to_fp32(both_backends):
    fp32, fast = both_backends
    chunks = _chunks(12)
    ref, got = fp32.embed_passages(chunks), fast.embed_passages(chunks, batch_size=4)
    assert got.shape == (12, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert np.sum(ref * got, axis=1).min() >= 0.99


@pytest.mark.slow
def test_onnx_long_passage_truncates_like_fp32(both_backends):
    fp32, fast = both_backends
    long_text = "".join(_SENTENCES) * 3  # > 512 tokens: both keep the first 512
    assert float(fp32.embed_passages([long_text])[0] @ fast.embed_passages([long_text])[0]) >= 0.99


@pytest.mark.slow
def test_onnx_vector_does_not_depend_on_neighbours(both_backends):
    # dynamic int8 scales per call: batching would make vectors depend on the batch
    _, fast = both_backends
    chunks = _chunks(6, seed=2)
    one_by_one = np.stack([fast.embed_passages([c])[0] for c in chunks])
    np.testing.assert_allclose(fast.embed_passages(chunks, batch_size=32), one_by_one, atol=1e-6)


@pytest.mark.slow
def test_onnx_query_close_to_fp32(both_backends):
    fp32, fast = both_backends
    for query in ("乡村议事会怎么运行", "老年助餐补贴标准是多少", "长三角物流枢纽 2024"):
        vec = fast.embed_query(query)
        assert vec.shape == (384,)
        assert float(vec @ fp32.embed_query(query)) >= 0.99


@pytest.mark.slow
def test_show_progress_draws_a_bar(both_backends, capsys):
    _, fast = both_backends
    fast.embed_passages(_chunks(3), show_progress=True)
    assert "3/3" in capsys.readouterr().err
    fast.embed_passages(_chunks(3))
    assert capsys.readouterr().err == ""
