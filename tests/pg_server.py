"""A throw-away PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder on a free
loopback port, stopped (and its folder removed) when the test session ends.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
unprivileged system user `kbtest` (created with useradd when missing), through runuser.
The knowledge base connects as `kb_app`, a login role that owns its database and may create
roles (CREATEROLE) — what an office's DBA would hand out — never as the superuser.

Use the fixture `postgres` (imported into a test module) or `server()`:
`server().new_database()` gives a URL of a new, empty database owned by `kb_app`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("KB_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "kbtest"
APP_ROLE = "kb_app"


def available() -> bool:
    return all((PG_BIN / tool).exists() for tool in ("initdb", "pg_ctl", "postgres"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", RUN_AS, "--", *argv]


def _ensure_user() -> None:
    if os.geteuid() != 0:
        return
    if subprocess.run(["id", "-u", RUN_AS], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
                       check=True, capture_output=True)


class PgServer:
    """One running cluster; `url(db)` for the app role, `admin_url(db)` for the superuser."""

    def __init__(self):
        _ensure_user()
        self.folder = Path(tempfile.mkdtemp(prefix="kb-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, RUN_AS, RUN_AS)
        subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                                        "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        self.admin(f"CREATE ROLE {APP_ROLE} LOGIN CREATEROLE")

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql://{APP_ROLE}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.admin_url(database), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """A new empty database owned by the app role; its URL."""
        name = f"kb_{uuid.uuid4().hex[:10]}"
        self.admin(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


_SERVER: PgServer | None = None


def server() -> PgServer:
    """The session's server, started on first use and stopped when the interpreter exits."""
    global _SERVER
    if not available():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (set KB_PG_BIN, or install postgresql-15)")
    if _SERVER is None:
        _SERVER = PgServer()
        atexit.register(_SERVER.stop)
    return _SERVER


@pytest.fixture
def postgres() -> PgServer:
    return server()
