"""A PostgreSQL cluster in a folder of its own: the team server's database on one machine
(`make team` keeps it in `.team-pg/`) and the tests' throw-away server (tests/pg_server.py).

`start` runs initdb the first time, then pg_ctl on the folder's own port on 127.0.0.1 (chosen
once, kept in `port`), and makes the login role `kb_app` (owner of the database `kb`, allowed
to create the three kb_* roles) — the knowledge base never connects as the superuser.
PostgreSQL refuses to run as root, and CI runs as root: then the server runs as an unprivileged
system user (created with useradd when missing) through runuser. With `password=True` both
roles get random passwords kept in the folder (owner-only files); without, loopback is trusted
(the tests).

    python -m kb.storage.pg_cluster start FOLDER [--port N]   starts it; prints the database URL
    python -m kb.storage.pg_cluster stop FOLDER               stops it (the data stays)
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from ..errors import StorageError
from .pg_database import PG_BIN_DIRS

RUN_AS = "kbpg"
APP_ROLE = "kb_app"
DATABASE = "kb"


def pg_bin() -> Path | None:
    """The folder of initdb / pg_ctl / postgres: KB_PG_BIN, Debian's versioned folder, or PATH."""
    candidates = [os.environ.get("KB_PG_BIN", ""), *PG_BIN_DIRS, str(Path(shutil.which("initdb") or "/").parent)]
    return next((Path(d) for d in candidates if d and all((Path(d) / t).exists() for t in ("initdb", "pg_ctl"))),
                None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """The cluster kept in `folder` (data/, server.log, port, passwords)."""

    def __init__(self, folder: str | os.PathLike, *, run_as: str = RUN_AS, password: bool = True,
                 options: str = ""):
        self.folder = Path(folder).resolve()
        self.data = self.folder / "data"
        self.run_as, self.password, self.options = run_as, password, options
        self.bin = pg_bin()
        if self.bin is None:
            raise StorageError("找不到 PostgreSQL（initdb、pg_ctl）",
                               hint="安装 Debian 的 postgresql 软件包（make setup 会安装），或用 KB_PG_BIN 指定其 bin 文件夹")

    # -- running as the server's user ----------------------------------------
    def _as_server(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], what: str) -> subprocess.CompletedProcess:
        done = subprocess.run(self._as_server(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise StorageError(f"PostgreSQL {what}失败：{(done.stderr or done.stdout).strip().splitlines()[-1:]}",
                               hint=f"日志：{self.folder / 'server.log'}")
        return done

    def _ensure_user(self) -> None:
        if os.geteuid() == 0 and subprocess.run(["id", "-u", self.run_as], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.run_as],
                           check=True, capture_output=True)

    def _private(self, path: Path) -> None:
        path.chmod(0o700 if path.is_dir() else 0o600)
        if os.geteuid() == 0:
            shutil.chown(path, self.run_as, self.run_as)

    def _secret(self, name: str) -> str:
        path = self.folder / name
        if not path.exists():
            path.write_text(secrets.token_hex(16) + "\n")
            self._private(path)
        return path.read_text().strip()

    # -- the cluster ---------------------------------------------------------------
    @property
    def port(self) -> int:
        return int((self.folder / "port").read_text())

    def running(self) -> bool:
        return self.data.is_dir() and subprocess.run(
            self._as_server([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True).returncode == 0

    def start(self, port: int | None = None) -> str:
        """Initialise (first time) and start the cluster; the URL of the database `kb` as `kb_app`."""
        self._ensure_user()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._private(self.folder)
        if port or not (self.folder / "port").exists():
            (self.folder / "port").write_text(f"{port or free_port()}\n")
        if not (self.data / "PG_VERSION").exists():
            argv = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                    "--locale=C.UTF-8"]
            if self.password:
                self._secret("postgres.password")
                argv += ["--auth=scram-sha-256", f"--pwfile={self.folder / 'postgres.password'}"]
            else:
                argv += ["--auth=trust"]
            self._run(argv, "初始化")
        if not self.running():
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {self.options}".strip()
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                       "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start"], "启动")
        self._ensure_app_role()
        return self.url(DATABASE)

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], "停止")

    # -- roles and databases ------------------------------------------------------
    def _login(self, role: str, secret_file: str) -> str:
        return f"{role}:{self._secret(secret_file)}" if self.password else role

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://{self._login('postgres', 'postgres.password')}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql://{self._login(APP_ROLE, 'kb_app.password')}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, params: tuple = (), database: str = "postgres"):
        import psycopg

        with psycopg.connect(self.admin_url(database), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall() if sql.lstrip().upper().startswith("SELECT") \
                else conn.execute(sql, params)

    def _ensure_app_role(self) -> None:
        if not self.admin("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)):
            self.admin(f"CREATE ROLE {APP_ROLE} LOGIN CREATEROLE")
        if self.password:  # hex digits: nothing to quote
            self.admin(f"ALTER ROLE {APP_ROLE} PASSWORD '{self._secret('kb_app.password')}'")
        if not self.admin("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)):
            self.admin(f"CREATE DATABASE {DATABASE} OWNER {APP_ROLE}")

    def new_database(self, name: str) -> str:
        """A new empty database owned by the app role; its URL."""
        self.admin(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
        return self.url(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.storage.pg_cluster",
                                     description="项目文件夹里的 PostgreSQL（团队服务器用）")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("folder", help="集群文件夹，例如 .team-pg")
    parser.add_argument("--port", type=int, help="端口（默认第一次启动时选一个空闲端口并记住）")
    args = parser.parse_args(argv)
    try:
        cluster = Cluster(args.folder)
        if args.action == "start":
            print(cluster.start(args.port))
        else:
            cluster.stop()
    except StorageError as exc:
        print(exc.user_message(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
