"""A throw-away PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder on a free
loopback port, stopped (and its folder removed) when the test session ends.

The cluster is `kb.storage.pg_cluster.Cluster` (the one `make team` runs): PostgreSQL refuses
to run as root, and CI runs as root, so then the server runs as the unprivileged system user
`kbtest` (created with useradd when missing), through runuser.
The knowledge base connects as `kb_app`, a login role that owns its database and may create
roles (CREATEROLE) — what an office's DBA would hand out — never as the superuser.

Use the fixture `postgres` (imported into a test module) or `server()`:
`server().new_database()` gives a URL of a new, empty database owned by `kb_app`.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid

import pytest

from kb.storage import pg_cluster

RUN_AS = "kbtest"
# what a test server trades for speed: nothing here needs to survive a crash
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"


def available() -> bool:
    return pg_cluster.pg_bin() is not None


class PgServer:
    """One running cluster (`kb.storage.pg_cluster.Cluster`, trusting loopback) in a temporary folder;
    `url(db)` for the app role, `admin_url(db)` for the superuser."""

    def __init__(self):
        self.cluster = pg_cluster.Cluster(tempfile.mkdtemp(prefix="kb-pg-"), run_as=RUN_AS, password=False,
                                          options=FAST)
        self.folder = self.cluster.folder
        self.cluster.start()
        self.port = self.cluster.port

    def admin_url(self, database: str = "postgres") -> str:
        return self.cluster.admin_url(database)

    def url(self, database: str) -> str:
        return self.cluster.url(database)

    def admin(self, sql: str, database: str = "postgres") -> None:
        self.cluster.admin(sql, database=database)

    def new_database(self) -> str:
        """A new empty database owned by the app role; its URL."""
        return self.cluster.new_database(f"kb_{uuid.uuid4().hex[:10]}")

    def stop(self) -> None:
        self.cluster.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


_SERVER: PgServer | None = None


def server() -> PgServer:
    """The session's server, started on first use and stopped when the interpreter exits."""
    global _SERVER
    if not available():
        pytest.skip("PostgreSQL binaries not found (set KB_PG_BIN, or install postgresql)")
    if _SERVER is None:
        _SERVER = PgServer()
        atexit.register(_SERVER.stop)
    return _SERVER


@pytest.fixture
def postgres() -> PgServer:
    return server()
