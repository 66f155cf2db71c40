"""`KnowledgeBase`: the one object the CLI and the widgets talk to.

It opens the storage (checking the database and migrating it), builds the domain
services with the collaborators each needs — the database, the user, and functions
such as `document` or `search` — and loads the heavy parts (model, index) on first use.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from indexer.build import IndexReport, index_paths
from indexer.embedding import Embedder, load_embedder
from indexer.keywords import Tokenizer

from .config import Settings
from .documents import Document, document_from_row
from .roles import User
from .search import Hit, SearchFilters, Searcher
from .storage import Database, Store
from .storage import audit as audit_rows


class _Engine:
    """The heavy parts, loaded once and shared by every `for_user` view of a knowledge base."""

    def __init__(self, embedder: Embedder | None = None):
        self.embedder = embedder
        self.tokenizer: Tokenizer | None = None
        self.searcher: Searcher | None = None
        self.generation = None


class KnowledgeBase:
    """A knowledge-base folder with its model; heavy parts (model, index) load on first use.

    `create=False` refuses to make a new knowledge base where there is none (commands that
    only read); a damaged one is always refused with a one-line `StorageError`."""

    def __init__(self, home: str | os.PathLike | None = None, *, model: str | None = None,
                 embedder: Embedder | None = None, settings: Settings | None = None, create: bool = True,
                 **overrides):
        self.settings = settings or Settings.load(home, model=model, **overrides)
        self.home = Path(self.settings.home)
        self.user = User(self.settings.user, self.settings.role)
        # On PostgreSQL every transaction runs under this person's database role (see kb.storage.pg).
        self.db = Database(self.home, create=create, url=self.settings.database).for_user(self.user)
        self.store = Store(self.home, db=self.db)
        self._engine = _Engine(embedder)
        self._notes = self._topics = self._packs = self._cycle = None

    def for_user(self, user: User) -> "KnowledgeBase":
        """The same knowledge base acting for `user`: shares the database, the model and the
        loaded index, with the domain services built afresh for that user (the team service
        makes one per request from the signed-in account)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.user = user
        view.db = self.db.for_user(user)
        view.store = Store(self.home, db=view.db)
        view._notes = view._topics = view._packs = view._cycle = None
        return view

    # -- lazily built parts -----------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._engine.embedder is None:
            self._engine.embedder = load_embedder(self.settings.model)
        return self._engine.embedder

    @property
    def tokenizer(self) -> Tokenizer:
        if self._engine.tokenizer is None:
            self._engine.tokenizer = Tokenizer(extra_dicts=[self.home / "userdict.txt"])
        return self._engine.tokenizer

    @property
    def searcher(self) -> Searcher:
        """The published generation's searcher; a newer generation is loaded on the next use."""
        engine = self._engine
        manifest = self.store.read_manifest() or {}
        if engine.searcher is None or engine.generation != manifest.get("generation"):
            engine.searcher = Searcher(self.store, self.embedder, self.tokenizer, **self.settings.searcher_options())
            engine.generation = manifest.get("generation")
        return engine.searcher

    # -- indexing ---------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike], *, rebuild: bool = False, wait: float = 0.0,
              progress: Callable[[float, int, str], None] | None = None) -> IndexReport:
        """Index files/folders incrementally; see `indexer.build.index_paths`."""
        self.user.require("index")
        report = index_paths(self.store, self.embedder, paths, tokenizer=self.tokenizer, rebuild=rebuild,
                             lock_wait=wait, progress=progress)
        self._engine.searcher = None
        if report.embedded_documents or report.removed:
            self.db.write(lambda conn: audit_rows.record(
                conn, self.user, "document.index", "documents", None, added=report.added, updated=report.updated,
                removed=report.removed, moved=len(report.moved), paths=[str(p) for p in paths]), what="审计记录")
        for old, new in report.moved.items():  # a renamed file: its notes and links follow its text
            self.notes.move_document(old, new)
        self.notes.reanchor_all()  # notes on changed or removed documents find their passage again
        return report

    def audit_log(self, **filters) -> list[audit_rows.AuditEntry]:
        """Newest first; filters: target_type, target_id, user, action, limit. Staff only."""
        self.user.require("audit")
        return audit_rows.entries(self.db.conn, **filters)

    # -- search -----------------------------------------------------------
    def search(self, query: str, top_k: int | None = None, mode: str = "hybrid",
               filters: SearchFilters | None = None, **filter_fields) -> list[Hit]:
        """Ranked, cited hits. Filter fields may be passed directly (doc_types=["policy"], …)."""
        if filter_fields:
            filters = SearchFilters(**filter_fields)
        return self.searcher.search(query, top_k or self.settings.top_k, mode, filters)

    def any_document_matches(self, filters: SearchFilters) -> bool:
        """Whether any published passage passes `filters` (to tell "no document of that kind"
        from "nothing relevant")."""
        allowed = self.searcher.allowed_chunks(filters)
        return allowed is None or bool(allowed)

    # -- documents --------------------------------------------------------
    def document(self, doc_id: str) -> Document:
        """A document with its text and its chunks' provenance; `DocumentNotFound` names the id."""
        row, chunks = self.store.document_row(doc_id)
        return document_from_row(row, chunks)

    def documents(self, doc_type: str | None = None, *, issuer: str | None = None, date_from: str | None = None,
                  date_to: str | None = None) -> list[Document]:
        """Live documents (without chunks), by type then newest first; the filters work as in
        `SearchFilters`: issuer contains `issuer`, ISO date within [date_from, date_to]."""
        docs = [document_from_row(r) for r in self.store.document_rows(doc_type)]
        if issuer:
            docs = [d for d in docs if issuer.casefold() in (d.issuer or "").casefold()]
        if date_from:
            docs = [d for d in docs if d.date and d.date >= date_from]
        if date_to:
            docs = [d for d in docs if d.date and d.date <= date_to]
        return docs

    def index_state(self) -> dict:
        """Model and generation of the published index, for stamping exports."""
        manifest = self.store.read_manifest() or {}
        return {"model": manifest.get("model"), "generation": manifest.get("generation"),
                "documents": manifest.get("counts", {}).get("documents"), "updated": manifest.get("updated")}

    def info(self) -> dict:
        manifest = self.store.read_manifest() or {}
        size = sum(p.stat().st_size for p in self.home.rglob("*") if p.is_file())
        counts = self.store.counts()
        return {
            "home": str(self.home.resolve()),
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "documents_by_type": self.store.counts_by_type(),
            "model": manifest.get("model") or self.store.get_setting("model"),
            "dimension": manifest.get("dimension"),
            "dense_index": manifest.get("dense_index"),
            "generation": manifest.get("generation"),
            "published_chunks": manifest.get("counts", {}).get("chunks"),
            "updated": manifest.get("updated"),
            "schema_version": self.db.schema_version,
            "rebuild_pending": bool(self.store.rebuild_pending()),
            "index_size_mb": round(size / 1e6, 2),
        }

    # -- services -----------------------------------------------------------
    @property
    def notes(self):
        """Expert notes (论证意见) anchored to passages; see `kb.annotations`."""
        if self._notes is None:
            from .annotations import Notes

            self._notes = Notes(self.db, self.user, store=self.store, document=self.document, home=self.home,
                                pack_doc_ids=lambda topic: self.packs.doc_ids(topic),
                                topic=lambda topic: self.topics.get(topic))
        return self._notes

    @property
    def topics(self):
        """Consultation topics (协商议题); see `kb.topics.TopicService`."""
        if self._topics is None:
            from .topics import TopicService

            self._topics = TopicService(self.db, self.user, self.store)
        return self._topics

    @property
    def packs(self):
        """Briefing packs (调研资料汇编) of topics; see `kb.briefing.PackService`."""
        if self._packs is None:
            from .briefing import PackService

            self._packs = PackService(self.db, self.user, store=self.store, topics=self.topics, notes=self.notes,
                                      search=self.search, document=self.document,
                                      tokenizer=lambda: self.tokenizer, index_state=self.index_state,
                                      office=self.settings.extra.get("office"))
        return self._packs

    @property
    def cycle(self):
        """The consultation cycle of topics: plan, speeches, minutes, outcomes, dashboard; see `kb.cycle`."""
        if self._cycle is None:
            from .cycle import CycleService
            from .cycle_exports import export_minutes, export_report

            self._cycle = CycleService(self.db, self.user, topics=self.topics, search=self.search,
                                       export_minutes=export_minutes, export_report=export_report,
                                       office=self.settings.extra.get("office"), home=self.home,
                                       index_files=self._index_attached, document=self.document)
        return self._cycle

    def _index_attached(self, paths: Sequence[Path]) -> IndexReport:
        """Index files a domain service has already allowed (a member's 调研报告 on their own task;
        the check is the caller's). On PostgreSQL the rows go in under the staff role, since a
        member's role may not write documents; the caller's audit entry names the person."""
        store = Store(self.home, db=self.db.for_user(User(self.user.name, "staff")))
        report = index_paths(store, self.embedder, paths, tokenizer=self.tokenizer, lock_wait=120)
        self._engine.searcher = None
        return report

    def close(self) -> None:
        self.db.close()
