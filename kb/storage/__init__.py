"""The storage layer: the only code under `kb/` that speaks SQL.

`Database` opens, checks and migrates `kb.sqlite` (or, when the settings name one, a
PostgreSQL database: `PostgresDatabase`, see `pg_database` and `pg`) and runs write
transactions with retries; `Store` keeps documents and chunks and publishes the search files; the
other modules hold the rows of topics, packs, notes and the audit log. Domain
services get a `Database` (and the functions they need) from `KnowledgeBase`.
"""
from .database import DB_FILE, Database, check_backup_file
from .documents import Piece, Store
from .migrations import SCHEMA_VERSION
from .pg_database import PostgresDatabase

Database.backends["postgresql"] = PostgresDatabase

__all__ = ["DB_FILE", "Database", "PostgresDatabase", "check_backup_file", "Piece", "SCHEMA_VERSION", "Store"]
