"""Roles: staff manage material, experts write anchored notes, members read and reply."""
import json

import pytest

from kb.errors import PermissionDenied
from kb.knowledge_base import KnowledgeBase
from kb.roles import User

from .conftest import run_cli as run

QUOTE = "第三条 对八十周岁以上老年人每餐补贴三元"


@pytest.fixture
def indexed(kb_home, mini_corpus, embedder):
    KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff").index([mini_corpus])
    return kb_home


@pytest.fixture
def doc_id(indexed, embedder):
    kb = KnowledgeBase(indexed, embedder=embedder, user="王干事", role="staff")
    return next(d.doc_id for d in kb.documents() if d.title == "青溪市社区助餐服务办法")


def test_roles_accept_chinese_labels_and_refuse_unknown_ones():
    assert User("李专家", "专家").role == "expert" and User("张委员", "委员").role_label == "委员"
    with pytest.raises(PermissionDenied, match="未知角色"):
        User("某人", "admin")
    with pytest.raises(PermissionDenied, match="用户名为空"):
        User(" ", "staff")


@pytest.mark.parametrize("role, allowed", [
    ("staff", {"read", "index", "manage_topics", "manage_packs", "annotate", "reply", "review_notes", "audit",
               "read_internal_notes", "manage_cycle", "update_own_tasks", "sign_up"}),
    ("expert", {"read", "annotate", "reply", "read_internal_notes"}),
    ("member", {"read", "reply", "update_own_tasks", "sign_up"}),
])
def test_what_each_role_may_do(role, allowed):
    user = User("某人", role)
    from kb.roles import ACTIONS

    assert {action for action in ACTIONS if user.can(action)} == allowed


def test_member_cannot_annotate_and_nothing_is_written(indexed, doc_id, embedder):
    member = KnowledgeBase(indexed, embedder=embedder, user="张委员", role="member")
    with pytest.raises(PermissionDenied) as err:
        member.notes.add(doc_id, QUOTE, stance="质疑", text="我有不同意见")
    assert err.value.user_message() == "委员（张委员）不能撰写论证意见（锚定到原文）（此操作仅限：工作人员、专家）"
    assert member.notes.find() == []
    assert not member.for_user(User("王干事", "staff")).audit_log(target_type="note")


def test_member_may_read_and_reply_staff_and_experts_may_annotate(indexed, doc_id, embedder):
    staff = KnowledgeBase(indexed, embedder=embedder, user="王干事", role="staff")
    expert = KnowledgeBase(indexed, embedder=embedder, user="李专家", role="expert")
    by_staff = staff.notes.add(doc_id, QUOTE, stance="补充", text="补贴资金来源见附件")
    by_expert = expert.notes.add(doc_id, QUOTE, stance="质疑", text="标准偏低")
    member = KnowledgeBase(indexed, embedder=embedder, user="张委员", role="member")
    staff.notes.review(by_staff.note_id, "internal")  # kept for staff and experts
    assert [n.note_id for n in member.notes.find()] == [by_expert.note_id]  # waiting: shown as 待审
    staff.notes.review(by_staff.note_id, "accepted")
    member.notes.reply(by_expert.note_id, "同意")
    assert [(n.author_role, len(n.replies)) for n in member.notes.find()] == [("staff", 0), ("expert", 1)]
    assert by_staff.author_role == "staff"


def test_experts_and_members_may_not_index_or_import_notes(indexed, mini_corpus, embedder, tmp_path):
    expert = KnowledgeBase(indexed, embedder=embedder, user="李专家", role="expert")
    with pytest.raises(PermissionDenied, match="不能添加或更新文档"):
        expert.index([mini_corpus])
    member = KnowledgeBase(indexed, embedder=embedder, user="张委员", role="member")
    with pytest.raises(PermissionDenied, match="不能撰写论证意见"):
        member.notes.import_file(tmp_path / "notes.json")


def test_cli_refuses_a_member_with_one_line_and_exit_2(indexed, doc_id, capsys):
    code, out, err = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "意见",
                         "--home", str(indexed), "--user", "张委员", "--role", "member")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["错误：委员（张委员）不能撰写论证意见（锚定到原文）（此操作仅限：工作人员、专家）"]


def test_cli_takes_user_and_role_from_the_environment(indexed, doc_id, capsys, monkeypatch):
    monkeypatch.setenv("KB_USER", "张委员")
    monkeypatch.setenv("KB_ROLE", "member")
    code, _, err = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "意见",
                       "--home", str(indexed))
    assert code == 2 and "委员（张委员）不能撰写论证意见" in err
    monkeypatch.setenv("KB_USER", "李专家")
    monkeypatch.setenv("KB_ROLE", "expert")
    code, out, _ = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "意见",
                       "--home", str(indexed), "--json")
    assert code == 0 and json.loads(out)["author"] == "李专家"
