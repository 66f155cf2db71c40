"""`KnowledgeBase`: the one object the CLI and the widgets talk to."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from indexer.build import IndexReport, index_paths
from indexer.embedding import Embedder, load_embedder
from indexer.errors import DocumentNotFound
from indexer.keywords import Tokenizer
from indexer.store import Store

from . import audit
from .annotations import Notes
from .config import Settings
from .documents import Document, document_from_row
from .roles import User
from .search import Hit, SearchFilters, Searcher


class KnowledgeBase:
    """A knowledge-base folder with its model; heavy parts (model, index) load on first use."""

    def __init__(self, home: str | os.PathLike | None = None, *, model: str | None = None,
                 embedder: Embedder | None = None, settings: Settings | None = None, **overrides):
        self.settings = settings or Settings.load(home, model=model, **overrides)
        self.home = Path(self.settings.home)
        self.user = User(self.settings.user, self.settings.role)
        self.store = Store(self.home)
        audit.ensure_schema(self.store.conn)
        self._embedder = embedder
        self._tokenizer: Tokenizer | None = None
        self._searcher: Searcher | None = None
        self._searcher_generation = None

    # -- lazily built parts -----------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings.model)
        return self._embedder

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(extra_dicts=[self.home / "userdict.txt"])
        return self._tokenizer

    @property
    def searcher(self) -> Searcher:
        manifest = self.store.read_manifest() or {}
        if self._searcher is None or self._searcher_generation != manifest.get("generation"):
            s = self.settings
            self._searcher = Searcher(self.store, self.embedder, self.tokenizer, fusion=s.fusion, rrf_k=s.rrf_k,
                                      keyword_weight=s.keyword_weight, dense_weight=s.dense_weight,
                                      min_dense_score=s.min_dense_score, sentence_weight=s.sentence_weight)
            self._searcher_generation = manifest.get("generation")
        return self._searcher

    # -- indexing ---------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike], *, rebuild: bool = False, wait: float = 0.0,
              progress: Callable[[int, int, str], None] | None = None) -> IndexReport:
        """Index files/folders incrementally; see `indexer.build.index_paths`."""
        self.user.require("index")
        report = index_paths(self.store, self.embedder, paths, tokenizer=self.tokenizer, rebuild=rebuild,
                             lock_wait=wait, progress=progress)
        self._searcher = None
        if report.embedded_documents or report.removed:
            with self.store.transaction() as conn:
                audit.record(conn, self.user, "index", "documents", None, added=report.added,
                             updated=report.updated, removed=report.removed, paths=[str(p) for p in paths])
        self.notes.reanchor_all()  # notes on changed or removed documents find their passage again
        return report

    @property
    def notes(self) -> Notes:
        """Expert notes (论证意见) anchored to passages; see `kb.annotations`."""
        if getattr(self, "_notes", None) is None:
            self._notes = Notes(self)
        return self._notes

    def audit_log(self, **filters) -> list[audit.AuditEntry]:
        """Newest first; filters: target_type, target_id, user, limit."""
        return audit.entries(self.store.conn, **filters)

    # -- search -----------------------------------------------------------
    def search(self, query: str, top_k: int | None = None, mode: str = "hybrid",
               filters: SearchFilters | None = None, **filter_fields) -> list[Hit]:
        """Ranked, cited hits. Filter fields may be passed directly (doc_types=["policy"], …)."""
        if filter_fields:
            filters = SearchFilters(**filter_fields)
        return self.searcher.search(query, top_k or self.settings.top_k, mode, filters)

    # -- documents --------------------------------------------------------
    def document(self, doc_id: str) -> Document:
        row = self.store.conn.execute("SELECT * FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFound(f"没有编号为 {doc_id} 的文档", hint="用 kb info 或检索结果里的 doc_id")
        chunks = self.store.conn.execute(
            "SELECT chunk_id, ordinal, label, page, start, end, content_hash FROM chunks "
            "WHERE doc_id=? ORDER BY ordinal", (doc_id,)).fetchall()
        return document_from_row(row, chunks)

    def documents(self, doc_type: str | None = None) -> list[Document]:
        sql = "SELECT * FROM documents" + (" WHERE doc_type=?" if doc_type else "") + " ORDER BY doc_type, date DESC"
        rows = self.store.conn.execute(sql, (doc_type,) if doc_type else ()).fetchall()
        return [document_from_row(r) for r in rows]

    def info(self) -> dict:
        manifest = self.store.read_manifest() or {}
        size = sum(p.stat().st_size for p in self.home.rglob("*") if p.is_file())
        by_type = {r[0]: r[1] for r in self.store.conn.execute(
            "SELECT doc_type, COUNT(*) FROM documents GROUP BY doc_type")}
        return {
            "home": str(self.home.resolve()),
            "documents": self.store.counts()["documents"],
            "chunks": self.store.counts()["chunks"],
            "documents_by_type": by_type,
            "model": manifest.get("model") or self.store.get_setting("model"),
            "dimension": manifest.get("dimension"),
            "dense_index": manifest.get("dense_index"),
            "generation": manifest.get("generation"),
            "updated": manifest.get("updated"),
            "index_size_mb": round(size / 1e6, 2),
        }

    # -- topics and briefing packs ------------------------------------------
    @property
    def topics(self):
        """Consultation topics (协商议题); see `kb.topics.TopicService`."""
        if getattr(self, "_topics", None) is None:
            from .topics import TopicService

            self._topics = TopicService(self)
        return self._topics

    @property
    def packs(self):
        """Briefing packs (调研资料汇编) of topics; see `kb.briefing.PackService`."""
        if getattr(self, "_packs", None) is None:
            from .briefing import PackService

            self._packs = PackService(self)
        return self._packs

    def close(self) -> None:
        self.store.close()
