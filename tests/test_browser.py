"""The served app in a real browser: Voila on 127.0.0.1, headless Chromium driven by Playwright.

Logs in, searches, opens a source, drafts and exports a pack, writes an expert note, and
saves screenshots (1280×800) to build/screenshots/ (`make screenshots` refreshes the ones
the README shows in docs/screenshots/); then, in a 1024 px window, an off-topic search and
the reader, checked to fit the window. Every wait is bounded, and the only host contacted
is 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from kb.config import DEFAULT_MODEL_DIR
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO, stop_process_group

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("KB_SCREENSHOT_DIR") or REPO / "build" / "screenshots")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
NARROW = {"width": 1024, "height": 768}
LONG = 180_000  # ms: drafting with the real model on two cores
READER_PARTS = [".xs-doc-head", ".xs-doc-head .xs-card-title", ".xs-doc-meta", ".xs-meta-field", ".xs-passage",
                ".xs-panel"]

# Elements (by CSS selector) whose box reaches past the window's right edge, or whose content
# is wider than their box: text a user cannot see.
CLIPPED_JS = """(selectors) => {
  const out = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      const box = el.getBoundingClientRect();
      if (!box.width) continue;
      if (box.right > window.innerWidth + 1 || el.scrollWidth > el.clientWidth + 1)
        out.push(`${sel}: right ${Math.round(box.right)} / ${window.innerWidth}, ` +
                 `content ${el.scrollWidth} in ${el.clientWidth}`);
    }
  }
  return out;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, tries: int = 120, pause: float = 0.5) -> None:
    """Poll `url` (on 127.0.0.1 only) at most `tries` times."""
    assert url.startswith("http://127.0.0.1:")
    for _ in range(tries):
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(pause)
    raise TimeoutError(f"{url} did not answer after {tries} tries")


@contextlib.contextmanager
def serving_sample_app(home: Path, prepare=None):
    """The sample corpus and topics indexed into `home` (the real model when it is built), then
    the app served by scripts/serve_app.sh on a free port: yields (url, model); stops it after.
    `prepare(kb)` adds more before serving (e.g. the consultation-cycle sample)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/system_deps.sh installs it)")
    pytest.importorskip("playwright.sync_api")
    model = str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "config.json").exists() else "hashing:256"
    env = dict(os.environ, KB_HOME=str(home), KB_MODEL=model, PORT=str(free_port()))
    env.pop("KB_USER", None)
    env.pop("KB_ROLE", None)
    kb = KnowledgeBase(home, model=model, user="测试员", role="staff")
    kb.index([REPO / "corpus"])
    kb.topics.import_yaml(REPO / "corpus" / "topics.yaml")
    if prepare:
        prepare(kb)
    kb.close()
    log = open(home.parent / "voila.log", "w")
    process = subprocess.Popen(["bash", str(REPO / "scripts" / "serve_app.sh")], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{env['PORT']}/"
    try:
        wait_until_up(url, process)
        yield url, model
    finally:
        stop_process_group(process)
        log.close()


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser") / "kb_data"
    with serving_sample_app(home) as (url, _model):
        yield url, home


@contextlib.contextmanager
def offline_page(profile: Path, viewport: dict = VIEWPORT):
    """A headless Chromium page (Chinese locale) that reaches nothing but the app's own server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, viewport=viewport,
            locale="zh-CN")
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1:")
                      or route.request.url.startswith(("data:", "blob:")) else route.abort())
        tab = context.pages[0] if context.pages else context.new_page()
        tab.set_default_timeout(60_000)
        try:
            yield tab
        finally:
            context.close()


@pytest.fixture
def page(served_app, tmp_path):
    profile = tmp_path / "chromium-profile"
    with offline_page(profile) as tab:
        yield tab
    shutil.rmtree(profile, ignore_errors=True)


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.wait_for_timeout(400)  # let the last widget updates paint
    page.screenshot(path=str(path))
    return path


def tab(page, title: str) -> None:
    page.locator(".lm-TabBar-tab", has_text=title).first.click()


def test_search_draft_export_and_note_in_the_browser(served_app, page, tmp_path):
    try:
        walk_through(served_app[0], page)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"))
        print("page at failure:", tmp_path / "failure.png", page.inner_text("body")[:2000])
        raise


def walk_through(url: str, page) -> None:
    """What a first-time staff member does: log in, search, open, draft, add, export, annotate."""
    page.goto(url, timeout=LONG)
    page.wait_for_selector("text=请选择身份", timeout=LONG)
    shot(page, "01_登录")

    page.fill("input[placeholder^='请输入姓名']", "王晓明")
    page.locator("button", has_text="进入").click()
    page.wait_for_selector("text=检索资料")

    # 检索 → 打开原文
    page.fill("input[placeholder^='输入关键词']", "老年助餐 补贴标准")
    page.keyboard.press("Enter")
    page.wait_for_selector(".xs-card >> text=打开原文", timeout=LONG)
    assert page.locator(".xs-card").count() >= 3
    assert page.locator("mark.xs-mark").count() > 0
    page.locator(".xs-card button", has_text="打开原文").first.click()
    page.wait_for_selector("text=定位段落")
    assert page.evaluate(CLIPPED_JS, READER_PARTS) == []
    shot(page, "02_检索与原文")

    # 调研资料汇编: draft for the first sample topic
    tab(page, "调研资料汇编")
    page.wait_for_selector("text=这个议题还没有资料汇编")
    page.locator("button", has_text="自动起草").click()
    page.wait_for_selector("text=一、政策法规", timeout=LONG)
    page.wait_for_selector("text=重新起草")
    shot(page, "03_资料汇编")

    # add a search hit to the pack, mark an item as key reading, then export to Word
    tab(page, "检索")
    page.locator(".xs-card button", has_text="加入资料汇编").nth(1).click()
    page.wait_for_selector("text=/已加入资料汇编|已在资料汇编中/")
    tab(page, "调研资料汇编")
    page.locator("button", has_text="标为重点").first.click()
    page.wait_for_selector("text=★ 重点阅读")
    page.locator("button", has_text="导出Word").click()
    link = page.locator(".xs-download a")
    link.wait_for(timeout=LONG)
    assert link.get_attribute("download").endswith(".docx")
    page.locator(".xs-title", has_text="调研资料汇编").scroll_into_view_if_needed()
    shot(page, "04_导出与编辑")

    # 专家论证: from a search card to a saved note
    tab(page, "检索")
    page.locator(".xs-card button", has_text="添加论证意见").first.click()
    page.wait_for_selector("text=已选中")
    page.fill("textarea[placeholder^='写明论证意见']", "补贴标准应与财力挂钩，建议分档动态调整。")
    page.locator("button", has_text="质疑").click()
    page.locator("button", has_text="保存论证意见").click()
    page.wait_for_selector("text=已保存质疑意见")
    shot(page, "05_专家论证")

    tab(page, "文档管理")
    page.wait_for_selector("text=知识库现有文档")
    shot(page, "06_文档管理")

    body = page.inner_text("body")
    assert "Traceback" not in body and "程序出现意外错误" not in body


def test_narrow_window_weak_search_and_reader(served_app, page, tmp_path):
    page.set_viewport_size(NARROW)
    try:
        narrow_walk(served_app[0], page)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"))
        print("page at failure:", tmp_path / "failure.png", page.inner_text("body")[:2000])
        raise


def narrow_walk(url: str, page) -> None:
    """A member on a 1024 px screen: an off-topic question is not dressed up as a find, and
    the reader's title and details wrap inside the window."""
    page.goto(url, timeout=LONG)
    page.wait_for_selector("text=请选择身份", timeout=LONG)
    page.fill("input[placeholder^='请输入姓名']", "李委员")
    page.locator(".widget-toggle-button", has_text="委员").click()
    page.locator("button", has_text="进入").click()
    page.wait_for_selector("text=检索资料")

    page.fill("input[placeholder^='输入关键词']", "量子计算机芯片出口管制")
    page.keyboard.press("Enter")
    status = page.locator(".xs-status", has_text="量子计算机芯片出口管制")
    status.wait_for(timeout=LONG)
    assert "只是弱相关" in status.inner_text() and "xs-status-warning" in status.get_attribute("class")
    assert page.locator(".xs-status-success", has_text="找到").count() == 0
    # a member sees no buttons a member cannot use
    assert page.locator(".xs-card button:visible", has_text="加入资料汇编").count() == 0
    assert page.locator(".xs-card button:visible", has_text="添加论证意见").count() == 0
    shot(page, "07_弱相关检索_1024")

    page.fill("input[placeholder^='输入关键词']", "老年助餐 补贴标准")
    page.keyboard.press("Enter")
    page.wait_for_selector(".xs-status >> text=/找到 \\d+ 条相关段落/", timeout=LONG)
    page.locator(".xs-card button", has_text="打开原文").first.click()
    page.wait_for_selector("text=定位段落")
    page.wait_for_timeout(400)
    clipped = page.evaluate(CLIPPED_JS, READER_PARTS)
    assert clipped == [], clipped
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    page.locator(".xs-doc-head").scroll_into_view_if_needed()
    shot(page, "08_原文阅读_1024")

    # the member's other tabs: reading and replying, no edit buttons and no note form
    tab(page, "调研资料汇编")
    page.wait_for_selector("text=/委员可以阅读和导出|请工作人员先起草/")
    for label in ("自动起草", "新建议题", "上移", "标为重点", "移出汇编"):
        assert page.locator(f"button:visible:has-text('{label}')").count() == 0, label
    shot(page, "09_委员看资料汇编_1024")
    tab(page, "专家论证")
    page.wait_for_selector("text=委员可以阅读和回复论证意见")
    assert page.locator("button:visible:has-text('保存论证意见')").count() == 0
    assert page.locator("textarea[placeholder^='写明论证意见']:visible").count() == 0
    assert page.locator("button:visible:has-text('发送回复')").count() == 1
    shot(page, "10_委员看专家论证_1024")
