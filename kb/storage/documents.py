"""Documents and chunks in the database, and their publication as search files.

How a change reaches readers without ever half-publishing:

* A document is written in batches of chunks, each batch one transaction. Its row
  carries `building_hash` (the file version being stored) until the last batch, so a
  run killed half-way through a file resumes at the next chunk.
* Chunks of the version being replaced are *retired*, not deleted: the published
  generation still points at them, and a retired chunk of a document whose text
  changed keeps its passage. Removed files are marked `removed` the same way.
* `publish` builds the search files from the live chunks of complete documents in a
  new generation folder, switches `manifest.json`, and only then purges retired chunks
  and removed documents. Killed at any moment, the published generation still finds
  every row it points at.
* `--rebuild` marks a rebuild token; documents stored under it are current, the others
  count as changed until the rebuild completes, so the next run finishes the job.
"""
from __future__ import annotations

import json
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from indexer.chunking import content_hash
from indexer.errors import DocumentNotFound, IndexMismatch
from indexer.keywords import char_grams, stored_words
from indexer.store import DocumentRecord, IndexFiles, Piece

from .database import Connection, Database

_HIT_COLUMNS = ("c.chunk_id, c.doc_id, c.ordinal, c.label, c.page, c.start, c.end, c.content_hash, "
                "d.title, d.doc_type, d.issuer, d.doc_number, d.date, d.source, d.validity, "
                "COALESCE(c.passage, substr(d.text, c.start + 1, c.end - c.start)) AS passage")
_LIVE_DOC = "d.removed = 0"
# What a publish holds: live chunks of documents that are complete and not waiting for removal.
_PUBLISHABLE = "c.retired = 0 AND d.removed = 0 AND d.building_hash IS NULL"
_UPSERT_SETTING = "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
# The published generation's manifest (without per-document hashes), read by every replica.
PUBLISHED_SETTING = "published_generation"


def _pack_sentences(spans: list, vectors: np.ndarray, chunk_vector: np.ndarray) -> tuple[str, bytes]:
    """Spans as JSON, vectors as 5-bit differences from the chunk's stored vector (`pack_sentence_vectors`)."""
    if not spans:
        return "[]", b""
    return json.dumps([list(s) for s in spans]), pack_sentence_vectors(vectors, chunk_vector)


# Stored forms of vectors (docs/search.md, "An index a province can afford"). The readers tell
# the formats apart by length, so rows written before keep being read as they are.
def encode_vector(vector: np.ndarray) -> bytes:
    """A chunk vector as float16: the source the search files are rebuilt from, cosines within 1e-3."""
    return np.ascontiguousarray(vector, dtype=np.float16).tobytes()


def decode_vector(blob: bytes, dim: int) -> np.ndarray:
    """float32 from a stored chunk vector: float16 (now) or float32 (before)."""
    dtype = np.float32 if len(blob) == 4 * dim else np.float16
    return np.frombuffer(blob, dtype=dtype).astype(np.float32)


RESIDUAL_MARK = 5  # first byte of the residual form; the earlier forms have no marker
RESIDUAL_LEVELS = 15  # steps -15…15: five bits


def _residual_row_bytes(dim: int) -> int:
    return 2 + (5 * dim + 7) // 8


def pack_sentence_vectors(vectors: np.ndarray, chunk_vector: np.ndarray) -> bytes:
    """Sentence vectors as their difference from the chunk's vector, 5 bits a dimension.

    A sentence's vector lies near its chunk's (cosine about 0.9), so the difference is about
    half as long as the vector and its rounding error half as large; with 31 steps instead of
    15 the cosines stay within about 0.001 of the exact ones on average. The sentence step re-orders near
    ties by these cosines, so their error shows in nDCG: on stard hybrid nDCG@10 was 0.4856
    with float16 rows, 0.4772 with 4 bits of the vector itself, 0.4856 with these (docs/search.md,
    "An index a province can afford"). `chunk_vector` must be the vector as stored
    (`decode_vector`), the one the reader will add back. Layout: the mark byte, then per row a
    float16 scale and the steps + 15 packed eight to five bytes."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    residual = vectors - np.asarray(chunk_vector, dtype=np.float32)[None, :]
    scale = (np.maximum(np.abs(residual).max(axis=1, keepdims=True), 1e-12) / RESIDUAL_LEVELS).astype(np.float16)
    steps = np.clip(np.rint(residual / scale.astype(np.float32)), -RESIDUAL_LEVELS, RESIDUAL_LEVELS)
    bits = np.unpackbits((steps + RESIDUAL_LEVELS).astype(np.uint8)[:, :, None], axis=2)[:, :, 3:]
    packed = np.packbits(bits.reshape(n, 5 * dim), axis=1)
    return bytes([RESIDUAL_MARK]) + np.hstack([scale.view(np.uint8), packed]).tobytes()


def unpack_sentence_vectors(blob: bytes, count: int, dim: int, chunk_vector: np.ndarray | None = None) -> np.ndarray:
    """float32 unit rows (count × dim) from any stored form: the residual form (needs the chunk's
    stored vector), the 4-bit rows of the first compact knowledge bases, float16 rows from before."""
    if len(blob) == 1 + count * _residual_row_bytes(dim) and blob[0] == RESIDUAL_MARK:
        if chunk_vector is None:
            raise ValueError("sentence vectors stored as differences need their chunk's vector")
        rows = np.frombuffer(blob, dtype=np.uint8, offset=1).reshape(count, -1)
        scale = rows[:, :2].copy().view(np.float16).astype(np.float32)
        bits = np.unpackbits(rows[:, 2:], axis=1)[:, :5 * dim].reshape(count, dim, 5)
        steps = (bits * np.array([16, 8, 4, 2, 1], dtype=np.uint8)).sum(axis=2).astype(np.float32) - RESIDUAL_LEVELS
        vectors = np.asarray(chunk_vector, dtype=np.float32)[None, :] + steps * scale
    elif len(blob) == 2 * count * dim:
        return np.frombuffer(blob, dtype=np.float16).astype(np.float32).reshape(count, dim)
    else:
        rows = np.frombuffer(blob, dtype=np.uint8).reshape(count, -1)
        scale = rows[:, :2].copy().view(np.float16).astype(np.float32)
        steps = np.empty((count, 2 * (rows.shape[1] - 2)), dtype=np.int8)
        steps[:, 0::2], steps[:, 1::2] = rows[:, 2:] >> 4, rows[:, 2:] & 15
        vectors = (steps[:, :dim].astype(np.float32) - 8) * scale
    # back to unit length: the model's vectors are, and a length off by 1% would shift every cosine by 1%
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def pack_words(tokens: Sequence[str]) -> bytes:
    """What the database keeps of a chunk's keyword tokens: its words (not the character grams,
    which a publish derives again from the text), space-separated and deflated (a fifth of the tokens)."""
    return zlib.compress(" ".join(stored_words(tokens)).encode("utf-8"), 6)


def _keyword_tokens(words: bytes | None, tokens: str, title: str, passage: str) -> list[str]:
    """A chunk's keyword tokens for the BM25 files: its stored words and the character grams of
    its title and passage. Rows written before keep all their tokens in `tokens`, used as they are."""
    if words is None:
        return tokens.split(" ") if tokens else []
    text = zlib.decompress(bytes(words)).decode("utf-8")
    return (text.split(" ") if text else []) + char_grams(f"{title} {passage}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class Store:
    """Documents, chunks and settings of one knowledge base, with its published search files."""

    def __init__(self, home: str | Path, *, create: bool = True, db: Database | None = None):
        self.db = db or Database(home, create=create)
        self.home = self.db.home
        self.files = IndexFiles(self.home)

    @property
    def conn(self) -> Connection:
        return self.db.conn

    def transaction(self):
        return self.db.transaction()

    def close(self) -> None:
        self.db.close()

    # -- settings ---------------------------------------------------------
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_setting(self, key: str, value: str) -> None:
        self.conn.execute(_UPSERT_SETTING, (key, value))

    def rebuild_pending(self) -> dict | None:
        """The rebuild that was started and not yet published: {token, model, dim}."""
        value = self.get_setting("rebuild")
        return json.loads(value) if value else None

    def begin_rebuild(self, model_name: str, dim: int) -> dict:
        """Start (or carry on) re-embedding every document; the published generation stays until it completes."""
        pending = self.rebuild_pending()
        if pending is None or pending["model"] != model_name or pending["dim"] != dim:
            pending = {"token": uuid.uuid4().hex[:12], "model": model_name, "dim": dim}
            self.set_setting("rebuild", json.dumps(pending))
        return pending

    def check_model(self, model_name: str, dim: int) -> None:
        """Refuse to mix vectors from two models in one knowledge base."""
        pending = self.rebuild_pending()
        if pending and (pending["model"], pending["dim"]) == (model_name, dim):
            return
        stored = self.get_setting("model")
        if stored is None:
            if self.conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None:
                self.set_setting("model", model_name)
                self.set_setting("dim", str(dim))
                return
        if stored != model_name or int(self.get_setting("dim", str(dim))) != dim:
            if pending:
                raise IndexMismatch(f"知识库 {self.home} 有一次以模型 {pending['model']} 开始、尚未完成的重建",
                                    hint=f"用 --model {pending['model']} 再运行 kb index --rebuild 完成它")
            raise IndexMismatch(
                f"知识库 {self.home} 的向量由模型 {stored} 生成，当前配置的模型是 {model_name}",
                hint=f"改回 KB_MODEL={stored}，或用 kb index --rebuild 以新模型重建全部向量")

    @contextmanager
    def write_lock(self, wait: float = 0.0):
        """The folder's indexing lock and, on PostgreSQL, the database's: one indexer across replicas."""
        with self.files.write_lock(wait), self.db.indexing_lock(wait):
            yield

    # -- documents being written ------------------------------------------
    def file_hashes(self) -> dict[str, tuple[str, str]]:
        """source → (doc_id, file_hash) of every stored document; during a rebuild, documents not yet
        re-embedded have an empty hash, so they count as changed."""
        pending = self.rebuild_pending()
        token = pending["token"] if pending else None
        out = {}
        for r in self.conn.execute("SELECT source, doc_id, file_hash, building_hash, build_token FROM documents "
                                   "WHERE removed = 0"):
            current = r["building_hash"] is None and (token is None or r["build_token"] == token)
            out[r["source"]] = (r["doc_id"], r["file_hash"] if current else "")
        return out

    def resume_point(self, record: DocumentRecord) -> int:
        """The first chunk of `record` still to store: after the last stored one when an earlier run
        was cut short while storing this very file version, else 0."""
        row = self.conn.execute("SELECT building_hash, build_token FROM documents WHERE doc_id=?",
                                (record.doc_id,)).fetchone()
        pending = self.rebuild_pending()
        if row is None or row["building_hash"] != record.file_hash or \
                (pending and row["build_token"] != pending["token"]):
            return 0
        return self.conn.execute("SELECT COUNT(*) FROM chunks WHERE doc_id=? AND retired=0",
                                 (record.doc_id,)).fetchone()[0]

    def store_pieces(self, pieces: Sequence[Piece]) -> None:
        """Store embedded pieces of documents in one transaction (see the module docstring)."""
        pending = self.rebuild_pending()
        token = pending["token"] if pending else None

        def work(conn: Connection) -> None:
            for piece in pieces:
                if piece.first:
                    self._open_document(conn, piece.record, token)
                self._insert_chunks(conn, piece)
                if piece.last:
                    conn.execute("UPDATE documents SET file_hash=building_hash, building_hash=NULL, indexed_at=? "
                                 "WHERE doc_id=?", (_now(), piece.record.doc_id))

        self.db.write(work, what="索引")

    @staticmethod
    def _open_document(conn: Connection, rec: DocumentRecord, token: str | None) -> None:
        m = rec.meta
        text_hash = content_hash(rec.text)
        values = (rec.source, text_hash, m.get("title") or rec.source, m.get("doc_type", "other"), m.get("issuer"),
                  m.get("doc_number"), m.get("date"), m.get("level"), m.get("region"),
                  json.dumps(m.get("tags", []), ensure_ascii=False), m.get("validity", "in_force"),
                  m.get("replaced_by"), json.dumps(m.get("extra", {}), ensure_ascii=False), rec.text,
                  json.dumps(rec.pages), rec.encoding, rec.file_hash, token)
        old = conn.execute("SELECT text_hash FROM documents WHERE doc_id=?", (rec.doc_id,)).fetchone()
        if old is None:
            conn.execute("DELETE FROM documents WHERE source=? AND removed=1", (rec.source,))
            conn.execute(
                "INSERT INTO documents(source, text_hash, title, doc_type, issuer, doc_number, date, level, region,"
                " tags, validity, replaced_by, extra, text, pages, encoding, building_hash, build_token, doc_id,"
                " file_hash, indexed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'',?)",
                (*values, rec.doc_id, _now()))
            return
        if old["text_hash"] != text_hash:  # retired chunks keep their own passage of the old text
            conn.execute("UPDATE chunks SET passage = substr((SELECT text FROM documents WHERE doc_id=?),"
                         " start + 1, end - start) WHERE doc_id=? AND passage IS NULL", (rec.doc_id, rec.doc_id))
        conn.execute("UPDATE chunks SET retired=1 WHERE doc_id=? AND retired=0", (rec.doc_id,))
        conn.execute(
            "UPDATE documents SET source=?, text_hash=?, title=?, doc_type=?, issuer=?, doc_number=?, date=?,"
            " level=?, region=?, tags=?, validity=?, replaced_by=?, extra=?, text=?, pages=?, encoding=?,"
            " building_hash=?, build_token=?, removed=0 WHERE doc_id=?", (*values, rec.doc_id))

    @staticmethod
    def _insert_chunks(conn: Connection, piece: Piece) -> None:
        rec = piece.record
        for row, ordinal in enumerate(range(piece.lo, piece.hi)):
            span = rec.chunks[ordinal]
            vector = encode_vector(piece.vectors[row])
            spans_json, blob = (_pack_sentences(*piece.sentences[row], decode_vector(vector, len(piece.vectors[row])))
                                if piece.sentences is not None else (None, None))
            conn.execute(
                "INSERT INTO chunks(doc_id, ordinal, label, page, start, end, content_hash, tokens, words, vector,"
                " sentences, sentence_vectors) VALUES(?,?,?,?,?,?,?,'',?,?,?,?)",
                (rec.doc_id, ordinal, span.label, span.page, span.start, span.end,
                 content_hash(rec.text[span.start:span.end]), pack_words(rec.tokens[ordinal]),
                 vector, spans_json, blob))

    def put_documents(self, records: list[DocumentRecord], vectors: np.ndarray,
                      sentences: list[tuple[list, np.ndarray]] | None = None) -> None:
        """Store whole documents in one transaction; `vectors` and `sentences` run over all their chunks."""
        pieces, row = [], 0
        for rec in records:
            n = len(rec.chunks)
            pieces.append(Piece(rec, 0, n, True, True, vectors[row:row + n],
                                sentences[row:row + n] if sentences is not None else None))
            row += n
        self.store_pieces(pieces)

    def retire_documents(self, doc_ids: Iterable[str]) -> int:
        """Mark documents removed; they leave the search files at the next publish and are purged then."""
        doc_ids = list(doc_ids)

        def work(conn: Connection) -> None:
            for doc_id in doc_ids:
                conn.execute("UPDATE chunks SET retired=1 WHERE doc_id=?", (doc_id,))
                conn.execute("UPDATE documents SET removed=1 WHERE doc_id=?", (doc_id,))

        self.db.write(work, what="移除文档")
        return len(doc_ids)

    def not_rebuilt(self) -> list[str]:
        """Documents the pending rebuild has not stored (their files are gone or were not named)."""
        pending = self.rebuild_pending()
        if not pending:
            return []
        return [r[0] for r in self.conn.execute(
            "SELECT doc_id FROM documents WHERE removed=0 AND (build_token IS NULL OR build_token<>?)",
            (pending["token"],))]

    def moved_documents(self, removed: Iterable[str]) -> dict[str, str]:
        """old doc_id → new doc_id for removed documents whose exact text lives on under another file name."""
        moves = {}
        for doc_id in removed:
            row = self.conn.execute(
                "SELECT n.doc_id FROM documents o JOIN documents n ON n.text_hash = o.text_hash AND n.doc_id <> o.doc_id"
                " WHERE o.doc_id=? AND n.removed=0 ORDER BY n.indexed_at DESC LIMIT 1", (doc_id,)).fetchone()
            if row:
                moves[doc_id] = row[0]
        return moves

    def retokenize(self, tokenize: Callable[[str, str], list[str]]) -> None:
        """Re-segment every live chunk after a dictionary change (no re-embedding needed)."""
        rows = self.conn.execute(
            "SELECT c.chunk_id, d.title, substr(d.text, c.start + 1, c.end - c.start) AS passage "
            "FROM chunks c JOIN documents d USING(doc_id) WHERE c.retired = 0").fetchall()
        self.set_tokens({r["chunk_id"]: tokenize(r["passage"], r["title"]) for r in rows})

    # -- sentence vectors -------------------------------------------------
    def chunks_without_sentences(self, limit: int) -> list:
        """Up to `limit` live chunks whose sentence vectors are not computed yet, with their passage and title."""
        return self.conn.execute(
            "SELECT c.chunk_id, c.start, d.title, substr(d.text, c.start + 1, c.end - c.start) AS passage "
            "FROM chunks c JOIN documents d USING(doc_id) WHERE c.sentences IS NULL AND c.retired = 0 LIMIT ?",
            (limit,)).fetchall()

    def count_without_sentences(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM chunks WHERE sentences IS NULL AND retired = 0").fetchone()[0]

    def put_sentences(self, rows: list[tuple[int, list, np.ndarray]]) -> None:
        """Store (chunk_id, spans, vectors) in one transaction."""
        def work(conn: Connection) -> None:
            for chunk_id, spans, vectors in rows:
                stored = conn.execute("SELECT vector FROM chunks WHERE chunk_id=?", (chunk_id,)).fetchone()
                if stored is None:  # removed meanwhile
                    continue
                chunk = decode_vector(bytes(stored[0]), vectors.shape[1])
                conn.execute("UPDATE chunks SET sentences=?, sentence_vectors=? WHERE chunk_id=?",
                             (*_pack_sentences(spans, vectors, chunk), chunk_id))

        self.db.write(work, what="句向量")

    def sentence_vectors(self, chunk_ids: Iterable[int], dim: int) -> dict[int, tuple[list, np.ndarray]]:
        """chunk_id → (sentence spans, float32 vectors) for chunks that have two or more sentences."""
        ids = [int(c) for c in chunk_ids]
        out = {}
        if not ids:
            return out
        for r in self.conn.execute(
                "SELECT chunk_id, vector, sentences, sentence_vectors FROM chunks WHERE sentence_vectors IS NOT NULL "
                f"AND length(sentence_vectors) > 0 AND chunk_id IN ({','.join('?' * len(ids))})", ids):
            spans = [tuple(s) for s in json.loads(r["sentences"])]
            out[r["chunk_id"]] = (spans, unpack_sentence_vectors(bytes(r["sentence_vectors"]), len(spans), dim,
                                                                 decode_vector(bytes(r["vector"]), dim)))
        return out

    # -- reading documents --------------------------------------------------
    def counts(self) -> dict:
        docs = self.conn.execute("SELECT COUNT(*) FROM documents d WHERE " + _LIVE_DOC).fetchone()[0]
        chunks = self.conn.execute("SELECT COUNT(*) FROM chunks WHERE retired = 0").fetchone()[0]
        return {"documents": docs, "chunks": chunks}

    def counts_by_type(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT doc_type, COUNT(*) FROM documents d WHERE " + _LIVE_DOC + " GROUP BY doc_type")}

    def document_row(self, doc_id: str):
        """(document row, its live chunk rows); `DocumentNotFound` when there is none."""
        row = self.conn.execute("SELECT * FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFound(f"没有编号为 {doc_id} 的文档", hint="用 kb docs 列出文档编号，或看检索结果里的 doc_id")
        chunks = self.conn.execute(
            "SELECT chunk_id, ordinal, label, page, start, end, content_hash FROM chunks "
            "WHERE doc_id=? AND retired=0 ORDER BY ordinal", (doc_id,)).fetchall()
        return row, chunks

    def document_rows(self, doc_type: str | None = None) -> list:
        sql = "SELECT * FROM documents d WHERE " + _LIVE_DOC + (" AND doc_type=?" if doc_type else "") + \
              " ORDER BY doc_type, date DESC"
        return self.conn.execute(sql, (doc_type,) if doc_type else ()).fetchall()

    def titles(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT doc_id, title FROM documents")}

    def documents_titled(self, name: str) -> list:
        """Documents whose title equals `name` or starts with it, minutes first, shortest title first."""
        return self.conn.execute(
            "SELECT doc_id, title FROM documents d WHERE " + _LIVE_DOC + " AND (title=? OR title LIKE ?) "
            "ORDER BY doc_type='minutes' DESC, length(title)", (name, name.replace("%", "") + "%")).fetchall()

    def iter_texts(self) -> Iterator:
        """(doc_id, title, tags, text) of every live document."""
        yield from self.conn.execute("SELECT doc_id, title, tags, text FROM documents d WHERE " + _LIVE_DOC)

    def text_of(self, doc_id: str) -> tuple[str, str] | None:
        """(text, text_hash) of a document, None when it is gone."""
        row = self.conn.execute("SELECT text, text_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return (row["text"], row["text_hash"]) if row else None

    def chunk_at(self, doc_id: str, start: int, end: int):
        """The live chunk holding [start, end) (label, page, start, end, content_hash), or None."""
        return self.conn.execute(
            "SELECT label, page, start, end, content_hash FROM chunks WHERE doc_id=? AND retired=0 "
            "AND start<=? AND end>? ORDER BY (end - start) LIMIT 1", (doc_id, start, max(start, end - 1))).fetchone()

    def chunks_overlapping(self, doc_id: str, start: int, end: int) -> list:
        return self.conn.execute("SELECT start, end, content_hash FROM chunks WHERE doc_id=? AND retired=0 "
                                 "AND start < ? AND end > ?", (doc_id, end, start)).fetchall()

    def term_document_counts(self, terms: Sequence[str], sample_every: int = 1) -> tuple[int, dict[str, int]]:
        """(documents sampled, term → how many of them contain it), over every `sample_every`-th document."""
        step = max(1, int(sample_every))
        total = self.conn.execute("SELECT COUNT(*) FROM documents d WHERE " + _LIVE_DOC + " AND rowid % ? = 0",
                                  (step,)).fetchone()[0]
        return total, {t: self.conn.execute(
            "SELECT COUNT(*) FROM documents d WHERE " + _LIVE_DOC + " AND rowid % ? = 0 AND instr(text, ?) > 0",
            (step, t)).fetchone()[0] for t in terms}

    # -- reading chunks for search -------------------------------------------
    def chunk_ids_where(self, where: str, params: Sequence) -> list[int]:
        """Chunk ids whose document matches a filter clause over `d` (documents) and `c` (chunks)."""
        return [r[0] for r in self.conn.execute(
            f"SELECT c.chunk_id FROM chunks c JOIN documents d USING(doc_id) WHERE {where}", tuple(params))]

    def superseded_chunk_ids(self, chunk_ids: Sequence[int]) -> set[int]:
        """Those of `chunk_ids` whose document is amended or repealed."""
        ids = [int(c) for c in chunk_ids]
        if not ids:
            return set()
        return {r[0] for r in self.conn.execute(
            "SELECT c.chunk_id FROM chunks c JOIN documents d USING(doc_id) WHERE d.validity != 'in_force' "
            f"AND c.chunk_id IN ({','.join('?' * len(ids))})", ids)}

    def hit_row(self, chunk_id: int):
        """A chunk with its document's citation fields and its passage; None when it is gone."""
        return self.conn.execute(f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d USING(doc_id) "
                                 "WHERE c.chunk_id=?", (int(chunk_id),)).fetchone()

    def chunk_passages(self) -> list:
        """(chunk_id, doc_id) of every live chunk, in id order (for evaluation's re-segmenting)."""
        return self.conn.execute("SELECT chunk_id, doc_id FROM chunks WHERE retired=0 ORDER BY chunk_id").fetchall()

    def iter_passages(self) -> Iterator:
        """(chunk_id, doc_id, title, label, passage) of every chunk the next publish would hold, in id
        order: the knowledge base's own text, for adapting the embedding model to it (`kb tune`)."""
        yield from self.conn.execute(
            "SELECT c.chunk_id, c.doc_id, d.title, c.label, "
            "COALESCE(c.passage, substr(d.text, c.start + 1, c.end - c.start)) AS passage "
            f"FROM chunks c JOIN documents d USING(doc_id) WHERE {_PUBLISHABLE} ORDER BY c.chunk_id")

    def set_tokens(self, tokens: dict[int, list[str]]) -> None:
        """Replace the keyword tokens of these chunks in one transaction."""
        def work(conn: Connection) -> None:
            for chunk_id, words in tokens.items():
                conn.execute("UPDATE chunks SET tokens='', words=? WHERE chunk_id=?", (pack_words(words), chunk_id))

        self.db.write(work, what="分词")

    def published_chunk_ids_missing(self, ids: Sequence[int]) -> list[int]:
        """Those of `ids` (a generation's chunk ids) that have no row in the database."""
        present: set[int] = set()
        ids = [int(i) for i in ids]
        for n in range(0, len(ids), 500):
            part = ids[n:n + 500]
            present.update(r[0] for r in self.conn.execute(
                f"SELECT chunk_id FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})", part))
        return [i for i in ids if i not in present]

    def unfinished_documents(self) -> list[str]:
        """Titles of documents a run stopped storing half-way (the next `kb index` resumes them)."""
        return [r[0] for r in self.conn.execute("SELECT title FROM documents WHERE building_hash IS NOT NULL")]

    def chunks_in_older_form(self) -> int:
        """Live chunks stored before the compact forms (all their tokens as text, no `words`)."""
        return self.conn.execute("SELECT COUNT(*) FROM chunks WHERE retired = 0 AND words IS NULL").fetchone()[0]

    def chunks_with_coarse_sentences(self) -> int:
        """Live compact chunks whose sentence vectors are in the first compact form (4 bits of the
        vector itself, no residual mark): read as they are, but rounded coarsely enough to move the
        sentence step's order (docs/search.md); `kb index --rebuild` rewrites them."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM chunks WHERE retired = 0 AND words IS NOT NULL AND sentence_vectors IS NOT NULL"
            " AND length(sentence_vectors) > 0 AND substr(sentence_vectors, 1, 1) <> ?",
            (bytes([RESIDUAL_MARK]),)).fetchone()[0]

    def publishable_chunk_count(self) -> int:
        """Live chunks of complete documents: what the next publish would hold."""
        return self.conn.execute(
            f"SELECT COUNT(*) FROM chunks c JOIN documents d USING(doc_id) WHERE {_PUBLISHABLE}").fetchone()[0]

    # -- publishing -----------------------------------------------------------
    def read_manifest(self) -> dict | None:
        return self.files.read_manifest()

    def load_published(self, model_name: str | None = None):
        return self.files.load_published(model_name)

    def published_generation(self) -> dict | None:
        """The generation last published from this database, by whichever replica: its manifest
        without the per-document hashes (a digest of them instead); None before the first."""
        value = self.get_setting(PUBLISHED_SETTING)
        return json.loads(value) if value else None

    def publish(self, model_name: str, dim: int, tokenizer_fingerprint: str, build_keyword_index, *,
                copy_of: dict | None = None) -> dict:
        """Build the search files from the live chunks of complete documents, publish them, record the
        generation in the database, then purge what no generation needs any more (retired chunks,
        removed documents, a finished rebuild mark).

        `copy_of` (from `published_generation`): this folder's copy of a generation another replica
        published, under the same number — the files only; nothing is recorded or purged."""
        ids, vectors, tokens = [], [], []
        with self.db.snapshot() as conn:
            for r in conn.execute(
                    "SELECT c.chunk_id, c.words, c.tokens, c.vector, d.title, "
                    "COALESCE(c.passage, substr(d.text, c.start + 1, c.end - c.start)) AS passage "
                    f"FROM chunks c JOIN documents d USING(doc_id) WHERE {_PUBLISHABLE} ORDER BY c.chunk_id"):
                ids.append(r["chunk_id"])
                tokens.append(_keyword_tokens(r["words"], r["tokens"], r["title"], r["passage"]))
                vectors.append(decode_vector(bytes(r["vector"]), dim))
            doc_hashes = {r[0]: r[1] for r in conn.execute(
                "SELECT doc_id, text_hash FROM documents WHERE removed = 0 AND building_hash IS NULL")}
        matrix = np.vstack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        manifest = self.files.write_generation(
            np.asarray(ids, dtype=np.int64), matrix, tokens, build_keyword_index,
            {"model": model_name, "dimension": dim,
             "keyword": {"engine": "bm25", "tokenizer": "jieba+userdict", "fingerprint": tokenizer_fingerprint},
             "counts": {"documents": len(doc_hashes), "chunks": len(ids)}, "content_hashes": doc_hashes},
            generation=copy_of["generation"] if copy_of else
            max(self.files.next_generation(), (self.published_generation() or {}).get("generation", 0) + 1))
        if copy_of:
            return manifest
        pending = self.rebuild_pending()
        record = {k: v for k, v in manifest.items() if k != "content_hashes"}
        record["content_digest"] = content_hash(json.dumps(sorted(doc_hashes.items())))

        def purge(conn: Connection) -> None:
            conn.execute("DELETE FROM chunks WHERE retired = 1")
            conn.execute("DELETE FROM chunks WHERE doc_id IN (SELECT doc_id FROM documents WHERE removed = 1)")
            conn.execute("DELETE FROM documents WHERE removed = 1")
            if pending and not conn.execute("SELECT 1 FROM documents WHERE build_token IS NOT ? LIMIT 1",
                                            (pending["token"],)).fetchone():
                conn.execute("DELETE FROM settings WHERE key='rebuild'")
                for key, value in (("model", model_name), ("dim", str(dim))):
                    conn.execute(_UPSERT_SETTING, (key, value))
            row = conn.execute("SELECT value FROM settings WHERE key=?", (PUBLISHED_SETTING,)).fetchone()
            if not row or json.loads(row["value"])["generation"] < record["generation"]:
                conn.execute(_UPSERT_SETTING, (PUBLISHED_SETTING, json.dumps(record, ensure_ascii=False)))

        self.db.write(purge, what="清理")
        return manifest
