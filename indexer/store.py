"""The knowledge base's search files: generation folders, the manifest, the write lock.

Layout of `home/` (the database, `kb.sqlite`, is the source of truth and belongs to
`kb.storage`; everything here is derived from it and can be rebuilt from it):
    index-<gen>/         derived files of one generation: vectors.faiss, bm25/
    manifest.json        the published generation: schema, model, dimension, counts, file sizes and hashes
    .write.lock          held by the one process that may index

A generation is written into a temporary folder, renamed into place, and published by
atomically replacing `manifest.json`; readers only ever see a complete generation.
The previous generation is kept one publish longer, for readers that loaded its
manifest a moment before. Every file is written readable by its owner only.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import failpoints
from .errors import IndexDamaged, IndexLocked, IndexMismatch, IndexNotFound

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
# Dense index by size (docs/search.md, "An index a province can afford"): float16 vectors
# (half of float32; the same nDCG on stard-mini, where 8-bit codes moved dense nDCG@10 by
# +0.008). Up to APPROXIMATE_FROM chunks an exhaustive scan (about 8 ms per 100k chunks on one
# core); beyond, an inverted file of about 2·√n lists that reads IVF_PROBE of them per query
# (recall@10 0.995 against exact search at 300k chunks).
APPROXIMATE_FROM = 250_000
IVF_PROBE = 256
KEEP_GENERATIONS = 2


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder (mode 0600), fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_private(folder: Path) -> None:
    """Owner-only modes for a folder tree the knowledge base wrote (0700 folders, 0600 files)."""
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class DocumentRecord:
    """A document ready to be stored: metadata, normalised text and its chunks."""

    doc_id: str
    source: str
    file_hash: str
    text: str
    meta: dict
    chunks: list = field(default_factory=list)  # indexer.chunking.ChunkSpan
    tokens: list = field(default_factory=list)  # list[list[str]], one per chunk
    pages: list = field(default_factory=list)
    encoding: str | None = None


@dataclass
class Piece:
    """Chunks [lo, hi) of one record, embedded, ready to store; `first`/`last` open and close the document."""

    record: DocumentRecord
    lo: int
    hi: int
    first: bool
    last: bool
    vectors: np.ndarray | None = None
    sentences: list | None = None  # (spans, vectors) per chunk


def dense_index(vectors: np.ndarray, ids: np.ndarray, dim: int, approximate_from: int = APPROXIMATE_FROM):
    """(faiss index by chunk id, its kind) over unit `vectors`, inner product, chosen by size."""
    import faiss

    n = len(ids)
    fp16 = faiss.ScalarQuantizer.QT_fp16
    if n >= approximate_from:
        lists = max(1, min(int(2 * n ** 0.5), n // 40))
        base = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists, fp16, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.sort(np.random.default_rng(0).choice(n, min(n, 40 * lists), replace=False))]
        base.train(sample)
        base.nprobe = min(IVF_PROBE, lists)
        base.make_direct_map()  # reconstruct(id), for the cosines of keyword-only candidates
        kind = f"ivf{lists}_fp16"
    else:
        base = faiss.IndexScalarQuantizer(dim, fp16, faiss.METRIC_INNER_PRODUCT)
        kind = "flat_fp16"
    index = faiss.IndexIDMap2(base)
    if n:
        index.add_with_ids(vectors, ids)
    return index, kind


class IndexFiles:
    """The published search files of the knowledge-base folder `home`."""

    def __init__(self, home: str | os.PathLike, approximate_from: int | None = None):
        self.home = Path(home)
        # chunks from which the dense index is approximate; None: APPROXIMATE_FROM
        self.approximate_from = approximate_from

    # -- manifest -----------------------------------------------------------
    def read_manifest(self) -> dict | None:
        """The published manifest, None before the first publish; a damaged or foreign one raises."""
        path = self.home / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexDamaged(f"{path} 已损坏，无法读取（{type(exc).__name__}）",
                               hint="运行 kb doctor --repair 从数据库重建检索文件") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("generation"), int) \
                or not isinstance(manifest.get("index_dir"), str):
            raise IndexDamaged(f"{path} 内容不完整（缺少 generation / index_dir）",
                               hint="运行 kb doctor --repair 从数据库重建检索文件")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise IndexMismatch(f"{path} 的格式版本 {manifest.get('schema_version')!r} 本程序不认识（支持 {SCHEMA_VERSION}）",
                                hint="若由更新的版本写出请升级本程序；若已损坏，运行 kb doctor --repair 从数据库重建")
        return manifest

    def next_generation(self) -> int:
        """One above every generation on disk or in a readable manifest."""
        seen = [0]
        for path in self.home.glob("index-*"):
            suffix = path.name.removeprefix("index-")
            if suffix.isdigit():
                seen.append(int(suffix))
        try:
            seen.append(int((self.read_manifest() or {}).get("generation", 0)))
        except (IndexDamaged, IndexMismatch):
            pass
        return max(seen) + 1

    # -- writing a generation -----------------------------------------------
    def write_generation(self, ids: np.ndarray, vectors: np.ndarray, tokens: list[list[str]],
                         build_keyword_index: Callable, manifest: dict, generation: int | None = None) -> dict:
        """Build vectors.faiss and bm25/ for these chunks in a new generation and publish it.

        `manifest` carries the caller's fields (model, dimension, counts, content hashes…);
        generation, folder, index kind and the files' sizes and hashes are added here.
        `generation` numbers it (the database's count, or a replica's copy of a generation the
        database names; a folder of that number left by a run that never published is replaced),
        else one above every generation on disk."""
        import faiss

        dim = int(manifest["dimension"])
        generation = generation or self.next_generation()
        final_dir = self.home / f"index-{generation:06d}"
        work_dir = Path(tempfile.mkdtemp(prefix=".building-", dir=self.home))
        try:
            index, dense_kind = dense_index(np.ascontiguousarray(vectors, dtype=np.float32),
                                            np.asarray(ids, dtype=np.int64), dim,
                                            self.approximate_from or APPROXIMATE_FROM)
            faiss.write_index(index, str(work_dir / "vectors.faiss"))
            build_keyword_index(tokens, [int(i) for i in ids]).save(work_dir / "bm25")
            files = {str(p.relative_to(work_dir)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                     for p in sorted(work_dir.rglob("*")) if p.is_file()}
            make_private(work_dir)
            if final_dir.exists():  # left by a run that stopped before publishing it (or a damaged copy)
                shutil.rmtree(final_dir)
            os.replace(work_dir, final_dir)
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        failpoints.reached("generation-written")
        published = {"schema_version": SCHEMA_VERSION, "generation": generation, "index_dir": final_dir.name,
                     **manifest, "dense_index": dense_kind, "files": files,
                     "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.home / MANIFEST, json.dumps(published, ensure_ascii=False, indent=1))
        failpoints.reached("manifest-published")
        self._remove_old_generations(generation)
        return published

    def _remove_old_generations(self, current: int) -> None:
        for path in self.home.iterdir():
            if not path.is_dir():
                continue
            suffix = path.name.removeprefix("index-")
            old = suffix.isdigit() and int(suffix) <= current - KEEP_GENERATIONS
            if old or path.name.startswith(".building-"):
                shutil.rmtree(path, ignore_errors=True)

    # -- reading --------------------------------------------------------------
    def published(self) -> tuple[dict, Path]:
        """(manifest, folder) of the published generation, with its files present at their recorded sizes."""
        manifest = self.read_manifest()
        if manifest is None:
            raise IndexNotFound(f"{self.home} 里还没有索引", hint="先运行 kb index 文件夹")
        folder = self.home / manifest["index_dir"]
        if not folder.is_dir():
            raise IndexDamaged(f"索引文件夹 {folder} 不见了", hint="运行 kb doctor --repair 从数据库重建检索文件")
        for name, info in manifest.get("files", {}).items():
            path = folder / name
            size = path.stat().st_size if path.exists() else None
            if size != info["bytes"]:
                what = "不见了" if size is None else f"大小不对（应为 {info['bytes']} 字节，实际 {size} 字节）"
                raise IndexDamaged(f"索引文件 {path} {what}", hint="运行 kb doctor --repair 从数据库重建检索文件")
        return manifest, folder

    def load_published(self, model_name: str | None = None):
        """(manifest, faiss index, keyword index folder) of the published generation."""
        import faiss

        manifest, folder = self.published()
        if model_name is not None and manifest.get("model") != model_name:
            raise IndexMismatch(f"索引由模型 {manifest.get('model')} 生成，当前配置的模型是 {model_name}",
                                hint=f"改回 KB_MODEL={manifest.get('model')}，或用 kb index --rebuild 重建")
        path = folder / "vectors.faiss"
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            raise IndexDamaged(f"索引文件 {path} 无法读取（已损坏或被截断）",
                               hint="运行 kb doctor --repair 从数据库重建检索文件") from None
        return manifest, index, folder / "bm25"

    def verify(self) -> list[str]:
        """Problems with the published files, each one line; checks every file's hash."""
        try:
            manifest, folder = self.published()
        except IndexNotFound:
            return []
        except (IndexDamaged, IndexMismatch) as exc:
            return [str(exc)]
        problems = []
        for name, info in manifest.get("files", {}).items():
            if _sha256(folder / name) != info["sha256"]:
                problems.append(f"索引文件 {folder / name} 的内容与清单记录不符（已被改动或损坏）")
        return problems

    # -- locking ----------------------------------------------------------
    @contextmanager
    def write_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Exclusive lock for indexing; refuse (or wait up to `wait` seconds) if held."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.home / ".write.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fh = os.fdopen(fd, "r+")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    raise IndexLocked(f"另一个进程正在更新知识库 {self.home}",
                                      hint="等它完成后再运行，或加 --wait 秒数排队等待")
                time.sleep(0.2)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
