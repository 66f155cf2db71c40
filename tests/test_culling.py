"""`make run`'s Voila leaves nothing behind: kernels of closed tabs are culled and memory returns.

scripts/serve_app.sh on a free port with short cull timeouts (KB_KERNEL_IDLE_SECONDS,
KB_CULL_EVERY_SECONDS) and a small knowledge base (the sample corpus, hashing embedder). The app
is opened 20 times in headless Chromium, five tabs at a time, and the tabs are closed without
Voila hearing of it (no beforeunload, as when a browser crashes or a laptop sleeps), so only the
culler can end their kernels. Then every kernel must be gone and the resident memory of the
server's process tree back within 300 MB of where it started.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kb.knowledge_base import KnowledgeBase

from .conftest import REPO, stop_process_group
from .test_browser import CHROMIUM, CHROMIUM_FLAGS, free_port, wait_until_up

pytestmark = pytest.mark.slow

psutil = pytest.importorskip("psutil")

KERNEL_IDLE, CULL_EVERY = 8, 2  # seconds
OPENS, AT_ONCE = 20, 5
MEMORY_SLACK = 300 * 1024 * 1024


def tree(pid: int) -> list:
    root = psutil.Process(pid)
    return [root] + root.children(recursive=True)


def rss(pid: int) -> int:
    total = 0
    for process in tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def kernels(pid: int) -> int:
    count = 0
    for process in tree(pid)[1:]:
        try:
            count += "ipykernel" in " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            pass
    return count


@pytest.fixture
def voila(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/system_deps.sh installs it)")
    pytest.importorskip("playwright.sync_api")
    home = tmp_path / "kb_data"
    kb = KnowledgeBase(home, model="hashing:256", user="测试员", role="staff")
    kb.index([REPO / "corpus"])
    kb.close()
    env = dict(os.environ, KB_HOME=str(home), KB_MODEL="hashing:256", PORT=str(free_port()),
               KB_KERNEL_IDLE_SECONDS=str(KERNEL_IDLE), KB_CULL_EVERY_SECONDS=str(CULL_EVERY))
    for name in ("KB_USER", "KB_ROLE", "KB_SERVICE_URL"):
        env.pop(name, None)
    log_path = tmp_path / "voila.log"
    log = open(log_path, "w")
    process = subprocess.Popen(["bash", str(REPO / "scripts" / "serve_app.sh")], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{env['PORT']}/"
    try:
        wait_until_up(url, process)
        yield url, process, log_path
    finally:
        stop_process_group(process)
        log.close()


def test_kernels_of_closed_tabs_are_culled_and_memory_returns(voila, tmp_path):
    from playwright.sync_api import sync_playwright

    url, process, log_path = voila
    start = rss(process.pid)
    peak_kernels, peak_memory = 0, start
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            ("http://127.0.0.1:", "data:", "blob:")) else route.abort())
        for _ in range(OPENS // AT_ONCE):
            tabs = [context.new_page() for _ in range(AT_ONCE)]
            for tab in tabs:
                tab.goto(url, wait_until="commit", timeout=180_000)
            for tab in tabs:
                tab.wait_for_selector("text=请选择身份", timeout=180_000)
            peak_kernels = max(peak_kernels, kernels(process.pid))
            peak_memory = max(peak_memory, rss(process.pid))
            for tab in tabs:
                tab.close()  # no beforeunload: Voila is not told, the culler must notice
        browser.close()

    deadline = time.monotonic() + KERNEL_IDLE + 10 * CULL_EVERY + 60
    while kernels(process.pid) and time.monotonic() < deadline:
        time.sleep(1)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    culled = log.count("Culling 'idle' kernel")
    end = rss(process.pid)
    print(f"kernels started {log.count('Kernel started')}, culled {culled}, at most "
          f"{peak_kernels} at once; memory of the server tree: start {start / 2**20:.0f} MB, "
          f"peak {peak_memory / 2**20:.0f} MB, after culling {end / 2**20:.0f} MB")
    assert log.count("Kernel started") >= OPENS
    assert peak_kernels >= AT_ONCE
    assert kernels(process.pid) == 0, "kernels of closed tabs are still running"
    assert culled >= OPENS
    assert end - start < MEMORY_SLACK
