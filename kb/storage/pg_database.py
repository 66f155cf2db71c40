"""`Database` on PostgreSQL: the same opening checks, migrations and write transactions as
`kb.sqlite`, with the database enforcing each person's role.

* **Schema.** The same numbered migrations (`kb.storage.migrations`) run through
  `kb.storage.pg.PgConnection`, which translates their SQL; the last one applied is kept in
  the table `kb_schema` (SQLite's `PRAGMA user_version`). A database holding other tables and
  no `kb_schema` belongs to another program and is refused. After migrating, the roles,
  grants, row-level security and the audit trigger are (re)applied.
* **Writes.** `write(work)` runs `work(conn)` in one transaction that first takes a
  transaction-level advisory lock: writers queue one after the other exactly as SQLite's
  BEGIN IMMEDIATE makes them, so a read-modify-write (a topic's version check, the audit
  chain's head) sees no other change between its read and its write — across processes and
  machines. Serialization failures and deadlocks are retried from the start.
* **Roles.** A view made with `for_user(user)` runs every transaction under
  `SET LOCAL ROLE kb_<role>` with `kb.user` set to the person's name, so a bug that tries a
  forbidden write is refused by PostgreSQL, not only by `kb.roles`.
* **Indexing.** `indexing_lock` (taken by `Store.write_lock`) is a session advisory lock: one
  process indexes or publishes at a time, whichever machine it runs on.
* **Backups.** `backup_to` writes a `pg_dump` custom-format archive; `restore_from` loads one
  with `pg_restore`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar


from indexer.errors import IndexLocked

from ..config import database_url
from ..errors import BackupError, DatabaseDamaged, PermissionDenied, SchemaTooNew, StorageError
from . import pg
from .database import Database, retry_writes
from .migrations import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")
# Tables that must be empty in a database a knowledge base is copied or restored into: never merged.
CONTENT_TABLES = ("documents", "chunks", "topics", "topic_links", "pack_versions", "expert_notes", "audit_log")
# Identity columns, which carry on after the ids copied into them.
_IDENTITIES = (("chunks", "chunk_id"), ("topic_links", "link_id"), ("audit_log", "id"))
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


def pg_tool(name: str) -> str:
    """Path of pg_dump / pg_restore: on PATH, else Debian's versioned folder."""
    found = shutil.which(name) or next((str(Path(d) / name) for d in PG_BIN_DIRS if (Path(d) / name).exists()), None)
    if not found:
        raise BackupError(f"找不到 {name}", hint="安装 Debian 的 postgresql-client 软件包")
    return found


class PostgresDatabase(Database):
    """The rows of a knowledge base in a PostgreSQL database; the search files stay in `home`."""

    backend = "postgresql"

    def __init__(self, home: str | os.PathLike, *, create: bool = True, url: str | None = None):
        self.home = Path(home)
        self.url = url or database_url(self.home)
        self.path = pg.safe_url(self.url)  # what messages name
        self.backup_path = None
        self.conn = pg.PgConnection(self.url)
        try:
            self._check_and_migrate(create)
        except BaseException:
            self.conn.close()
            raise
        # The search files, manifest and settings live in the folder even when the rows do not.
        if not self.home.is_dir():
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- schema -------------------------------------------------------------
    def _check_and_migrate(self, create: bool = True) -> None:
        conn = self.conn
        conn.native("SELECT pg_advisory_lock(%s)", (pg.OPEN_LOCK,))
        try:
            tables = conn.tables()
            if pg.SCHEMA_TABLE not in tables:
                if tables and "documents" not in tables:
                    raise DatabaseDamaged(f"{self.path} 里有别的程序的表，不是协商研究助手的知识库",
                                          hint="换一个空的数据库，不要在这个数据库里建知识库")
                if not create:
                    raise DatabaseDamaged(f"{self.path} 里还没有知识库（还没有索引过任何文件）",
                                          hint="先运行 kb index 文件夹 或 kb init，或检查 database / KB_DATABASE_URL")
                conn.native(f"CREATE TABLE {pg.SCHEMA_TABLE} (version integer NOT NULL)")
                conn.native(f"INSERT INTO {pg.SCHEMA_TABLE} VALUES (0)")
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(f"{self.path} 的格式版本 {version} 比本程序支持的 {SCHEMA_VERSION} 新",
                                   hint="升级协商研究助手后再打开；本程序没有改动它")
            migrated = False
            secured = conn.native("SELECT 1 FROM pg_trigger WHERE tgname = 'audit_log_append_only'").fetchone()
            for number, _description, apply in MIGRATIONS:
                if number <= version:
                    continue
                with self.transaction() as tx:
                    # A migration may rewrite audit rows (sealing the chain); the trigger is off for
                    # this transaction only, so no one else ever sees it off.
                    if secured:
                        tx.native("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                    apply(tx)
                    if secured:
                        tx.native("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
                    tx.native(f"UPDATE {pg.SCHEMA_TABLE} SET version = %s", (number,))
                migrated = True
            if migrated or not secured:
                with self.transaction() as tx:
                    pg.apply_security(tx)
        except pg.psycopg.Error as exc:
            raise StorageError(f"PostgreSQL 数据库 {self.path} 不能使用（{_first_line(exc)}）",
                               hint="连接的用户要拥有这个数据库并能创建角色（CREATEROLE）；见 docs/postgresql.md") from exc
        finally:
            if not conn.raw.closed:
                if conn.in_transaction:
                    conn.native("ROLLBACK")
                conn.native("SELECT pg_advisory_unlock(%s)", (pg.OPEN_LOCK,))

    @property
    def schema_version(self) -> int:
        return self.conn.native(f"SELECT version FROM {pg.SCHEMA_TABLE}").fetchone()[0]

    # -- transactions -------------------------------------------------------
    def _act(self) -> None:
        if self.actor is not None:
            pg.act_as(self.conn, self.actor.role, self.actor.name)

    @contextmanager
    def transaction(self) -> Iterator[pg.PgConnection]:
        """One write transaction, queued behind any other writer; committed on success, rolled back on error."""
        conn = self.conn
        conn.native("BEGIN")
        try:
            conn.native("SELECT pg_advisory_xact_lock(%s)", (pg.WRITE_LOCK,))
            self._act()
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.native("ROLLBACK")
            raise
        conn.native("COMMIT")

    def write(self, work: Callable[[pg.PgConnection], T], *, what: str = "修改") -> T:
        return retry_writes(lambda: self._attempt_as_actor(work, what),
                            lambda exc: isinstance(exc, pg.psycopg.Error) and pg.is_retryable(exc), what)

    def _attempt_as_actor(self, work: Callable[[pg.PgConnection], T], what: str) -> T:
        try:
            with self.transaction() as conn:
                return work(conn)
        except pg.psycopg.errors.InsufficientPrivilege as exc:  # the database enforces the role
            role = self.actor.role_label if self.actor is not None else "当前连接"
            raise PermissionDenied(f"数据库拒绝了这次{what}：{role}没有这项权限（{_first_line(exc)}）",
                                   hint="此操作超出当前角色的权限；操作记录只能追加") from exc

    @contextmanager
    def snapshot(self) -> Iterator[pg.PgConnection]:
        """A read transaction: every query inside sees the same committed state."""
        conn = self.conn
        conn.native("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            self._act()
            yield conn
        finally:
            if conn.in_transaction:
                conn.native("COMMIT")

    @contextmanager
    def indexing_lock(self, wait: float = 0.0) -> Iterator[None]:
        """One process at a time indexes or publishes from this database, whichever machine it runs
        on (replicas with folders of their own: the folder's lock alone would let two index at once)."""
        conn = self.conn
        deadline = time.monotonic() + wait
        while not conn.native("SELECT pg_try_advisory_lock(%s)", (pg.INDEX_LOCK,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise IndexLocked(f"另一个进程（可能在另一台服务器上）正在更新知识库 {self.path}",
                                  hint="等它完成后再运行，或加 --wait 秒数排队等待")
            time.sleep(0.2)
        try:
            yield
        finally:
            if not conn.raw.closed:
                conn.native("SELECT pg_advisory_unlock(%s)", (pg.INDEX_LOCK,))

    # -- whole-database operations -------------------------------------------
    def backup_to(self, dest: str | os.PathLike) -> None:
        """A consistent `pg_dump` archive (custom format) of the knowledge base's tables; others keep working."""
        dest = Path(dest)
        done = subprocess.run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                               "--file", str(dest), self.url], capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_dump 没有完成：{_first_line(done.stderr)}", hint="检查数据库连接和磁盘空间")
        dest.chmod(0o600)

    def filled_tables(self) -> list[str]:
        """Those of the knowledge base's tables that hold rows (none, in a database just created)."""
        return [t for t in CONTENT_TABLES if self.conn.native(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]

    def copy_from(self, source: Database, then: Callable[[pg.PgConnection, dict], None] | None = None) -> dict:
        """Every table of the SQLite knowledge base `source`, in one transaction, rows in their original
        order (ids included, so the search files keep pointing at the same chunks): table → rows copied.
        `then(conn, copied)` runs in the same transaction (the audit entry of the copy)."""
        def work(conn: pg.PgConnection) -> dict:
            copied = _copy_tables(source, conn)
            if then is not None:
                then(conn, copied)
            return copied

        return self.write(work, what="迁移")

    def restore_from(self, archive: str | os.PathLike) -> None:
        """Load a `backup_to` archive into this database, which must hold no knowledge-base rows yet;
        then re-apply the roles and grants (the archive carries none)."""
        if self.filled_tables():
            raise BackupError(f"{self.path} 里已经有知识库的数据，没有改动它",
                              hint="恢复到一个新建的空数据库（用 KB_DATABASE_URL 指定它）")
        done = subprocess.run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                               "--single-transaction", "--exit-on-error", "--dbname", self.url, str(archive)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_restore 没有完成：{_first_line(done.stderr)}", hint="换一份备份，或检查数据库权限")
        with self.transaction() as tx:
            pg.apply_security(tx)

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """Whether the server answers and holds every table; PostgreSQL checks its own pages."""
        try:
            missing = {"documents", "chunks", "expert_notes", "audit_log"} - self.conn.tables()
        except pg.psycopg.Error as exc:
            return [_first_line(exc)]
        return [f"缺少表 {name}" for name in sorted(missing)][:limit]

    def close(self) -> None:
        self.conn.close()


def _copy_tables(source: Database, conn: pg.PgConnection) -> dict[str, int]:
    copied = {}
    tables = [r[0] for r in source.conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    tables.sort(key=lambda t: t not in ("documents", "topics"))  # rows others refer to come first
    present = conn.tables()
    for table in tables:
        if table not in present:
            raise StorageError(f"PostgreSQL 里没有表 {table}", hint="先升级本程序，两边的格式版本要一致")
        target_columns = conn.table_columns(table)
        columns = [c for c in (r[1] for r in source.conn.execute(f"PRAGMA table_info({table})"))
                   if c in target_columns]
        names = ", ".join(f'"{c}"' for c in columns)
        rows = source.conn.execute(f"SELECT {names} FROM {table} ORDER BY rowid").fetchall()
        conn.native(f"DELETE FROM {table}")  # what creating the schema may have put there (nothing today)
        if rows:
            conn.executemany(f"INSERT INTO {table}({names}) VALUES({', '.join('?' * len(columns))})",
                             [tuple(r) for r in rows])
        copied[table] = len(rows)
    for table, column in _IDENTITIES:
        conn.native(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"GREATEST((SELECT max({column}) FROM {table}), 1), (SELECT count(*) > 0 FROM {table}))")
    return copied


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
