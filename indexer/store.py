"""The knowledge-base folder: SQLite (source of truth) + derived search files + manifest.

Layout of `home/`:
    kb.sqlite            documents, chunks (with their vectors and tokens), and the
                         tables the `kb` package adds (topics, packs, notes, audit)
    index-<gen>/         derived files of one generation: vectors.faiss, bm25/
    manifest.json        the published generation: schema, model, dimension, counts, hashes
    .write.lock          held by the one process that may index

Chunks are committed to SQLite document by document. The derived files are
rebuilt into a new generation folder and published by atomically replacing
`manifest.json`, so a process killed mid-index leaves the previous generation
loadable, and the next run picks up where it stopped.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import IndexLocked, IndexMismatch, IndexNotFound

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
DB_FILE = "kb.sqlite"
# Flat (exact) inner product is fast enough up to about a million chunks; HNSW beyond.
EXACT_SEARCH_LIMIT = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    file_hash TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    issuer TEXT, doc_number TEXT, date TEXT, level TEXT, region TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    validity TEXT NOT NULL DEFAULT 'in_force',
    replaced_by TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    text TEXT NOT NULL,
    pages TEXT NOT NULL DEFAULT '[]',
    encoding TEXT,
    indexed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    label TEXT NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    tokens TEXT NOT NULL,
    vector BLOB NOT NULL,
    sentences TEXT,         -- JSON [[start, end], …] of its sentences; NULL: not computed yet
    sentence_vectors BLOB   -- float16, one row per sentence; empty for one-sentence chunks
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection set up for several writers: WAL, a busy timeout, foreign keys."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
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


def _pack_sentences(spans: list, vectors: np.ndarray) -> tuple[str, bytes]:
    """Spans as JSON, vectors as float16 bytes: half the size, and cosines stay within 1e-3."""
    if not spans:
        return "[]", b""
    return json.dumps([list(s) for s in spans]), np.ascontiguousarray(vectors, dtype=np.float16).tobytes()


class Store:
    """Open (or create) the knowledge-base folder `home`."""

    def __init__(self, home: str | os.PathLike):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_path = self.home / DB_FILE
        self.conn = connect(self.db_path)
        self.conn.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Knowledge bases made before sentence vectors get the columns; `kb index` fills them."""
        columns = {r["name"] for r in self.conn.execute("PRAGMA table_info(chunks)")}
        for name, kind in (("sentences", "TEXT"), ("sentence_vectors", "BLOB")):
            if name not in columns:
                self.conn.execute(f"ALTER TABLE chunks ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.conn.close()

    # -- settings ---------------------------------------------------------
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_setting(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO settings(key, value) VALUES(?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def check_model(self, model_name: str, dim: int) -> None:
        """Refuse to mix vectors from two models in one knowledge base."""
        stored = self.get_setting("model")
        if stored is None:
            if self.conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None:
                self.set_setting("model", model_name)
                self.set_setting("dim", str(dim))
                return
        if stored != model_name or int(self.get_setting("dim", str(dim))) != dim:
            raise IndexMismatch(
                f"知识库 {self.home} 的向量由模型 {stored} 生成，当前配置的模型是 {model_name}",
                hint=f"改回 KB_MODEL={stored}，或用 kb index --rebuild 以新模型重建全部向量",
            )

    # -- locking ----------------------------------------------------------
    @contextmanager
    def write_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Exclusive lock for indexing; refuse (or wait up to `wait` seconds) if held."""
        lock_path = self.home / ".write.lock"
        fh = open(lock_path, "a+")
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

    # -- documents --------------------------------------------------------
    def file_hashes(self) -> dict[str, tuple[str, str]]:
        """source → (doc_id, file_hash) of every stored document."""
        return {r["source"]: (r["doc_id"], r["file_hash"])
                for r in self.conn.execute("SELECT source, doc_id, file_hash FROM documents")}

    def put_documents(self, records: list[DocumentRecord], vectors: np.ndarray,
                      sentences: list[tuple[list, np.ndarray]] | None = None) -> None:
        """Replace these documents and their chunks in one transaction.

        `sentences` holds (spans, vectors) per chunk, in chunk order; without it the
        chunks' sentence vectors are left to `put_sentences` (NULL until then)."""
        from .chunking import content_hash

        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        row = 0
        with self.transaction() as conn:
            for rec in records:
                conn.execute("DELETE FROM chunks WHERE doc_id=?", (rec.doc_id,))
                conn.execute("DELETE FROM documents WHERE doc_id=? OR source=?", (rec.doc_id, rec.source))
                m = rec.meta
                conn.execute(
                    "INSERT INTO documents(doc_id, source, file_hash, text_hash, title, doc_type, issuer, doc_number,"
                    " date, level, region, tags, validity, replaced_by, extra, text, pages, encoding, indexed_at)"
                    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (rec.doc_id, rec.source, rec.file_hash, content_hash(rec.text), m.get("title") or rec.source,
                     m.get("doc_type", "other"), m.get("issuer"), m.get("doc_number"), m.get("date"),
                     m.get("level"), m.get("region"), json.dumps(m.get("tags", []), ensure_ascii=False),
                     m.get("validity", "in_force"), m.get("replaced_by"),
                     json.dumps(m.get("extra", {}), ensure_ascii=False), rec.text,
                     json.dumps(rec.pages), rec.encoding, now))
                for ordinal, (span, tokens) in enumerate(zip(rec.chunks, rec.tokens)):
                    spans_json, blob = _pack_sentences(*sentences[row]) if sentences is not None else (None, None)
                    conn.execute(
                        "INSERT INTO chunks(doc_id, ordinal, label, page, start, end, content_hash, tokens, vector,"
                        " sentences, sentence_vectors) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                        (rec.doc_id, ordinal, span.label, span.page, span.start, span.end,
                         content_hash(rec.text[span.start:span.end]), " ".join(tokens),
                         np.ascontiguousarray(vectors[row], dtype=np.float32).tobytes(), spans_json, blob))
                    row += 1

    # -- sentence vectors -------------------------------------------------
    def chunks_without_sentences(self, limit: int) -> list[sqlite3.Row]:
        """Up to `limit` chunks whose sentence vectors are not computed yet, with their passage and title."""
        return self.conn.execute(
            "SELECT c.chunk_id, c.start, d.title, substr(d.text, c.start + 1, c.end - c.start) AS passage "
            "FROM chunks c JOIN documents d USING(doc_id) WHERE c.sentences IS NULL LIMIT ?", (limit,)).fetchall()

    def count_without_sentences(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM chunks WHERE sentences IS NULL").fetchone()[0]

    def put_sentences(self, rows: list[tuple[int, list, np.ndarray]]) -> None:
        """Store (chunk_id, spans, vectors) in one transaction."""
        with self.transaction() as conn:
            for chunk_id, spans, vectors in rows:
                conn.execute("UPDATE chunks SET sentences=?, sentence_vectors=? WHERE chunk_id=?",
                             (*_pack_sentences(spans, vectors), chunk_id))

    def sentence_vectors(self, chunk_ids: Iterable[int], dim: int) -> dict[int, tuple[list, np.ndarray]]:
        """chunk_id → (sentence spans, float32 vectors) for chunks that have two or more sentences."""
        ids = [int(c) for c in chunk_ids]
        out = {}
        if not ids:
            return out
        for r in self.conn.execute(
                "SELECT chunk_id, sentences, sentence_vectors FROM chunks WHERE sentence_vectors IS NOT NULL "
                f"AND length(sentence_vectors) > 0 AND chunk_id IN ({','.join('?' * len(ids))})", ids):
            vectors = np.frombuffer(r["sentence_vectors"], dtype=np.float16).astype(np.float32).reshape(-1, dim)
            out[r["chunk_id"]] = ([tuple(s) for s in json.loads(r["sentences"])], vectors)
        return out

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        doc_ids = list(doc_ids)
        with self.transaction() as conn:
            for doc_id in doc_ids:
                conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                conn.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
        return len(doc_ids)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def counts(self) -> dict:
        docs = self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return {"documents": docs, "chunks": chunks}

    # -- derived index ----------------------------------------------------
    def read_manifest(self) -> dict | None:
        path = self.home / MANIFEST
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def publish(self, model_name: str, dim: int, tokenizer_fingerprint: str, build_keyword_index) -> dict:
        """Rebuild the derived files from SQLite into a new generation and publish it."""
        import faiss

        previous = self.read_manifest() or {}
        generation = int(previous.get("generation", 0)) + 1
        ids, vectors, tokens = [], [], []
        for r in self.conn.execute("SELECT chunk_id, tokens, vector FROM chunks ORDER BY chunk_id"):
            ids.append(r["chunk_id"])
            tokens.append(r["tokens"].split(" ") if r["tokens"] else [])
            vectors.append(np.frombuffer(r["vector"], dtype=np.float32))
        matrix = np.vstack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        id_array = np.asarray(ids, dtype=np.int64)

        final_dir = self.home / f"index-{generation:06d}"
        work_dir = Path(tempfile.mkdtemp(prefix=".building-", dir=self.home))
        try:
            if len(ids) > EXACT_SEARCH_LIMIT:
                base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
                dense_kind = "hnsw32"
            else:
                base = faiss.IndexFlatIP(dim)
                dense_kind = "flat_ip"
            index = faiss.IndexIDMap2(base)
            if len(ids):
                index.add_with_ids(matrix, id_array)
            faiss.write_index(index, str(work_dir / "vectors.faiss"))
            build_keyword_index(tokens, ids).save(work_dir / "bm25")
            os.replace(work_dir, final_dir)
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        doc_hashes = {r["doc_id"]: r["text_hash"] for r in self.conn.execute("SELECT doc_id, text_hash FROM documents")}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "generation": generation,
            "index_dir": final_dir.name,
            "model": model_name,
            "dimension": dim,
            "dense_index": dense_kind,
            "keyword": {"engine": "bm25s", "tokenizer": "jieba+userdict", "fingerprint": tokenizer_fingerprint},
            "counts": {"documents": len(doc_hashes), "chunks": len(ids)},
            "content_hashes": doc_hashes,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_text(self.home / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
        self._remove_old_generations(keep=final_dir.name)
        return manifest

    def _remove_old_generations(self, keep: str) -> None:
        for path in self.home.iterdir():
            if path.is_dir() and (path.name.startswith("index-") or path.name.startswith(".building-")) \
                    and path.name != keep:
                shutil.rmtree(path, ignore_errors=True)

    def load_published(self, model_name: str | None = None):
        """(manifest, faiss index, keyword index folder) of the published generation."""
        import faiss

        manifest = self.read_manifest()
        if manifest is None:
            raise IndexNotFound(f"{self.home} 里还没有索引", hint="先运行 kb index 文件夹")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise IndexMismatch(f"索引格式版本 {manifest.get('schema_version')} 与程序版本 {SCHEMA_VERSION} 不符",
                                hint="运行 kb index --rebuild 重建索引")
        if model_name is not None and manifest["model"] != model_name:
            raise IndexMismatch(f"索引由模型 {manifest['model']} 生成，当前配置的模型是 {model_name}",
                                hint=f"改回 KB_MODEL={manifest['model']}，或用 kb index --rebuild 重建")
        folder = self.home / manifest["index_dir"]
        if not folder.exists():
            raise IndexNotFound(f"索引文件夹 {folder} 不见了", hint="运行 kb index 重新生成")
        return manifest, faiss.read_index(str(folder / "vectors.faiss")), folder / "bm25"
