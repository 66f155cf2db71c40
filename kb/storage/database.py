"""The knowledge base's database file: opening it safely, migrating it, writing to it.

`Database` is the one way into `kb.sqlite`. Opening it checks the file before trusting
it: a missing file where a knowledge base used to be, an empty or cut-short file, a
file that is not SQLite or belongs to another program, or a schema newer than this
code each raise `DatabaseDamaged` / `SchemaTooNew` with one line naming the file and
what to do. A fresh empty database is only ever created in a folder that holds no
knowledge base yet, never over a path that held a file.

Writes go through `write(work)`: `work(conn)` runs inside one BEGIN IMMEDIATE
transaction (so a read-modify-write sees no one else's change between its read and
its write), and is retried from the start when another process holds the lock.

A knowledge base whose settings name a PostgreSQL database (`database = "postgresql://…"`
or KB_DATABASE_URL) opens as `kb.storage.pg_database.PostgresDatabase` instead: the same
methods, with each transaction run under the acting person's database role (`for_user`).
"""
from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import struct
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from indexer.errors import IndexLocked

from ..config import database_url, is_postgres
from ..errors import DatabaseDamaged, SchemaTooNew
from .migrations import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

DB_FILE = "kb.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
# Retries on top of SQLite's own busy timeout, for the "database is locked" that still gets
# through (a checkpoint racing a BEGIN IMMEDIATE, a lock held longer than the timeout).
WRITE_RETRIES = 8
BUSY_TIMEOUT_MS = 30_000
# Files this program leaves in a knowledge-base folder; any of them means "a knowledge base was here".
_KB_MARKERS = ("manifest.json", "settings.toml")

T = TypeVar("T")
Connection = sqlite3.Connection
OperationalError = sqlite3.OperationalError


def _restore_hint(path: Path) -> str:
    return f"用 kb restore 备份文件夹 --home {path.parent} 从备份恢复；kb doctor 查看详情"


def check_file(path: Path) -> None:
    """Cheap checks of the file itself before SQLite opens it: empty, wrong header, cut short."""
    size = path.stat().st_size
    if size == 0:
        raise DatabaseDamaged(f"{path} 是空文件（0 字节），知识库数据已不在其中", hint=_restore_hint(path))
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(SQLITE_MAGIC):
        raise DatabaseDamaged(f"{path} 不是 SQLite 数据库（文件头已损坏或被覆盖）", hint=_restore_hint(path))
    if len(header) < 100:
        raise DatabaseDamaged(f"{path} 被截断（只有 {size} 字节）", hint=_restore_hint(path))
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", header[28:32])[0]
    # The header's page count is valid when its change counter matches "version valid for" (bytes 92–96).
    if header[24:28] == header[92:96] and pages and size < pages * page_size:
        raise DatabaseDamaged(f"{path} 被截断（应有 {pages * page_size} 字节，实际 {size} 字节）",
                              hint=_restore_hint(path))


def check_backup_file(path: Path) -> list[str]:
    """Problems of a database file opened read-only (a backup is never migrated or changed in place)."""
    try:
        check_file(path)
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)  # no -wal/-shm beside a backup
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                return [f"格式版本 {version} 比本程序支持的 {SCHEMA_VERSION} 新（请先升级本程序）"]
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
        finally:
            conn.close()
    except (DatabaseDamaged, sqlite3.DatabaseError) as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _set_modes(conn: sqlite3.Connection) -> None:
    """WAL for several readers and one writer; only once the file is known to be ours (WAL rewrites the header)."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")


def _create_private(path: Path) -> None:
    """An empty file readable by its owner only; SQLite gives its -wal and -shm files the same mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def retry_writes(attempt: Callable[[], T], retryable: Callable[[BaseException], bool], what: str) -> T:
    """Run `attempt()` (one whole write transaction) again, with growing pauses, while it fails
    for a reason `retryable` says will pass (another writer); give up after WRITE_RETRIES."""
    delay = 0.05
    for number in range(WRITE_RETRIES):
        try:
            return attempt()
        except Exception as exc:
            if not retryable(exc):
                raise
            if number == WRITE_RETRIES - 1:
                raise IndexLocked(f"知识库正忙，{what}没有保存", hint="稍等片刻再试一次") from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


class Database:
    """`kb.sqlite` of one knowledge-base folder, checked, migrated and ready.

    `create=True` allows making a new database, but only in a folder that holds no
    knowledge base yet (no manifest, no index generation, no settings).

    `url` (else KB_DATABASE_URL, else `database` in the folder's settings.toml) naming a
    PostgreSQL database makes this a `PostgresDatabase`; `url=""` means the folder's kb.sqlite."""

    backend = "sqlite"
    actor = None  # the person transactions act for (a kb.roles.User); PostgreSQL enforces their role
    # Other backends by name; kb/storage/__init__.py registers "postgresql" (kb.storage.pg_database).
    backends: dict[str, type] = {}

    def __new__(cls, home: str | os.PathLike, *, create: bool = True, url: str | None = None):
        if cls is Database and is_postgres(url if url is not None else database_url(home)):
            cls = Database.backends["postgresql"]
        return super().__new__(cls)

    def __init__(self, home: str | os.PathLike, *, create: bool = True, url: str | None = None):
        self.home = Path(home)
        self.path = self.home / DB_FILE
        self.backup_path: Path | None = None  # the copy taken before the last migration
        if not self.path.exists() and not create:
            self._create_or_refuse(create)  # raises, and creates nothing
        if not self.home.is_dir():
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Creating and migrating happen under a lock, so a second process never sees a file half made.
        with self._opening_lock():
            if not self.path.exists():
                self._create_or_refuse(create)
            else:
                check_file(self.path)
            try:
                self.conn = _connect(self.path)
                self._check_and_migrate()
            except sqlite3.DatabaseError as exc:
                if is_busy(exc):
                    raise IndexLocked(f"知识库 {self.home} 正忙（{exc}）", hint="稍等片刻再试一次") from exc
                raise DatabaseDamaged(f"{self.path} 已损坏（{exc}）", hint=_restore_hint(self.path)) from exc

    @contextmanager
    def _opening_lock(self) -> Iterator[None]:
        fd = os.open(self.home / ".open.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _create_or_refuse(self, create: bool) -> None:
        leftovers = [name for name in _KB_MARKERS if (self.home / name).exists()]
        leftovers += sorted(p.name for p in self.home.glob("index-*")) if self.home.is_dir() else []
        if leftovers:
            raise DatabaseDamaged(f"{self.path} 不见了，但文件夹里还有知识库的其他文件（{'、'.join(leftovers[:3])}）",
                                  hint=_restore_hint(self.path))
        if not create:
            raise DatabaseDamaged(f"{self.home} 里还没有知识库（还没有索引过任何文件）",
                                  hint="先运行 kb index 文件夹 或 kb init，或检查 --home / KB_HOME")
        _create_private(self.path)

    def for_user(self, user) -> "Database":
        """The same open database acting for `user` (a `kb.roles.User`): on PostgreSQL every
        transaction of the view runs under the person's role (`kb_member`, `kb_expert`, `kb_staff`)."""
        view = object.__new__(type(self))  # shares the connection
        view.__dict__.update(self.__dict__)
        view.actor = user
        return view

    # -- schema -------------------------------------------------------------
    def _check_and_migrate(self) -> None:
        conn = self.conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables and "documents" not in tables):
            raise DatabaseDamaged(f"{self.path} 是别的程序的数据库，不是协商研究助手的知识库",
                                  hint="换一个知识库文件夹（--home），不要覆盖这个文件")
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"{self.path} 的格式版本 {version} 比本程序支持的 {SCHEMA_VERSION} 新",
                               hint="升级协商研究助手后再打开；本程序没有改动它")
        _set_modes(conn)
        if version == SCHEMA_VERSION:
            return
        if tables:  # an existing knowledge base: keep a copy before changing its schema
            self.backup_path = self.path.with_name(f"{DB_FILE}.before-v{SCHEMA_VERSION}-{time.strftime('%Y%m%d%H%M%S')}")
            self.backup_to(self.backup_path)
        for number, _description, apply in MIGRATIONS:
            if number <= version:
                continue
            with self.transaction() as tx:
                if tx.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue  # another process applied it meanwhile
                apply(tx)
                tx.execute(f"PRAGMA user_version={number}")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    # -- transactions -------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction; committed on success, rolled back on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # a failed COMMIT leaves the transaction open
                self.conn.execute("ROLLBACK")
            raise

    def write(self, work: Callable[[sqlite3.Connection], T], *, what: str = "修改") -> T:
        """Run `work(conn)` in one write transaction, from the start again while another writer holds the lock.

        Everything `work` reads, it reads inside the transaction, so what it writes is based
        on the current state; an audit entry written by `work` lands with the change or not at all."""
        return retry_writes(lambda: self._attempt(work), is_busy, what)

    def _attempt(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self.transaction() as conn:
            return work(conn)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state."""
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    @contextmanager
    def indexing_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Held while indexing or publishing; for kb.sqlite the folder's lock (`Store.write_lock`) suffices."""
        yield

    # -- whole-file operations ---------------------------------------------
    def backup_to(self, dest: str | os.PathLike) -> None:
        """A consistent copy through SQLite's online backup API; other processes keep working."""
        dest = Path(dest)
        if not dest.exists():
            _create_private(dest)
        target = sqlite3.connect(str(dest))
        try:
            self.conn.backup(target, pages=1024, sleep=0.005)
        finally:
            target.close()

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """SQLite's own integrity check; an empty list when the file is sound."""
        try:
            rows = self.conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        problems = [r[0] for r in rows]
        return [] if problems == ["ok"] else problems

    def close(self) -> None:
        self.conn.close()
