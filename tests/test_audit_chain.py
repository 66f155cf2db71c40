"""The audit log only grows: SQLite refuses UPDATE and DELETE on it, and each row is chained to
the one before by its hash, so a row edited or deleted with another tool (the trigger dropped
first) is found by `kb doctor`, which names where the chain breaks."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kb.knowledge_base import KnowledgeBase
from kb.storage import audit as audit_rows

from .conftest import REPO

QUOTE = "第四条 助餐点应当严格落实食品安全责任"


@pytest.fixture
def home(kb_home, mini_corpus, embedder) -> Path:
    staff = KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff")
    staff.index([mini_corpus])
    doc = next(d.doc_id for d in staff.documents() if d.title == "青溪市社区助餐服务办法")
    expert = staff.for_user(type(staff.user)("李专家", "expert"))
    note = expert.notes.add(doc, QUOTE, stance="质疑", text="留样时间不够")
    staff.notes.review(note.note_id, "accepted")
    staff.topics.add("推进老年助餐服务提质扩面", year=2025, topic_id="zc")
    staff.close()
    return kb_home


def sql(home: Path, statement: str) -> subprocess.CompletedProcess:
    """Another program on the server opening kb.sqlite (a separate process, as a person with sqlite3 would)."""
    code = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"
    return subprocess.run([sys.executable, "-c", code, str(home / "kb.sqlite"), statement],
                          capture_output=True, text=True, timeout=60)


def doctor(home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb.cli", "doctor", "--home", str(home)], capture_output=True,
                          text=True, cwd=REPO, timeout=120, env={"KB_MODEL": "hashing:64", "PATH": "/usr/bin"})


def test_every_change_is_chained_and_the_chain_checks_out(home):
    conn = sqlite3.connect(home / "kb.sqlite")
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
    assert len(rows) >= 4 and rows[0]["prev_hash"] == audit_rows.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:]))
    assert audit_rows.chain_problems(conn) == []
    done = doctor(home)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET user='陈国华主席' WHERE id=2",
                                       "DELETE FROM audit_log WHERE id=2"])
def test_the_database_refuses_to_change_the_log(home, statement):
    done = sql(home, statement)
    assert done.returncode != 0 and "操作记录只能追加" in done.stderr
    assert doctor(home).returncode == 0


@pytest.mark.parametrize("tamper, where", [
    ("UPDATE audit_log SET user='陈国华主席' WHERE id=2", "第 2 条"),      # an edited row
    ("DELETE FROM audit_log WHERE id=2", "第 3 条之前"),                    # a row deleted in the middle
    ("DELETE FROM audit_log WHERE id=(SELECT MAX(id) FROM audit_log)", "不见了"),  # the newest one deleted
])
def test_a_row_changed_behind_the_trigger_is_found_by_doctor(home, tamper, where):
    done = sql(home, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; " + tamper)
    assert done.returncode == 0, done.stderr
    report = doctor(home)
    assert report.returncode != 0
    assert where in report.stdout + report.stderr and "操作记录" in report.stdout + report.stderr


def test_a_knowledge_base_from_before_the_chain_is_sealed_when_it_opens(home, embedder):
    # make it look like schema 4 (no chain yet): drop the columns' content and the version
    conn = sqlite3.connect(home / "kb.sqlite")
    conn.executescript("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; "
                       "UPDATE audit_log SET prev_hash=NULL, hash=NULL; DELETE FROM settings WHERE key='audit_head'; "
                       "PRAGMA user_version=4;")
    conn.close()
    kb = KnowledgeBase(home, embedder=embedder, user="王干事", role="staff")
    assert kb.db.schema_version >= 5
    assert audit_rows.chain_problems(kb.db.conn) == []
    kb.topics.edit("zc", lead="社会和法制委员会")
    assert audit_rows.chain_problems(kb.db.conn) == []
    kb.close()
    assert sql(home, "DELETE FROM audit_log").returncode != 0  # the trigger is back
