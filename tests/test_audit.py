"""The audit log: every change to documents and notes, with who and when; `kb audit` and `kb note`."""
import json
import re

import pytest

from kb import audit
from kb.errors import InvalidNote
from kb.knowledge_base import KnowledgeBase
from kb.roles import User

from .conftest import run_cli as run

QUOTE = "第四条 助餐点应当严格落实食品安全责任"


@pytest.fixture
def staff(kb_home, mini_corpus, embedder):
    kb = KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff")
    kb.index([mini_corpus])
    return kb


@pytest.fixture
def doc_id(staff):
    return next(d.doc_id for d in staff.documents() if d.title == "青溪市社区助餐服务办法")


def test_each_change_is_recorded_with_who_and_what(staff, doc_id, kb_home, mini_corpus, embedder, tmp_path):
    expert = KnowledgeBase(kb_home, embedder=embedder, user="李专家", role="expert")
    note = expert.notes.add(doc_id, QUOTE, stance="质疑", text="留样时间不够")
    member = KnowledgeBase(kb_home, embedder=embedder, user="张委员", role="member")
    reply = member.notes.reply(note.note_id, "附议")
    path = mini_corpus / "助餐办法.txt"
    path.write_bytes(path.read_bytes().replace("第一章 总则".encode("gb18030"), "第一章 总则（修订）".encode("gb18030")))
    staff.index([mini_corpus])
    out = tmp_path / "notes.json"
    expert.notes.export(out)
    other = KnowledgeBase(tmp_path / "other", embedder=embedder, user="李专家", role="expert")
    other.notes.import_file(out)

    log = list(reversed(staff.audit_log()))
    assert [(e.user, e.role, e.action, e.target_type) for e in log] == [
        ("王干事", "staff", "index", "documents"),
        ("李专家", "expert", "note_add", "note"),
        ("张委员", "member", "note_reply", "note"),
        ("王干事", "staff", "index", "documents"),
        ("王干事", "staff", "note_reanchor", "document"),
    ]
    add, answer, reanchor = log[1], log[2], log[4]
    assert add.target_id == note.note_id and add.detail["doc_id"] == doc_id and add.detail["stance"] == "质疑"
    assert answer.target_id == reply.note_id and answer.detail["parent_id"] == note.note_id
    assert reanchor.target_id == doc_id and reanchor.detail["reanchored_ids"] == [note.note_id]
    assert all(e.at[:4].isdigit() and "T" in e.at for e in log)
    [imported] = other.audit_log(target_type="note")
    assert (imported.user, imported.action, imported.detail["note_ids"]) == ("李专家", "note_import",
                                                                            [note.note_id, reply.note_id])


def test_refused_or_invalid_changes_leave_no_entry(staff, doc_id, kb_home, embedder):
    before = len(staff.audit_log())
    expert = KnowledgeBase(kb_home, embedder=embedder, user="李专家", role="expert")
    with pytest.raises(InvalidNote):
        expert.notes.add(doc_id, "原文里没有这句话", stance="质疑", text="x")
    assert len(staff.audit_log()) == before


def test_entries_filter_by_user_type_and_target(staff, doc_id, kb_home, embedder):
    expert = KnowledgeBase(kb_home, embedder=embedder, user="李专家", role="expert")
    first = expert.notes.add(doc_id, QUOTE, stance="支持", text="a")
    expert.notes.add(doc_id, QUOTE, stance="存疑", text="b")
    assert [e.action for e in staff.audit_log(user="李专家")] == ["note_add", "note_add"]
    assert [e.action for e in staff.audit_log(target_type="documents")] == ["index"]
    assert [e.detail["stance"] for e in staff.audit_log(target_id=first.note_id)] == ["支持"]
    assert len(staff.audit_log(limit=1)) == 1


def test_record_lands_with_its_transaction_or_not_at_all(staff):
    conn = staff.store.conn
    with pytest.raises(RuntimeError):
        with staff.store.transaction():
            audit.record(conn, User("王干事", "staff"), "pack_save", "pack", "p1", version=2)
            raise RuntimeError("the change failed")
    assert not staff.audit_log(target_type="pack")


def test_kb_audit_and_note_commands(staff, doc_id, kb_home, capsys, tmp_path):
    home = str(kb_home)
    code, out, _ = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "<b>偏短</b>",
                       "--home", home, "--user", "李专家", "--role", "expert")
    assert code == 0 and out.startswith("已保存论证意见 n")
    note_id = re.match(r"已保存论证意见 (n\w+)", out).group(1)
    code, out, _ = run(capsys, "note", "reply", note_id, "--text", "附议", "--home", home, "--user", "张委员",
                       "--role", "member")
    assert code == 0 and note_id in out
    code, out, _ = run(capsys, "note", "list", "--doc", doc_id, "--home", home, "--role", "member", "--user", "张委员")
    assert code == 0 and f"[{note_id}] 质疑 · 李专家（专家）" in out and "↳ 张委员（委员）" in out and "共 1 条" in out
    code, out, _ = run(capsys, "note", "list", "--orphaned", "--home", home, "--user", "张委员", "--role", "member")
    assert code == 0 and "没有符合条件的论证意见" in out
    code, out, err = run(capsys, "note", "show", "n-missing", "--home", home, "--user", "张委员", "--role", "member")
    assert code == 2 and "没有编号为 n-missing 的论证意见" in err

    code, out, _ = run(capsys, "audit", "--home", home, "--by", "张委员", "--json")
    entries = json.loads(out)
    assert code == 0 and [(e["user"], e["action"]) for e in entries] == [("张委员", "note_reply")]
    code, out, _ = run(capsys, "audit", "--home", home, "--type", "note")
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "张委员（委员）  回复论证意见" in lines[0] and "李专家（专家）  新增论证意见" in lines[1]

    csv_path = tmp_path / "notes.csv"
    code, out, _ = run(capsys, "note", "export", "--format", "csv", "--out", str(csv_path), "--home", home,
                       "--user", "张委员", "--role", "member")
    assert code == 0 and "已导出 1 条" in out and "<b>偏短</b>" in csv_path.read_text(encoding="utf-8-sig")
    code, out, _ = run(capsys, "note", "import", str(csv_path), "--home", home, "--user", "李专家", "--role", "expert")
    assert code == 0 and "导入 0 条，已存在 2 条" in out
