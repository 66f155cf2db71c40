"""The PostgreSQL cluster `make team` starts in a project folder (`kb.storage.pg_cluster`, run by
scripts/team.sh): initialised once, on its own loopback port, as an unprivileged user when we
are root, with passwords; stopped and started again it keeps its data and its address, and the
knowledge-base service answers against it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from kb.storage import pg_cluster
from kb.knowledge_base import KnowledgeBase

from .hub_double import SERVICE_TOKEN
from .test_replicas import ACCOUNTS, Replica
from .test_service import _wait, free_port

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(pg_cluster.pg_bin() is None, reason="PostgreSQL is not installed")


def _cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb.storage.pg_cluster", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def folder():
    # not under pytest's tmp_path: the server's user must be able to reach the folder
    path = Path(tempfile.mkdtemp(prefix="kb-team-pg-"))
    path.chmod(0o711)
    yield path / ".team-pg"
    _cli("stop", str(path / ".team-pg"))
    shutil.rmtree(path, ignore_errors=True)


def test_the_cluster_starts_keeps_its_data_and_address_and_stops(folder, mini_corpus, embedder):
    started = _cli("start", str(folder))
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("postgresql://kb_app:") and "@127.0.0.1:" in url and url.endswith("/kb")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(psycopg.OperationalError):  # loopback is not trusted: the password is needed
        psycopg.connect(f"postgresql://kb_app@127.0.0.1:{port}/kb", connect_timeout=5).close()
    assert all(oct((folder / name).stat().st_mode)[-3:] == "600" for name in ("kb_app.password", "postgres.password"))

    kb = KnowledgeBase(folder.parent / "home", embedder=embedder, database=url, user="王静", role="staff")
    kb.index([mini_corpus])
    assert kb.db.backend == "postgresql"
    kb.close()

    assert _cli("stop", str(folder)).returncode == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
    again = _cli("start", str(folder))
    assert again.returncode == 0 and again.stdout.strip() == url  # the same address
    kb = KnowledgeBase(folder.parent / "home", embedder=embedder, database=url, create=False)
    assert kb.info()["documents"] == 3
    kb.close()


def test_the_service_answers_against_the_cluster(folder, mini_corpus):
    url = _cli("start", str(folder)).stdout.strip()
    kb = KnowledgeBase(folder.parent / "team-kb", model="hashing:64", database=url, user="王静", role="staff")
    kb.index([mini_corpus])
    kb.close()
    hub_port = free_port()
    hub = subprocess.Popen([sys.executable, str(REPO / "tests" / "hub_double.py"), str(hub_port),
                            json.dumps({**ACCOUNTS, SERVICE_TOKEN: {"name": "kb-service"}})],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    replica = None
    try:
        _wait(f"http://127.0.0.1:{hub_port}/hub/api/user", hub)
        replica = Replica(folder.parent / "team-kb", url, hub_port)
        assert replica.wait_ready()["generation"] == 1
        hits = replica.client("tok-expert").search("老年助餐 补贴标准", 3)
        assert hits[0].title == "青溪市社区助餐服务办法"
    finally:
        if replica:
            replica.stop()
        hub.terminate()
        hub.wait(10)


def test_a_missing_postgresql_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(pg_cluster, "pg_bin", lambda: None)
    with pytest.raises(pg_cluster.StorageError) as missing:
        pg_cluster.Cluster(tmp_path / "pg")
    assert "找不到 PostgreSQL" in str(missing.value) and "make setup" in missing.value.hint


@pytest.mark.slow
def test_make_team_runs_on_its_own_cluster_and_stops_it(folder):
    """scripts/team.sh without KB_DATABASE_URL: the cluster starts, the corpus is indexed into it,
    the hub's kb service is ready against it; Ctrl+C stops the hub and the cluster."""
    import os
    import signal
    import time

    import requests

    team_dir = folder.parent / "team"
    ports = {name: str(free_port()) for name in ("KB_HUB_PORT", "KB_HUB_API_PORT", "KB_PROXY_API_PORT",
                                                   "KB_SERVICE_PORT")}
    env = {k: v for k, v in os.environ.items() if k not in ("KB_DATABASE_URL", "KB_HOME")}
    env.update(ports, KB_TEAM_DIR=str(team_dir), KB_TEAM_PG=str(folder), KB_MODEL="hashing:64")
    log = folder.parent / "team.log"  # a file, not a pipe: the hub's services would hold a pipe open
    with log.open("w") as out:
        script = subprocess.Popen(["bash", str(REPO / "scripts" / "team.sh")], cwd=REPO, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    ready = f"http://127.0.0.1:{ports['KB_SERVICE_PORT']}/services/kb/api/ready"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert script.poll() is None, log.read_text()
            try:
                if requests.get(ready, timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        state = requests.get(ready, timeout=5).json()
        assert state["ready"] and state["published"] == state["generation"] >= 1
        assert pg_cluster.Cluster(folder).running()
    finally:
        os.killpg(script.pid, signal.SIGINT)  # Ctrl+C
        script.wait(timeout=120)
    output = log.read_text()
    assert "团队数据库：PostgreSQL 集群" in output
    assert not pg_cluster.Cluster(folder).running(), output
