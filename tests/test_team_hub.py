"""The team server (team/, `make team`) for real: JupyterHub, proxy, kb service, idle culler.

Signs in with each demo account in headless Chromium, checks what each role's server offers
(members: the app and nothing else; staff: JupyterLab too), that a wrong password and an
account in no group are refused, that idle servers are stopped, and that stopping the hub
leaves no process behind. Screenshots go to build/screenshots/ (KB_SCREENSHOT_DIR overrides;
`make screenshots` refreshes docs/screenshots/team_*.png).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import requests

from team.spawner import NO_ROLE

from .conftest import REPO
from .team_server import DEMO, TeamServer, alive

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("KB_SCREENSHOT_DIR") or REPO / "build" / "screenshots")
SERVER_IDLE = 45  # seconds: short, so the last test sees the idle culler stop the servers
SPAWN = 300_000  # ms: a server start imports the app on two shared cores (slow when the machine is busy)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = TeamServer(tmp_path_factory.mktemp("team"), server_idle=SERVER_IDLE, cull_every=5).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(hub, tmp_path):
    """A headless Chromium that reaches only the hub (new profile, so no one is signed in)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/system_deps.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        engine = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)

        def new_page():
            context = engine.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                ("http://127.0.0.1:", "data:", "blob:")) else route.abort())
            page = context.new_page()
            page.set_default_timeout(60_000)
            return page

        yield new_page
        engine.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    return path


def sign_in_in_browser(page, hub, name: str, password: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")


def session(hub, name: str, password: str | None = None) -> requests.Session:
    """A signed-in HTTP session (the hub's login form, with its XSRF token)."""
    s = requests.Session()
    s.get(f"{hub.url}/hub/login", timeout=30)
    reply = s.post(f"{hub.url}/hub/login", data={"username": name, "password": password or hub.password,
                                                   "_xsrf": s.cookies.get("_xsrf", path="/hub/")},
                   allow_redirects=False, timeout=30)
    assert reply.status_code == 302, f"{name} could not sign in"
    return s


def started(hub, s: requests.Session, name: str) -> None:
    """Start `name`'s server (if it is not running) and wait until it answers."""
    s.post(f"{hub.url}/hub/api/users/{name}/server",
           headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/")}, timeout=30)
    deadline = time.monotonic() + SPAWN / 1000
    while time.monotonic() < deadline:
        # a page visit signs in to the person's server (OAuth redirects through the hub); API calls
        # with a cookie then need the server's XSRF token
        reply = s.get(f"{hub.url}/user/{name}/", timeout=120)
        if reply.status_code == 200 and f"/user/{name}/" in reply.url and s.get(
                f"{hub.url}/user/{name}/api/status", headers=server_xsrf(s, name), timeout=30).status_code == 200:
            return
        time.sleep(1)
    raise TimeoutError(f"{name}'s server did not start")


def server_xsrf(s: requests.Session, name: str) -> dict:
    return {"X-XSRFToken": s.cookies.get("_xsrf", path=f"/user/{name}/") or ""}


def test_sign_in_page(hub, browser):
    page = browser()
    page.goto(f"{hub.url}/hub/login")
    page.wait_for_selector("#login_submit")
    assert page.locator("#username_input").is_visible() and page.locator("#password_input").is_visible()
    assert "协商研究助手" in page.inner_text("body")
    shot(page, "team_login")


def test_a_wrong_password_is_refused(hub, browser):
    page = browser()
    sign_in_in_browser(page, hub, DEMO["member"], hub.password + "x")
    page.wait_for_selector(".login_error")
    assert "/hub/login" in page.url
    assert "用户名或密码不正确" in page.inner_text(".login_error")
    assert requests.get(f"{hub.url}/user/{DEMO['member']}/", timeout=30).url.startswith(f"{hub.url}/hub/login")


@pytest.mark.parametrize("role", ["member", "expert", "staff"])
def test_each_demo_account_signs_in_to_the_app(hub, browser, role):
    name = DEMO[role]
    page = browser()
    sign_in_in_browser(page, hub, name, hub.password)
    # sign-in → spawn → the app rendered by Voila in the person's own server
    page.wait_for_url(re.compile(rf"/user/{name}/voila/render/app\.ipynb"), timeout=SPAWN)
    page.wait_for_selector(".lm-TabBar-tab >> text=检索", timeout=SPAWN)
    body = page.inner_text("body")
    assert "Traceback" not in body
    # the account and its group decide who is working: nothing to choose or switch
    assert f"{name}（" in body and "请选择身份" not in body and "切换身份" not in body
    shot(page, f"team_{role}_app")
    page.click(".lm-TabBar-tab >> text=文档管理")
    page.wait_for_selector("text=知识库现有文档", timeout=60_000)
    assert page.is_visible("text=开始索引") == (role == "staff")  # only staff add documents


def test_a_member_gets_the_app_and_nothing_else(hub):
    name = DEMO["member"]
    s = session(hub, name)
    started(hub, s, name)
    base = f"{hub.url}/user/{name}"
    assert s.get(f"{base}/voila/render/app.ipynb", timeout=120).status_code == 200
    assert s.get(f"{base}/lab", timeout=30, allow_redirects=False).status_code == 404
    assert s.get(f"{base}/api/terminals", headers=server_xsrf(s, name), timeout=30).status_code == 404
    assert s.post(f"{base}/api/terminals", headers=server_xsrf(s, name), timeout=30).status_code == 404
    # no notebook of one's own to render: the files are read-only
    notebook = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    reply = s.put(f"{base}/api/contents/mine.ipynb", json=notebook, headers=server_xsrf(s, name), timeout=30)
    assert reply.status_code == 403 and "不能保存" in reply.json()["message"]


def test_a_members_kernel_runs_no_code(hub):
    """The kernels take the widget messages Voila needs; an execute_request never reaches them."""
    from tornado import httpclient, ioloop, websocket

    name = DEMO["member"]
    s = session(hub, name)
    started(hub, s, name)
    base = f"{hub.url}/user/{name}"
    kernel = s.post(f"{base}/api/kernels", json={"name": "python3"}, headers=server_xsrf(s, name), timeout=120)
    assert kernel.status_code == 201
    cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.path in ("/", f"/user/{name}/"))

    def message(kind: str, content: dict) -> str:
        header = {"msg_id": kind + "-1", "msg_type": kind, "session": "t", "username": name, "version": "5.3"}
        return json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                           "channel": "shell"})

    async def talk() -> list[str]:
        url = f"ws://127.0.0.1:{hub.ports['hub']}/user/{name}/api/kernels/{kernel.json()['id']}/channels"
        conn = await websocket.websocket_connect(httpclient.HTTPRequest(url, headers={"Cookie": cookies}))
        conn.write_message(message("execute_request", {"code": "open('/tmp/x','w')", "silent": False}))
        conn.write_message(message("kernel_info_request", {}))
        replies = []
        deadline = time.monotonic() + 60
        while "kernel_info_reply" not in replies and time.monotonic() < deadline:
            raw = await conn.read_message()
            if raw is None:
                break
            if isinstance(raw, str):
                replies.append(json.loads(raw)["header"]["msg_type"])
        conn.close()
        return replies

    replies = ioloop.IOLoop().run_sync(talk, timeout=90)
    assert "kernel_info_reply" in replies  # the channel works …
    assert "execute_reply" not in replies and "execute_input" not in replies  # … but runs no code
    s.delete(f"{base}/api/kernels/{kernel.json()['id']}", headers=server_xsrf(s, name), timeout=30)


def test_staff_reach_jupyterlab(hub, browser):
    name = DEMO["staff"]
    s = session(hub, name)
    started(hub, s, name)
    page = browser()
    sign_in_in_browser(page, hub, name, hub.password)
    page.wait_for_url(re.compile(rf"/user/{name}/"), timeout=SPAWN)
    page.goto(f"{hub.url}/user/{name}/lab")
    page.wait_for_selector("#jp-main-dock-panel", timeout=SPAWN)
    page.wait_for_selector(".jp-DirListing-itemText >> text=app.ipynb", timeout=SPAWN)
    shot(page, "team_staff_lab")
    # staff approve accounts (NativeAuthenticator's page) without being hub admins
    assert s.get(f"{hub.url}/hub/authorize", timeout=30).status_code == 200
    assert session(hub, DEMO["member"]).get(f"{hub.url}/hub/authorize", timeout=30).status_code == 403


def test_an_approved_account_in_no_group_is_told_whom_to_ask(hub):
    s = requests.Session()
    s.get(f"{hub.url}/hub/signup", timeout=30)
    password = "Qingxi-" + hub.password
    signed_up = s.post(f"{hub.url}/hub/signup", data={"username": "wang", "signup_password": password,
                                                      "signup_password_confirmation": password,
                                                      "_xsrf": s.cookies.get("_xsrf", path="/hub/")}, timeout=30)
    assert "工作人员审核通过" in signed_up.content.decode()
    refused = s.post(f"{hub.url}/hub/login", data={"username": "wang", "password": password,
                                                   "_xsrf": s.cookies.get("_xsrf", path="/hub/")}, timeout=30)
    assert "尚未通过审核" in refused.content.decode()  # signed up, waiting for staff
    staff = session(hub, DEMO["staff"])
    assert staff.get(f"{hub.url}/hub/authorize/wang", timeout=30).status_code == 200
    wang = session(hub, "wang", password)
    page = wang.get(f"{hub.url}/hub/spawn", timeout=60)
    assert page.status_code == 403 and NO_ROLE in page.content.decode()
    # once staff put the account in a group, the server starts
    reply = staff.post(f"{hub.url}/hub/api/groups/member/users", json={"users": ["wang"]},
                       headers={"X-XSRFToken": staff.cookies.get("_xsrf", path="/hub/")}, timeout=30)
    assert reply.status_code == 200
    started(hub, wang, "wang")


# -- the knowledge-base service behind the hub ------------------------------------------------
def api_token(hub, name: str) -> str:
    """A token of `name`'s own, made after signing in (as a person does from the hub's token page)."""
    s = session(hub, name)
    reply = s.post(f"{hub.url}/hub/api/users/{name}/tokens", json={"scopes": ["access:services!service=kb"],
                                                                     "note": "test"},
                   headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/")}, timeout=30)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["token"]


def test_the_service_answers_each_account_with_its_own_role(hub):
    from concurrent.futures import ThreadPoolExecutor

    api = f"{hub.url}/services/kb/api/"
    # without a token, or with a wrong one: refused, never data
    for headers in ({}, {"Authorization": "token nonsense"}):
        reply = requests.get(api + "search", params={"q": "老年助餐补贴标准"}, headers=headers, timeout=30,
                             allow_redirects=False)
        assert reply.status_code in (302, 401, 403) and "hits" not in reply.text
    tokens = {role: {"Authorization": f"token {api_token(hub, DEMO[role])}"} for role in ("staff", "member", "expert")}
    me = requests.get(api + "me", headers=tokens["member"], timeout=30).json()
    assert (me["name"], me["role"]) == (DEMO["member"], "member")
    hits = requests.get(api + "search", params={"q": "老年助餐补贴标准", "top": 3}, headers=tokens["member"],
                        timeout=60).json()["hits"]
    assert hits and hits[0]["citation"]
    doc_id, quote = hits[0]["doc_id"], hits[0]["text"][:20]
    refused = requests.post(api + "notes", json={"doc": doc_id, "quote": quote, "text": "我有意见", "stance": "质疑",
                                                 "role": "staff"}, headers=tokens["member"], timeout=30)
    assert refused.status_code == 403 and "委员" in refused.json()["error"]
    note = requests.post(api + "notes", json={"doc": doc_id, "quote": quote, "text": "补贴标准应动态调整",
                                              "stance": "补充"}, headers=tokens["expert"], timeout=30)
    assert note.status_code == 201, note.text
    note_id = note.json()["note_id"]
    seen = requests.get(api + "notes", params={"doc": doc_id}, headers=tokens["member"], timeout=30).json()["notes"]
    assert note_id in [n["note_id"] for n in seen]
    reply = requests.post(api + f"notes/{note_id}/replies", json={"text": "赞同"}, headers=tokens["member"], timeout=30)
    assert reply.status_code == 201 and reply.json()["author"] == DEMO["member"]

    # three accounts writing twenty times each at once: staff and the expert notes, the member replies
    def write(job):
        role, n = job
        if role == "member":
            return requests.post(api + f"notes/{note_id}/replies", json={"text": f"第{n}条回复"},
                                 headers=tokens[role], timeout=120).status_code
        return requests.post(api + "notes", json={"doc": doc_id, "quote": quote, "text": f"{role} 第{n}条",
                                                  "stance": "补充"}, headers=tokens[role], timeout=120).status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(write, [(r, n) for r in ("staff", "expert", "member") for n in range(20)]))
    assert codes == [201] * 60
    notes = requests.get(api + "notes", params={"doc": doc_id}, headers=tokens["staff"], timeout=30).json()["notes"]
    assert len([n for n in notes if n["text"].startswith(("staff 第", "expert 第"))]) == 40
    [first] = [n for n in notes if n["note_id"] == note_id]
    assert len([r for r in first["replies"] if r["text"].startswith("第")]) == 20
    assert requests.get(api + "audit", headers=tokens["member"], timeout=30).status_code == 403
    entries = requests.get(api + "audit", params={"limit": 500}, headers=tokens["staff"], timeout=30).json()["entries"]
    assert {DEMO["staff"], DEMO["member"], DEMO["expert"]} <= {e["user"] for e in entries}


# -- last: it stops the hub ----------------------------------------------------------------
def test_idle_servers_are_stopped_and_nothing_is_left_running(hub):
    staff = session(hub, DEMO["staff"])

    def running() -> list[str]:
        users = staff.get(f"{hub.url}/hub/api/users", timeout=30).json()
        return [u["name"] for u in users if u.get("servers") or u.get("server")]

    assert running()
    deadline = time.monotonic() + SERVER_IDLE + 90
    while running() and time.monotonic() < deadline:
        time.sleep(3)
    assert running() == [], "the idle culler left servers running"
    pids = hub.processes()
    assert pids, "the hub's proxy and services should be running"
    left = hub.stop()
    assert left == [], f"stopping the hub left processes running: {left}"
    assert not [pid for pid in pids if alive(pid)]
