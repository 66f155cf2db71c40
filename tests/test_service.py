"""The knowledge-base service (`kb.service`) as a real process behind a stand-in for the hub's
API (tests/hub_double.py), and the client (`kb.remote`) the app uses in team mode.

Identity comes only from the token: a request body that names a user or a role changes
nothing; roles come from the account's hub groups."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from kb.errors import PermissionDenied
from kb.knowledge_base import KnowledgeBase
from kb.remote import RemoteKnowledgeBase
from kb.search import Hit
from kb.topics import Topic

from .conftest import REGULATION
from .hub_double import SERVICE_TOKEN

REPO = Path(__file__).resolve().parent.parent
ACCOUNTS = {
    "tok-staff": {"name": "demo-staff", "groups": ["staff"]},
    "tok-member": {"name": "demo-member", "groups": ["member"]},
    "tok-expert": {"name": "demo-expert", "groups": ["expert"]},
    "tok-expert2": {"name": "林雪芬", "groups": ["expert"]},
    "tok-nogroup": {"name": "visitor", "groups": []},
    "tok-wrong-scope": {"name": "demo-member", "groups": ["member"], "scopes": ["access:servers!user=demo-member"]},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, headers=None, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process ended: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if requests.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A knowledge base with the mini corpus and a topic, the hub double and the service."""
    from .conftest import CASE, SPEECH

    root = tmp_path_factory.mktemp("team")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "助餐办法.txt").write_bytes(REGULATION.encode("gb18030"))
    (corpus / "茶产业讲话.md").write_text("# " + SPEECH, encoding="utf-8")
    (corpus / "南塘港案例.txt").write_text(CASE, encoding="utf-8")
    (root / "allowed").mkdir()
    (root / "allowed" / "物流意见.txt").write_text("关于推进物流枢纽建设的意见\n第一条 建设公铁水联运中心。\n", encoding="utf-8")
    home = root / "kb"
    kb = KnowledgeBase(home, model="hashing:64")
    kb.index([corpus])
    kb.topics.add("推进老年助餐服务提质扩面", year=2025, topic_id="zhucan")
    kb.close()
    (home / "settings.toml").write_text(f'allowed_sources = ["{root / "allowed"}"]\n', encoding="utf-8")

    hub_port, port = free_port(), free_port()
    hub = subprocess.Popen([sys.executable, str(REPO / "tests" / "hub_double.py"), str(hub_port),
                            json.dumps({**ACCOUNTS, SERVICE_TOKEN: {"name": "kb-service"}})],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    env = dict(os.environ, KB_HOME=str(home), KB_MODEL="hashing:64",
               JUPYTERHUB_API_URL=f"http://127.0.0.1:{hub_port}/hub/api", JUPYTERHUB_API_TOKEN=SERVICE_TOKEN,
               JUPYTERHUB_SERVICE_NAME="kb", JUPYTERHUB_CLIENT_ID="service-kb",
               JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}", JUPYTERHUB_SERVICE_PREFIX="/services/kb/",
               JUPYTERHUB_BASE_URL="/")
    service = subprocess.Popen([sys.executable, "-m", "kb.service"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/services/kb/"
    try:
        _wait(f"http://127.0.0.1:{hub_port}/hub/api/user", hub)
        _wait(url + "api/me", service, headers={"Authorization": "token tok-staff"})
        yield {"url": url, "home": home, "root": root}
    finally:
        for proc in (service, hub):
            proc.terminate()
            proc.wait(10)


def get(team, path, token=None, **params):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(team["url"] + "api/" + path, headers=headers, params=params, timeout=30)


def post(team, path, token=None, **payload):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.post(team["url"] + "api/" + path, headers=headers, json=payload, timeout=30)


def client(team, token) -> RemoteKnowledgeBase:
    return RemoteKnowledgeBase(team["url"], token, home=team["root"] / f"local-{token}")


# -- who is asking ------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "nonsense", "tok-wrong-scope"])
def test_no_valid_token_gets_no_data(team, token):
    for path in ("search?q=助餐", "documents", "topics", "notes", "audit"):
        response = get(team, path, token)
        assert response.status_code in (401, 403), (path, response.status_code)
        assert "助餐" not in response.text and "hits" not in response.text


def test_role_comes_from_the_hub_group_not_from_the_request(team):
    me = get(team, "me", "tok-member").json()
    assert (me["name"], me["role"]) == ("demo-member", "member")
    assert "annotate" not in me["may"] and "reply" in me["may"]
    # a body that claims another identity is ignored: the member is still refused
    refused = post(team, "notes", "tok-member", doc="助餐办法", text="补贴标准偏低", stance="质疑",
                   user="林雪芬", role="staff", author="陈国华主席")
    assert refused.status_code == 403
    assert "委员" in refused.json()["error"] and refused.json()["error"].isascii() is False


def test_an_account_without_a_group_is_refused_with_a_reason(team):
    response = get(team, "search", "tok-nogroup", q="助餐")
    assert response.status_code == 403
    assert "尚未分配角色" in response.json()["error"]


# -- the API the issue names ---------------------------------------------------------
def test_search_documents_topics(team):
    found = get(team, "search", "tok-member", q="老年助餐补贴", top=3).json()
    assert found["hits"] and found["hits"][0]["citation"]
    doc_id = found["hits"][0]["doc_id"]
    document = get(team, f"documents/{doc_id}", "tok-member").json()
    assert "每餐补贴" in document["text"]
    assert get(team, "documents/nope", "tok-member").status_code == 404
    topics = get(team, "topics", "tok-member").json()["topics"]
    assert [t["topic_id"] for t in topics] == ["zhucan"]
    assert get(team, "search", "tok-member", q="").status_code == 400


def test_expert_note_seen_by_member_who_replies_and_audit_names_accounts(team):
    doc_id = get(team, "search", "tok-expert", q="每餐补贴", top=1).json()["hits"][0]["doc_id"]
    made = post(team, "notes", "tok-expert", doc=doc_id, quote="对八十周岁以上老年人每餐补贴三元", stance="质疑",
                text="补贴标准多年未调整，建议建立动态调整机制。", author="陈国华主席")
    assert made.status_code == 201, made.text
    note = made.json()
    assert note["author"] == "demo-expert"
    seen = get(team, "notes", "tok-member", doc=doc_id).json()["notes"]
    assert note["note_id"] in [n["note_id"] for n in seen]
    reply = post(team, f"notes/{note['note_id']}/replies", "tok-member", text="赞同，建议写入协商建议。")
    assert reply.status_code == 201, reply.text
    assert reply.json()["author"] == "demo-member"
    assert get(team, "audit", "tok-member").status_code == 403
    assert get(team, "audit", "tok-expert").status_code == 403
    entries = get(team, "audit", "tok-staff").json()["entries"]
    assert {"demo-expert", "demo-member"} <= {e["user"] for e in entries}


def test_three_accounts_writing_twenty_notes_each_at_once_keep_all_sixty(team):
    doc_id = get(team, "search", "tok-staff", q="食品安全留样", top=1).json()["hits"][0]["doc_id"]
    before = len(get(team, "notes", "tok-staff", doc=doc_id).json()["notes"])

    def write(args):
        token, n = args
        return post(team, "notes", token, doc=doc_id, quote="每日留样四十八小时", stance="补充",
                    text=f"{token} 的第 {n} 条意见").status_code

    jobs = [(t, n) for t in ("tok-staff", "tok-expert", "tok-expert2") for n in range(20)]
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(write, jobs))
    assert codes == [201] * 60
    notes = get(team, "notes", "tok-staff", doc=doc_id).json()["notes"]
    assert len(notes) - before == 60
    assert {n["author"] for n in notes} >= {"demo-staff", "demo-expert", "林雪芬"}


# -- the client the app uses ------------------------------------------------------------
def test_client_has_the_methods_of_the_knowledge_base(team):
    kb = client(team, "tok-staff")
    assert (kb.user.name, kb.user.role) == ("demo-staff", "staff")
    hits = kb.search("老年助餐补贴", 3)
    assert hits and isinstance(hits[0], Hit) and hits[0].citation.title
    assert kb.document(hits[0].doc_id).title == hits[0].title
    assert [t.topic_id for t in kb.topics.list()] == ["zhucan"] and isinstance(kb.topics.list()[0], Topic)
    pack = kb.packs.draft("zhucan")
    assert pack.version >= 1
    pack = kb.packs.add_hit(kb.topics.get("zhucan"), hits[0], expected_version=pack.version) \
        if hits[0].doc_id not in {i.doc_id for _s, _p, i in pack.items()} else pack
    result = kb.packs.export("zhucan", "docx", kb.home / "exports")
    assert result.path.exists() and result.path.parent == kb.home / "exports" and result.path.stat().st_size > 5000
    assert kb.info()["documents"] >= 3


def test_client_errors_keep_their_kind(team):
    member = client(team, "tok-member")
    with pytest.raises(PermissionDenied) as refused:
        member.packs.draft("zhucan")
    assert "委员" in str(refused.value)
    with pytest.raises(PermissionDenied):
        member.audit_log()
    with pytest.raises(PermissionDenied):
        member.index([team["root"] / "allowed" / "物流意见.txt"])


def test_staff_index_by_upload_and_only_allowed_server_folders(team, tmp_path):
    staff = client(team, "tok-staff")
    upload = tmp_path / "社区食堂案例.txt"
    upload.write_text("社区长者食堂运营案例\n一、做法\n长者食堂引入社会餐饮企业连锁运营，中午供应十二种菜品。\n", encoding="utf-8")
    steps = []
    report = staff.index([upload], progress=lambda n, total, name: steps.append((n, total)))
    assert report.added == 1
    assert any("长者食堂" in h.text for h in staff.search("长者食堂连锁运营", 3))
    # a server folder outside the allowed sources is refused; one inside is indexed
    refused = post(team, "uploads", "tok-staff", paths=[str(team["home"])])
    assert refused.status_code == 403 and "允许的来源" in refused.json()["error"]
    accepted = post(team, "uploads", "tok-staff", paths=[str(team["root"] / "allowed")])
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    for _ in range(100):
        job = get(team, f"index/{job['job']}", "tok-staff").json()
        if job["finished"]:
            break
        time.sleep(0.2)
    assert job["finished"] and not job["error"]
    # an upload with a path in its name lands in the uploads folder under its own name only
    files = {"file": ("../../etc/逃逸.txt", "第一条 测试。".encode("utf-8"))}
    response = requests.post(team["url"] + "api/uploads", headers={"Authorization": "token tok-staff"}, files=files,
                             timeout=30)
    assert response.status_code == 202
    assert (team["home"] / "uploads" / "逃逸.txt").exists()


def _kb_cli(team, token, *argv):
    env = dict(os.environ, KB_SERVICE_URL=team["url"], JUPYTERHUB_API_TOKEN=token, KB_LOCAL_DIR=str(team["root"]))
    env.pop("KB_HOME", None)
    return subprocess.run([str(REPO / ".venv" / "bin" / "kb"), *argv], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def test_command_line_on_the_team_server_acts_as_the_signed_in_account(team):
    found = _kb_cli(team, "tok-member", "search", "老年助餐", "补贴", "--top", "2")
    assert found.returncode == 0, found.stderr
    assert "助餐" in found.stdout
    # the flags that used to choose an identity are refused, not obeyed
    claimed = _kb_cli(team, "tok-member", "pack", "draft", "zhucan", "--role", "staff", "--user", "陈国华主席")
    assert claimed.returncode != 0
    assert "团队服务器上不能用 --user、--role" in claimed.stderr
    refused = _kb_cli(team, "tok-member", "pack", "draft", "zhucan")
    assert refused.returncode != 0 and "委员（demo-member）不能编辑调研资料汇编" in refused.stderr
    listed = _kb_cli(team, "tok-staff", "docs")
    assert listed.returncode == 0 and "青溪市社区助餐服务办法" in listed.stdout


def test_app_on_the_team_server_signs_in_as_the_account_and_loads_no_model(team, monkeypatch):
    from kb.widgets.app import TAB_DOCS, TAB_SEARCH, ResearchApp

    monkeypatch.setenv("KB_SERVICE_URL", team["url"])
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "tok-member")
    monkeypatch.setenv("KB_LOCAL_DIR", str(team["root"] / "member-files"))
    monkeypatch.setenv("KB_USER", "陈国华主席")  # a name from the environment is not an identity either
    monkeypatch.setenv("KB_ROLE", "staff")
    app = ResearchApp()
    assert app.logged_in and (app.user_name, app.role) == ("demo-member", "member")
    assert "demo-member（委员）" in app.header.value
    assert app.switch_button.layout.display == "none"  # no 切换身份 in team mode
    assert app.login_box not in app.body.children
    app.name_box.value, app.role_buttons.value = "陈国华主席", "staff"
    app.login()  # even if the hidden login were reached, it is refused
    assert (app.user_name, app.kb.user.role) == ("demo-member", "member")
    assert "不能在应用里选择" in app.status
    docs = app.panels[TAB_DOCS]
    assert docs.upload_row.layout.display == "none" and docs.folder_box.layout.display == "none"
    search = app.panels[TAB_SEARCH]
    hits = search.search("老年助餐补贴")
    assert hits and "每餐补贴" in hits[0].text and hits[0].title == "青溪市社区助餐服务办法"
    # the panels talk to the service: the person's kernel holds neither the model nor the index
    # (its memory is measured in benchmarks/team_service.py and the hub test)
    assert isinstance(app.kb, RemoteKnowledgeBase) and all(p.kb is app.kb for p in app.panels.values())
