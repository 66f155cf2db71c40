"""The audit log: every change to documents and notes, with who and when; `kb audit` and `kb note`."""
import ast
import json
import re
import sqlite3

import pytest

from kb import audit
from kb.errors import InvalidNote, PermissionDenied
from kb.knowledge_base import KnowledgeBase
from kb.roles import User
from kb.storage import audit as audit_rows

from .conftest import REPO
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
        ("王干事", "staff", "document.index", "documents"),
        ("李专家", "expert", "note.add", "note"),
        ("张委员", "member", "note.reply", "note"),
        ("王干事", "staff", "document.index", "documents"),
        ("王干事", "staff", "note.reanchor", "document"),
    ]
    add, answer, reanchor = log[1], log[2], log[4]
    assert add.target_id == note.note_id and add.detail["doc_id"] == doc_id and add.detail["stance"] == "质疑"
    assert answer.target_id == reply.note_id and answer.detail["parent_id"] == note.note_id
    assert reanchor.target_id == doc_id and reanchor.detail["reanchored_ids"] == [note.note_id]
    assert all(e.at[:4].isdigit() and "T" in e.at for e in log)
    [imported] = other.for_user(User("王干事", "staff")).audit_log(target_type="note")
    for reader in (other, member):  # the log is the office's: experts and members may not read it
        with pytest.raises(PermissionDenied, match="不能查看操作记录"):
            reader.audit_log()
    assert (imported.user, imported.action, imported.detail["note_ids"]) == ("李专家", "note.import",
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
    assert [e.action for e in staff.audit_log(user="李专家")] == ["note.add", "note.add"]
    assert [e.action for e in staff.audit_log(target_type="documents")] == ["document.index"]
    assert [e.target_id for e in staff.audit_log(action="note.add")][1] == first.note_id
    assert [e.detail["stance"] for e in staff.audit_log(target_id=first.note_id)] == ["支持"]
    assert len(staff.audit_log(limit=1)) == 1


def test_record_lands_with_its_transaction_or_not_at_all(staff):
    conn = staff.store.conn
    with pytest.raises(RuntimeError):
        with staff.store.transaction():
            audit.record(conn, User("王干事", "staff"), "pack.add", "pack", "p1", version=2)
            raise RuntimeError("the change failed")
    assert not staff.audit_log(target_type="pack")


def test_kb_audit_and_note_commands(staff, doc_id, kb_home, capsys, tmp_path):
    home = str(kb_home)
    code, out, _ = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "<b>偏短</b>",
                       "--home", home, "--user", "李专家", "--role", "expert")
    assert code == 0 and out.startswith("已保存论证意见 n")
    note_id = re.match(r"已保存论证意见 (n\w+)", out).group(1)
    staff.notes.review(note_id, "accepted")  # members read accepted notes only
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
    assert code == 0 and [(e["user"], e["action"]) for e in entries] == [("张委员", "note.reply")]
    code, out, _ = run(capsys, "audit", "--home", home, "--type", "note")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and "张委员（委员）  回复论证意见 论证意见 r" in lines[0]
    assert f"王干事（工作人员）  审核论证意见 论证意见 {note_id}" in lines[1]
    assert f"李专家（专家）  新增论证意见 论证意见 {note_id}" in lines[2]
    code, out, _ = run(capsys, "audit", "--home", home, "--action", "document.index")
    assert code == 0 and out.count("\n") == 1 and "王干事（工作人员）  索引文档 文档" in out
    code, out, err = run(capsys, "audit", "--home", home, "--action", "note_add")  # the old spelling
    assert code == 2 and "note.add" in err

    csv_path = tmp_path / "notes.csv"
    code, out, _ = run(capsys, "note", "export", "--format", "csv", "--out", str(csv_path), "--home", home,
                       "--user", "张委员", "--role", "member")
    assert code == 0 and "已导出 1 条" in out and "<b>偏短</b>" in csv_path.read_text(encoding="utf-8-sig")
    code, out, _ = run(capsys, "note", "import", str(csv_path), "--home", home, "--user", "李专家", "--role", "expert")
    assert code == 0 and "导入 0 条，已存在 2 条" in out


def test_note_author_must_be_named_not_left_at_the_default(staff, doc_id, kb_home, capsys, monkeypatch):
    home = str(kb_home)
    code, out, err = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "偏短",
                         "--home", home, "--role", "expert")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["错误：没有指定作者姓名，论证意见不能署名为默认的“staff”"
                                        "（用 --user 姓名 或环境变量 KB_USER 指定作者）"]
    assert not staff.notes.find() and not staff.audit_log(target_type="note")
    monkeypatch.setenv("KB_USER", "李专家")
    code, out, _ = run(capsys, "note", "add", doc_id, "--quote", QUOTE, "--stance", "质疑", "--text", "偏短",
                       "--home", home, "--role", "expert", "--json")
    assert code == 0 and (json.loads(out)["author"], json.loads(out)["author_role"]) == ("李专家", "expert")
    monkeypatch.delenv("KB_USER")
    code, _, err = run(capsys, "note", "reply", json.loads(out)["note_id"], "--text", "附议", "--home", home,
                       "--role", "member")
    assert code == 2 and "--user" in err


def test_old_action_names_are_renamed_when_the_database_is_migrated(staff, kb_home):
    staff.close()
    conn = sqlite3.connect(kb_home / "kb.sqlite")
    for trigger in ("audit_log_no_update", "audit_log_no_delete"):  # a file from then had no append-only guard
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for old in ("index", "note_add", "note_reply", "note_import", "note_reanchor"):
        conn.execute("INSERT INTO audit_log(at, user, role, action, target_type) VALUES('2025-01-01T00:00:00', "
                     "'王干事', 'staff', ?, 'note')", (old,))
    conn.execute("PRAGMA user_version=2")  # as written before migration 3
    conn.commit()
    conn.close()
    reopened = KnowledgeBase(kb_home, user="王干事", role="staff")
    assert {e.action for e in reopened.audit_log()} == {"document.index", "note.add", "note.reply", "note.import",
                                                        "note.reanchor"}
    assert audit_rows.chain_problems(reopened.db.conn) == []  # the old rows were sealed into the chain


def _actions_written_by(path) -> set[str]:
    """Audit action names a module writes: the literal action of each `record(...)` call, and, where a
    call's action is chosen at run time, every string of the module shaped like an action."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literal, computed = set(), False
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "record"):
            continue
        action = next((k.value for k in node.keywords if k.arg == "action"),
                      node.args[2] if len(node.args) > 2 else None)
        if isinstance(action, ast.Constant) and isinstance(action.value, str):
            literal.add(action.value)
        elif action is not None:
            computed = True
    if computed:
        shaped = re.compile(rf"({'|'.join(audit.TARGET_LABELS)})\.[a-z_]+")
        literal |= {n.value for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str) and shaped.fullmatch(n.value)}
    return literal


def test_every_audit_action_in_the_code_has_a_chinese_label():
    used = set().union(*(_actions_written_by(p) for p in (REPO / "kb").rglob("*.py")))
    assert {"document.index", "document.move", "note.add", "note.reanchor", "pack.redraft", "kb.backup"} <= used
    assert sorted(a for a in used if a not in audit.ACTION_LABELS) == []
    assert all(re.fullmatch(r"[a-z]+\.[a-z_]+", a) and a.split(".")[0] in audit.TARGET_LABELS
               for a in audit.ACTION_LABELS)
