"""On PostgreSQL the database itself refuses what a role may not do, even when the application
is bypassed (raw SQL through psycopg under `SET ROLE`) or has a bug (a forbidden write run
through `Database.write` of a member's view). The audit log is append-only for every role and
its owner; a superuser who disables the trigger and edits a row is caught by `kb doctor`."""
from __future__ import annotations

import pytest

from kb.errors import PermissionDenied
from kb.knowledge_base import KnowledgeBase
from kb.maintenance import check
from kb.roles import User

from .pg_server import server

psycopg = pytest.importorskip("psycopg")
SUBSIDY = "对八十周岁以上老年人每餐补贴三元"


@pytest.fixture
def kb(kb_home, mini_corpus, embedder, monkeypatch):
    monkeypatch.setenv("KB_DATABASE_URL", server().new_database())
    kb = KnowledgeBase(kb_home, embedder=embedder, user="王静", role="staff")
    kb.index([mini_corpus])
    kb.topics.add("社区老年助餐补贴", topic_id="zc", keywords=["助餐", "补贴", "老年人"])
    kb.packs.draft("zc")
    doc_id = kb.search("老年助餐 补贴标准")[0].doc_id
    kb.note = kb.for_user(User("李专家", "expert")).notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低")
    yield kb
    kb.close()


def _as(kb, role: str, user: str = "某人"):
    """A raw connection acting as `role`: what someone with the application's credentials but
    not its checks could send."""
    conn = psycopg.connect(kb.db.url, autocommit=False)
    conn.execute(f"SET ROLE kb_{role}")
    conn.execute("SELECT set_config('kb.user', %s, false)", (user,))
    return conn


def _refused(kb, role: str, sql: str, params=(), user: str = "某人") -> bool:
    with _as(kb, role, user) as conn:
        try:
            conn.execute(sql, params)
        except psycopg.errors.InsufficientPrivilege:
            return True
        return False


def test_a_member_cannot_change_packs_topics_or_documents(kb):
    assert _refused(kb, "member", "UPDATE pack_versions SET content = '{}'")
    assert _refused(kb, "member", "DELETE FROM pack_versions")
    assert _refused(kb, "member", "UPDATE topics SET title = '改掉'")
    assert _refused(kb, "member", "DELETE FROM documents")
    assert _refused(kb, "expert", "UPDATE pack_versions SET content = '{}'")
    assert not _refused(kb, "staff", "UPDATE pack_versions SET change = change")


@pytest.mark.parametrize("role", ["member", "expert", "staff"])
def test_no_role_can_delete_or_edit_the_audit_log(kb, role):
    assert _refused(kb, role, "DELETE FROM audit_log")
    assert _refused(kb, role, "UPDATE audit_log SET \"user\" = '别人'")
    assert _refused(kb, role, "TRUNCATE audit_log")


def test_the_owner_is_refused_by_the_trigger(kb):
    with psycopg.connect(kb.db.url) as conn:  # the role the service connects as, without SET ROLE
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="只能追加"):
            conn.execute("DELETE FROM audit_log")


def test_notes_rows_are_guarded_by_row_level_security(kb):
    note = kb.note
    # a member may reply under their own name only, and may not write a top-level note
    reply = ("INSERT INTO expert_notes(note_id, parent_id, doc_id, author, author_role, text, created) "
             "VALUES (%s, %s, %s, %s, 'member', '同意', '2026-01-01')")
    assert not _refused(kb, "member", reply, ("r1", note.note_id, note.doc_id, "张委员"), user="张委员")
    assert _refused(kb, "member", reply, ("r2", note.note_id, note.doc_id, "李专家"), user="张委员")
    assert _refused(kb, "member", reply.replace("%s, %s, %s", "%s, NULL, %s"), ("n1", note.doc_id, "张委员"),
                    user="张委员")
    assert _refused(kb, "member", "UPDATE expert_notes SET text = '改'")
    # an expert edits their own notes only: someone else's rows are not even visible to UPDATE
    with _as(kb, "expert", "王专家") as conn:
        assert conn.execute("UPDATE expert_notes SET text = '改掉别人的'").rowcount == 0
    with _as(kb, "expert", "李专家") as conn:
        assert conn.execute("UPDATE expert_notes SET stance = '补充' WHERE note_id = %s", (note.note_id,)).rowcount == 1
    # members and experts may move the audit chain's head, and no other setting
    with _as(kb, "member") as conn:
        assert conn.execute("UPDATE settings SET value = 'x' WHERE key = 'model'").rowcount == 0


def test_the_service_runs_each_transaction_under_the_persons_role(kb):
    member = kb.for_user(User("张委员", "member"))
    with pytest.raises(PermissionDenied, match="数据库拒绝") as refused:  # a bug in the application
        member.db.write(lambda conn: conn.execute("UPDATE pack_versions SET change = '被改了'"))
    assert isinstance(refused.value.__cause__, psycopg.errors.InsufficientPrivilege)  # said by PostgreSQL
    assert member.db.write(lambda conn: conn.execute("SELECT current_user").fetchone()[0]) == "kb_member"
    member.notes.reply(kb.note.note_id, "同意")  # what a member may do still works
    assert kb.db.write(lambda conn: conn.execute("SELECT current_setting('kb.user')").fetchone()[0]) == "王静"


def test_an_audit_row_edited_by_a_superuser_is_reported_by_doctor(kb):
    assert check(kb.home).ok
    admin = server().admin_url(kb.db.url.rsplit("/", 1)[1])
    with psycopg.connect(admin) as conn:  # only a superuser gets past the trigger, by disabling it
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.execute("UPDATE audit_log SET \"user\" = '别人' WHERE action = 'topic.add'")
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    report = check(kb.home)
    assert not report.ok and any("被改动" in p for p in report.problems)


def test_members_report_on_their_own_research_tasks_and_sign_up(kb):
    kb.cycle.add_task("zc", "走访城南助餐点", members=["张委员"])
    other = kb.cycle.add_task("zc", "走访城北助餐点", members=["赵委员"])
    member = kb.for_user(User("张委员", "member"))
    mine = member.cycle.my_tasks()[0]
    assert member.cycle.update_task(mine.task_id, report="城南三个助餐点运转良好。").report.startswith("城南")
    assert member.cycle.sign_up("zc").member == "张委员"
    # past the application's checks, the database still keeps a member to their own rows and columns
    with _as(kb, "member", "张委员") as conn:
        assert conn.execute("UPDATE cycle_tasks SET report = '改别人的' WHERE task_id = %s",
                            (other.task_id,)).rowcount == 0
    assert _refused(kb, "member", "UPDATE cycle_tasks SET members = '[]'", user="张委员")
    # confirming one's own sign-up fails the policy's check
    assert _refused(kb, "member", "UPDATE cycle_signups SET confirmed_by = '张委员'", user="张委员")
