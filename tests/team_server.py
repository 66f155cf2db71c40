"""A real team server for tests: JupyterHub, the proxy, the kb service and the idle culler.

`TeamServer` starts `jupyterhub -f team/jupyterhub_config.py` on free loopback ports with its
state in a temporary folder, demo accounts (KB_DEMO_PASSWORD) and a small knowledge base
(the sample corpus, hashing embedder), waits until the sign-in page and the kb service answer,
and `stop()` ends the hub and then anything it started that is still alive (servers, kernels,
services, proxy), reporting what it had to kill. The `team_server` fixture is one per module
(`from .team_server import team_server` in a test module).

Runs as root too: the spawner adds `--ServerApp.allow_root` there.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO

PROXY = REPO / ".team-node" / "node_modules" / ".bin" / "configurable-http-proxy"
DEMO = {"staff": "demo-staff", "member": "demo-member", "expert": "demo-expert"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_proxy() -> None:
    """configurable-http-proxy in .team-node, as `make team` installs it; skip the tests without npm."""
    if PROXY.exists():
        return
    if not shutil.which("npm"):
        pytest.skip("npm is not installed (scripts/system_deps.sh installs nodejs and npm)")
    subprocess.run(["npm", "install", "--silent", "--prefix", str(REPO / ".team-node"), "configurable-http-proxy@4"],
                   check=True, timeout=300)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren …), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class TeamServer:
    """One hub with its proxy and services, in `folder`."""

    def __init__(self, folder: Path, *, server_idle: int = 3600, kernel_idle: int = 600, cull_every: int = 60):
        self.folder = folder
        self.password = "Qx-" + secrets.token_urlsafe(12)
        self.ports = {name: free_port() for name in ("hub", "hub_api", "proxy_api", "service")}
        self.url = f"http://127.0.0.1:{self.ports['hub']}"
        self.service_url = f"http://127.0.0.1:{self.ports['service']}/services/kb/"
        self.home = folder / "kb_data"
        self.env = dict(
            os.environ, KB_TEAM_DIR=str(folder / "state"), KB_TEAM_HOME=str(self.home), KB_MODEL="hashing:256",
            KB_HUB_PORT=str(self.ports["hub"]), KB_HUB_API_PORT=str(self.ports["hub_api"]),
            KB_PROXY_API_PORT=str(self.ports["proxy_api"]), KB_SERVICE_PORT=str(self.ports["service"]),
            KB_DEMO_PASSWORD=self.password, KB_SERVER_IDLE_SECONDS=str(server_idle),
            KB_KERNEL_IDLE_SECONDS=str(kernel_idle), KB_CULL_EVERY_SECONDS=str(cull_every))
        for name in ("KB_HOME", "KB_USER", "KB_ROLE", "KB_SERVICE_URL", "KB_STAFF_USERS", "JUPYTERHUB_API_TOKEN"):
            self.env.pop(name, None)
        self.process: subprocess.Popen | None = None
        self.log_path = folder / "jupyterhub.log"
        self.started: set[int] = set()

    def start(self, timeout: float = 120) -> "TeamServer":
        from kb.knowledge_base import KnowledgeBase

        ensure_proxy()
        kb = KnowledgeBase(self.home, model="hashing:256", user="测试员", role="staff")
        kb.index([REPO / "corpus"])
        kb.topics.import_yaml(REPO / "corpus" / "topics.yaml")
        kb.close()
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "jupyterhub"), "-f", str(REPO / "team" / "jupyterhub_config.py")],
            cwd=self.folder, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (self._answers(f"{self.url}/hub/login")
                   and self._answers(f"{self.service_url}api/me", allow=(401, 403))):
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the team server did not answer in {timeout} s; see {self.log_path}")
            time.sleep(0.5)
        return self

    @staticmethod
    def _answers(url: str, allow=()) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code in allow
        except OSError:
            return False

    def processes(self) -> list[int]:
        """The hub's live descendants now (remembered, so stop() finds them even once orphaned)."""
        found = [pid for pid in descendants(self.process.pid) if alive(pid)] if self.process else []
        self.started.update(found)
        return found

    def stop(self, timeout: float = 90) -> list[int]:
        """Stop the hub as an operator would (SIGTERM) and wait; kill what is left. Returns what was left."""
        if self.process is None:
            return []
        self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        deadline = time.monotonic() + 15  # children the hub told to stop may take a moment
        while [pid for pid in self.started if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.5)
        left = sorted(pid for pid in self.started if alive(pid))
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process = None
        self.log.close()
        return left


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    """A running team server for the tests of one module, stopped (with everything it started) after them."""
    server = TeamServer(tmp_path_factory.mktemp("team")).start()
    try:
        yield server
    finally:
        server.stop()
