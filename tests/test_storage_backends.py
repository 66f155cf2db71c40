"""The storage layer's core flows on both backends: the embedded SQLite file and a PostgreSQL
server (started by the test suite, see tests/pg_server.py). Each test takes the parameter
`backend`; on "postgresql" the knowledge base is pointed at a new empty database through
KB_DATABASE_URL, so the CLI processes the concurrency tests start use it too."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kb.errors import PermissionDenied, StaleEdit
from kb.knowledge_base import KnowledgeBase
from kb.roles import User
from kb.storage import audit as audit_rows

from .conftest import REPO
from .pg_server import server
from .test_topic_concurrency import FIELDS, STAFF, TOPIC, _edit_process, _value

QUERIES = ("老年助餐 补贴标准", "茶产业 品牌", "多式联运 集装箱班列", "食品安全 留样")
SUBSIDY = "对八十周岁以上老年人每餐补贴三元"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch) -> str:
    if request.param == "postgresql":
        monkeypatch.setenv("KB_DATABASE_URL", server().new_database())
    else:
        monkeypatch.delenv("KB_DATABASE_URL", raising=False)
    return request.param


@pytest.fixture
def staff(backend, kb_home, mini_corpus, embedder) -> KnowledgeBase:
    kb = KnowledgeBase(kb_home, embedder=embedder, user="王静", role="staff")
    kb.index([mini_corpus])
    yield kb
    kb.close()


def _results(kb: KnowledgeBase) -> dict:
    return {q: [(h.doc_id, h.chunk_id, round(h.score, 5)) for h in kb.search(q, top_k=5)] for q in QUERIES}


def test_index_and_search_a_mini_corpus(staff, backend):
    assert staff.db.backend == backend
    assert (staff.home / "kb.sqlite").exists() == (backend == "sqlite")
    info = staff.info()
    assert (info["documents"], info["chunks"], info["generation"]) == (3, info["published_chunks"], 1)
    top = staff.search("老年助餐 补贴标准")[0]
    assert top.title == "青溪市社区助餐服务办法"
    doc = staff.document(top.doc_id)
    assert SUBSIDY in doc.text and doc.chunks
    assert [d.title for d in staff.documents("case")] == ["南塘港公铁水联运模式"]


def test_search_results_are_identical_on_both_backends(kb_home, mini_corpus, embedder, monkeypatch):
    monkeypatch.delenv("KB_DATABASE_URL", raising=False)
    lite = KnowledgeBase(kb_home, embedder=embedder)
    lite.index([mini_corpus])
    pg = KnowledgeBase(kb_home.parent / "pg", embedder=embedder, database=server().new_database())
    pg.index([mini_corpus])
    assert pg.db.backend == "postgresql" and _results(pg) == _results(lite)


def test_notes_add_reply_review(staff):
    doc_id = staff.search("老年助餐 补贴标准")[0].doc_id
    expert = staff.for_user(User("李专家", "expert"))
    member = staff.for_user(User("张委员", "member"))
    note = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="三元偏低，建议按物价联动。")
    reply = expert.notes.reply(note.note_id, "补充：参照邻市标准。")
    staff.notes.review(note.note_id, "accepted")
    member.notes.reply(note.note_id, "同意专家意见")
    seen = member.notes.find(doc_id=doc_id)
    assert [n.note_id for n in seen] == [note.note_id]
    assert [r.author for r in seen[0].replies] == ["李专家", "张委员"] and seen[0].replies[0].note_id == reply.note_id
    assert seen[0].review == "accepted" and seen[0].start < seen[0].end
    assert [n.note_id for n in staff.notes.for_span(doc_id, seen[0].start, seen[0].end)] == [note.note_id]


def test_topic_edit_with_versions_refuses_a_stale_one(staff):
    staff.topics.add("社区老年助餐补贴", topic_id="zc", format="双月座谈", year=2009, lead="社会和法制委员会")
    staff.topics.add("茶产业品牌建设", topic_id="cy", format="专题协商", year=None)
    edited = staff.topics.edit("zc", expected_version=1, lead="农业和农村委员会")
    assert edited.version == 2
    with pytest.raises(StaleEdit):
        staff.topics.edit("zc", expected_version=1, lead="人口资源环境委员会")
    topic = staff.topics.get("zc")
    assert (topic.lead, topic.version, topic.updated_by) == ("农业和农村委员会", 2, "王静")
    assert [t.topic_id for t in staff.topics.list()] == ["zc", "cy"]  # newest year first, no year last


def test_pack_draft_and_edits_keep_every_version(staff):
    staff.topics.add("社区老年助餐补贴", topic_id="zc", keywords=["助餐", "补贴", "老年人"])
    pack = staff.packs.draft("zc")
    assert pack.version == 1 and pack.sections[0].items
    pack = staff.packs.note("zc", "1.1", "注意补贴标准已调整")
    pack = staff.packs.mark_key("zc", "1.1", key=True)
    assert pack.version == 3 and [v.version for v in staff.packs.history("zc")] == [3, 2, 1]
    assert staff.packs.get("zc", version=1).sections[0].items[0].note == ""


def test_audit_entries_are_chained_and_filtered(staff):
    staff.topics.add("社区老年助餐补贴", topic_id="zc")
    staff.topics.edit("zc", description="第二轮")
    entries = staff.audit_log(target_type="topic", target_id="zc")
    assert [e.action for e in entries] == ["topic.edit", "topic.add"]
    assert [e.action for e in staff.audit_log(limit=1)] == ["topic.edit"]
    assert len(staff.audit_log(limit=None)) == 3  # with the index entry
    assert audit_rows.chain_problems(staff.db.conn) == []


# -- concurrency: real processes ------------------------------------------------------------
_NOTE_WRITER = """
import sys
from kb.knowledge_base import KnowledgeBase
doc_id, home, name = sys.argv[1:4]
kb = KnowledgeBase(home, model="hashing:64", user=name, role="expert")
for n in range(25):
    kb.notes.add(doc_id, "每餐补贴三元", stance="补充", text=f"{name}的第{n}条意见")
"""


def test_four_processes_writing_notes_at_once_keep_all_100(staff):
    doc_id = staff.search("老年助餐 补贴标准")[0].doc_id
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", _NOTE_WRITER, doc_id, str(staff.home), f"专家{w}"],
                                cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for w in range(4)]
    outcomes = [(w.wait(timeout=300), w.stderr.read()) for w in writers]
    assert all(code == 0 for code, _ in outcomes), outcomes
    notes = staff.notes.find(doc_id=doc_id)
    assert len(notes) == 100 and len({n.text for n in notes}) == 100
    assert len(staff.audit_log(action="note.add", limit=None)) == 100
    assert audit_rows.chain_problems(staff.db.conn) == []


def test_parallel_topic_edits_lose_nothing_and_stale_ones_are_refused(backend, kb_home, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    base = KnowledgeBase(kb_home, **STAFF)
    base.topics.add("社区老年助餐补贴", topic_id=TOPIC, format="双月座谈", year=2009, lead="社会和法制委员会")
    rounds = 3
    for n in range(1, rounds + 1):
        procs = [_edit_process(kb_home, field, _value(field, n)) for field in FIELDS]
        for field, proc in zip(FIELDS, procs):
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"round {n}, --{field}: {err}"
    topic = base.topics.get(TOPIC).as_dict()
    assert {f: topic[f] for f in FIELDS} == {f: _value(f, rounds) for f in FIELDS}
    version = topic["version"]
    assert version == 1 + rounds * len(FIELDS)

    # Edits made on the same version at once: exactly one is applied, the others are refused.
    stale = [subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "topic", "edit", TOPIC, "--home", str(kb_home), "--lead", f"委员会{i}",
         "--version", str(version)], cwd=REPO, env={**os.environ, "KB_MODEL": "hashing:64", "KB_USER": "王静",
                                                    "KB_ROLE": "staff"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    codes = sorted(p.wait(timeout=120) for p in stale)
    assert codes == [0, 2, 2, 2], [p.stderr.read() for p in stale]
    after = base.topics.get(TOPIC)
    assert after.version == version + 1 and after.lead.startswith("委员会")
    assert len(base.audit_log(target_type="topic", action="topic.edit", limit=None)) == rounds * len(FIELDS) + 1
    base.close()


def test_setting_in_settings_toml_selects_postgresql(kb_home, monkeypatch):
    """`database` in settings.toml selects PostgreSQL the same way KB_DATABASE_URL does."""
    monkeypatch.delenv("KB_DATABASE_URL", raising=False)
    url = server().new_database()
    kb_home.mkdir(parents=True)
    (kb_home / "settings.toml").write_text(f'database = "{url}"\n', encoding="utf-8")
    kb = KnowledgeBase(kb_home, model="hashing:64")
    assert kb.db.backend == "postgresql" and kb.settings.database == url
    assert not (kb_home / "kb.sqlite").exists()
    assert kb.info()["schema_version"] == kb.db.schema_version
    kb.close()


# -- kb migrate ----------------------------------------------------------------------------------
def _kb(home, *args: str) -> subprocess.CompletedProcess:
    # a fixed hash seed: matched_terms come from a set, whose order differs between processes
    env = {**os.environ, "KB_MODEL": "hashing:64", "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "kb.cli", *args, "--home", str(home)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_migrate_copies_a_sqlite_knowledge_base_into_postgresql(kb_home, mini_corpus, monkeypatch):
    monkeypatch.delenv("KB_DATABASE_URL", raising=False)
    assert _kb(kb_home, "index", str(mini_corpus), "--quiet").returncode == 0
    lite = KnowledgeBase(kb_home, model="hashing:64")
    doc_id = lite.search("老年助餐 补贴标准")[0].doc_id
    note = lite.for_user(User("李专家", "expert")).notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低")
    lite.for_user(User("张委员", "member")).notes.reply(note.note_id, "同意")
    lite.topics.add("社区老年助餐补贴", topic_id="zc", keywords=["助餐", "补贴"])
    lite.topics.link("zc", "consultation", doc_id=doc_id)
    before = {"info": lite.info(), "notes": len(lite.notes.find()), "topics": len(lite.topics.list()),
              "audit": len(lite.audit_log(limit=None))}
    lite.close()
    searches = {q: _kb(kb_home, "search", q, "--json").stdout for q in QUERIES}

    url = server().new_database()
    done = _kb(kb_home, "migrate", "--to", url)
    assert done.returncode == 0, done.stderr
    assert (kb_home / "settings.toml").read_text(encoding="utf-8").startswith(f'database = "{url}"')
    pg = KnowledgeBase(kb_home, model="hashing:64")
    assert pg.db.backend == "postgresql"
    info = pg.info()
    assert (info["documents"], info["chunks"]) == (before["info"]["documents"], before["info"]["chunks"])
    assert len(pg.notes.find()) == before["notes"] and pg.notes.find()[0].replies[0].text == "同意"
    assert len(pg.topics.list()) == before["topics"] and pg.topics.get("zc").links
    assert len(pg.audit_log(limit=None)) == before["audit"] + 1  # and the migration itself
    assert audit_rows.chain_problems(pg.db.conn) == []
    assert {q: _kb(kb_home, "search", q, "--json").stdout for q in QUERIES} == searches
    # new rows carry on after the copied ids
    assert pg.topics.link("zc", "followup", text="回头看").link_id == 2
    pg.close()

    other = kb_home.parent / "other"
    assert _kb(other, "index", str(mini_corpus), "--quiet").returncode == 0
    again = _kb(other, "migrate", "--to", url)  # a non-empty target is refused, and nothing changes
    assert again.returncode != 0 and "已经有知识库的数据" in again.stderr
    assert not (other / "settings.toml").exists()


def test_backup_and_restore_of_a_postgresql_knowledge_base_use_pg_dump(kb_home, mini_corpus, embedder, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("KB_DATABASE_URL", server().new_database())
    staff = KnowledgeBase(kb_home, embedder=embedder, user="王静", role="staff")
    staff.index([mini_corpus])
    staff.topics.add("社区老年助餐补贴", topic_id="zc")
    searches = _results(staff)
    out = tmp_path / "backup"
    assert _kb(staff.home, "backup", str(out)).returncode == 0
    assert (out / "kb.pgdump").exists() and not (out / "kb.sqlite").exists()

    monkeypatch.setenv("KB_DATABASE_URL", server().new_database())
    restored = tmp_path / "restored"
    done = _kb(restored, "restore", str(out))
    assert done.returncode == 0, done.stderr
    kb = KnowledgeBase(restored, model="hashing:64")
    assert kb.db.url == os.environ["KB_DATABASE_URL"] != staff.db.url
    assert kb.topics.get("zc").title == "社区老年助餐补贴" and kb.info()["documents"] == 3
    assert _results(kb) == searches
    assert [e.action for e in kb.audit_log(limit=2)] == ["kb.restore", "topic.add"]  # the backup's entry came after its dump
    assert audit_rows.chain_problems(kb.db.conn) == []
    with pytest.raises(PermissionDenied, match="permission denied"):  # the grants came back,
        kb.db.write(lambda conn: conn.execute("DELETE FROM audit_log"))
    with pytest.raises(Exception, match="只能追加"):  # and the trigger refusing even the owner
        kb.db.conn.execute("DELETE FROM audit_log")
    kb.close()
    again = _kb(tmp_path / "third", "restore", str(out))  # into the same, now filled database: refused
    assert again.returncode != 0 and "已经有知识库的数据" in again.stderr
    staff.close()
