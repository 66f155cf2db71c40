"""Staff review of expert notes (待审 → 采纳入汇编 / 仅内部参考) before they reach members and exports;
notes on the topic's documents outside the pack; a redraft that keeps hand work (issue 14)."""
import json
import sqlite3

import pytest

from kb.annotations import REVIEW_LABELS
from kb.errors import InvalidNote, NoteNotFound, PermissionDenied
from kb.knowledge_base import KnowledgeBase
from kb.storage.migrations import SCHEMA_VERSION

from .conftest import run_cli as run

SUBSIDY = "对八十周岁以上老年人每餐补贴三元"
SAMPLES = "每日留样四十八小时"


def open_kb(home, embedder, user, role) -> KnowledgeBase:
    return KnowledgeBase(home, embedder=embedder, user=user, role=role)


@pytest.fixture
def staff(kb_home, embedder, mini_corpus):
    kb = open_kb(kb_home, embedder, "王干事", "staff")
    kb.index([mini_corpus])
    kb.topics.add("社区老年助餐补贴", topic_id="zc", keywords=["助餐", "补贴", "老年人"])
    return kb


@pytest.fixture
def expert(staff, kb_home, embedder):
    return open_kb(kb_home, embedder, "李专家", "expert")


@pytest.fixture
def member(staff, kb_home, embedder):
    return open_kb(kb_home, embedder, "张委员", "member")


@pytest.fixture
def rules(staff) -> str:
    return next(d.doc_id for d in staff.documents() if d.title == "青溪市社区助餐服务办法")


# -- the review state -----------------------------------------------------------------
def test_every_note_starts_pending_and_staff_decide_who_when_and_audit(staff, expert, rules):
    by_expert = expert.notes.add(rules, SUBSIDY, stance="质疑", text="标准偏低")
    by_staff = staff.notes.add(rules, SAMPLES, stance="补充", text="留样规定见附件")
    assert (by_expert.review, by_expert.review_label, by_expert.reviewed_by) == ("pending", "待审", None)
    assert by_staff.review == "pending"  # one rule, whoever writes
    assert [n.note_id for n in staff.notes.pending()] == [by_expert.note_id, by_staff.note_id]

    accepted = staff.notes.review(by_expert.note_id, "accepted", reason="依据充分")
    assert (accepted.review, accepted.review_label, accepted.reviewed_by) == ("accepted", "采纳入汇编", "王干事")
    assert accepted.reviewed_at and accepted.review_reason == "依据充分"
    assert staff.notes.get(by_expert.note_id).review == "accepted"
    internal = staff.notes.review(by_staff.note_id, "仅内部参考")
    assert internal.review == "internal" and internal.review_label == REVIEW_LABELS["internal"] == "仅内部参考"
    assert staff.notes.pending() == []
    changed = staff.notes.review(by_expert.note_id, "internal")  # staff may change their decision
    assert changed.review == "internal"

    entries = staff.audit_log(target_type="note", action="note.review")
    assert [e.detail["decision"] for e in entries] == ["internal", "internal", "accepted"]
    assert entries[0].detail["previous"] == "accepted" and entries[-1].detail["reason"] == "依据充分"
    from kb.audit import action_label

    assert action_label("note.review") == "审核论证意见"


def test_only_staff_review_and_bad_decisions_are_refused(staff, expert, member, rules):
    note = expert.notes.add(rules, SUBSIDY, stance="质疑", text="标准偏低")
    for other in (expert, member):
        with pytest.raises(PermissionDenied, match="不能审核论证意见"):
            other.notes.review(note.note_id, "accepted")
    with pytest.raises(PermissionDenied):
        expert.notes.pending()
    with pytest.raises(InvalidNote, match="未知的审核结论"):
        staff.notes.review(note.note_id, "maybe")
    with pytest.raises(NoteNotFound):
        staff.notes.review("n-missing", "accepted")
    assert expert.notes.get(note.note_id).review == "pending"
    assert not staff.audit_log(action="note.review")


def test_members_do_not_see_internal_notes_experts_and_staff_see_all(staff, expert, member, rules):
    shown = expert.notes.add(rules, SUBSIDY, stance="质疑", text="标准偏低")
    waiting = expert.notes.add(rules, SAMPLES, stance="补充", text="x")
    kept_inside = expert.notes.add(rules, SAMPLES, stance="存疑", text="内部讨论")
    staff.notes.review(shown.note_id, "accepted")
    staff.notes.review(kept_inside.note_id, "internal")
    text = staff.document(rules).text
    everything = (0, len(text))
    # members read the discussion (waiting notes marked 待审), but not what staff kept internal
    assert [n.note_id for n in member.notes.find()] == [shown.note_id, waiting.note_id]
    assert [n.note_id for n in member.notes.for_span(rules, *everything)] == [shown.note_id, waiting.note_id]
    assert member.notes.get(waiting.note_id).review_label == "待审"
    assert len(expert.notes.find()) == len(staff.notes.find()) == 3
    assert len(expert.notes.for_span(rules, *everything)) == 3
    assert [n.note_id for n in staff.notes.find(review="pending")] == [waiting.note_id]
    assert [n.note_id for n in staff.notes.for_span(rules, *everything, review="accepted")] == [shown.note_id]
    with pytest.raises(NoteNotFound):
        member.notes.get(kept_inside.note_id)
    assert member.notes.reply(shown.note_id, "同意").parent_id == shown.note_id
    assert member.notes.get(shown.note_id).replies[0].text == "同意"


def test_migration_4_adds_the_review_columns_and_old_notes_wait_for_review(staff, expert, rules, kb_home, embedder):
    note = expert.notes.add(rules, SUBSIDY, stance="质疑", text="标准偏低")
    staff.close()
    expert.close()
    conn = sqlite3.connect(kb_home / "kb.sqlite")
    for column in ("review", "reviewed_by", "reviewed_at", "review_reason"):
        conn.execute(f"ALTER TABLE expert_notes DROP COLUMN {column}")
    conn.execute("PRAGMA user_version=3")  # as written before migration 4
    conn.commit()
    conn.close()
    assert SCHEMA_VERSION >= 4
    again = open_kb(kb_home, embedder, "王干事", "staff")
    assert again.notes.get(note.note_id).review == "pending"
    assert again.notes.review(note.note_id, "accepted").reviewed_by == "王干事"


# -- exports ----------------------------------------------------------------------------
def _policy_item(staff):
    return next(i for _, _, i in staff.packs.get("zc").items() if SUBSIDY in i.quote)


def test_exports_carry_accepted_notes_with_their_quote_and_title_never_pending_ones(staff, expert, rules, tmp_path):
    text = staff.document(rules).text
    staff.packs.add_span("zc", rules, text.index("第三条"), text.index("第四条"))
    accepted = expert.notes.add(rules, SUBSIDY, stance="质疑", text="标准偏低，建议分档。")
    expert.notes.add(rules, SUBSIDY, stance="补充", text="x")  # the tester's throw-away note, left pending
    internal = expert.notes.add(rules, SUBSIDY, stance="存疑", text="仅供内部讨论的意见")
    staff.notes.review(accepted.note_id, "accepted")
    staff.notes.review(internal.note_id, "internal")
    for fmt in ("md", "html", "docx"):
        path = staff.packs.export("zc", fmt, tmp_path / f"pack.{fmt}").path
        if fmt == "docx":
            from docx import Document

            body = "\n".join(p.text for p in Document(str(path)).paragraphs)
        else:
            body = path.read_text(encoding="utf-8")
        assert "标准偏低，建议分档。" in body, fmt
        assert "仅供内部讨论" not in body and "：x" not in body and "【补充】" not in body, fmt
        quoted = body.index(f"“{SUBSIDY}”")  # the sentence the note is about, before the note
        assert quoted < body.index("标准偏低，建议分档。"), fmt
        assert "《青溪市社区助餐服务办法》" in body[quoted:body.index("标准偏低，建议分档。")], fmt


def test_accepted_notes_on_topic_documents_outside_the_pack_get_their_own_section(staff, expert, rules, tmp_path):
    text = staff.document(rules).text
    staff.packs.add_span("zc", rules, text.index("第三条"), text.index("第四条"))
    inside = expert.notes.add(rules, SUBSIDY, stance="支持", text="补贴标准合理")
    outside = expert.notes.add(rules, SAMPLES, stance="质疑", text="留样时间应延长到七十二小时")
    waiting = expert.notes.add(rules, "每日留样", stance="补充", text="尚未审核的意见")
    for note in (inside, outside):
        staff.notes.review(note.note_id, "accepted")
    listed = staff.packs.outside_notes("zc")
    assert {n.note_id for n in listed} == {outside.note_id, waiting.note_id}
    assert [n.note_id for n in staff.packs.outside_notes("zc", review="accepted")] == [outside.note_id]
    body = staff.packs.export("zc", "md", tmp_path / "pack.md").path.read_text(encoding="utf-8")
    assert "## 其他论证意见" in body and "留样时间应延长到七十二小时" in body
    assert body.index("## 其他论证意见") < body.index("留样时间应延长到七十二小时")
    assert body.index("补贴标准合理") < body.index("## 其他论证意见")
    assert "尚未审核的意见" not in body and f"“{SAMPLES}”" in body


def test_pulling_a_noted_passage_into_the_pack(staff, expert, rules):
    text = staff.document(rules).text
    staff.packs.add_span("zc", rules, text.index("第三条"), text.index("第四条"))
    note = expert.notes.add(rules, SAMPLES, stance="质疑", text="留样时间应延长")
    pack = staff.packs.add_note_passage("zc", note.note_id)
    added = next(i for _, _, i in pack.items() if SAMPLES in i.quote)
    assert added.origin == "manual" and added.doc_id == rules and added.start <= note.start < note.end <= added.end
    assert staff.packs.outside_notes("zc") == []
    with pytest.raises(PermissionDenied):
        expert.packs.add_note_passage("zc", note.note_id)


# -- redraft keeps hand work ------------------------------------------------------------------
def test_redraft_keeps_manual_key_and_annotated_items_in_their_order(staff):
    pack = staff.packs.draft("zc")
    policy = pack.section("policy").items
    assert len(policy) >= 2
    hit = next(h for h in staff.search("茶园面积", top_k=5) if h.doc_type == "speech")
    staff.packs.add_hit("zc", hit, section="policy", position=1)
    staff.packs.mark_key("zc", policy[-1].item_id)
    staff.packs.note("zc", policy[0].item_id, "先读这一条")
    before = staff.packs.get("zc").section("policy").items
    kept_ids = [i.item_id for i in before if i.touched]
    assert len(kept_ids) == 3
    pack = staff.packs.draft("zc")
    after = pack.section("policy").items
    ids = [i.item_id for i in after]
    assert [i for i in ids if i in kept_ids] == kept_ids and ids[0] == kept_ids[0]
    assert "重新起草" in pack.change and "保留手工条目 3 条" in pack.change
    fresh = staff.packs.draft("zc", keep_manual=False)
    assert hit.doc_id not in {i.doc_id for i in fresh.section("policy").items}
    assert not any(i.note or i.key for _, _, i in fresh.items())


def test_old_packs_without_origin_load_as_automatic(staff):
    from kb.briefing.model import BriefingPack

    pack = staff.packs.draft("zc")
    data = json.loads(pack.to_json())
    for section in data["sections"]:
        for item in section["items"]:
            item.pop("origin", None)
            item.pop("pinned", None)
    old = BriefingPack.from_json(json.dumps(data, ensure_ascii=False), version=1)
    assert all(i.origin == "auto" and not i.touched for _, _, i in old.items())


# -- command line -----------------------------------------------------------------------------
def test_cli_review_pending_list_and_status(staff, expert, rules, kb_home, capsys):
    home = str(kb_home)
    note = expert.notes.add(rules, SUBSIDY, stance="质疑", text="标准偏低")
    code, out, _ = run(capsys, "note", "list", "--home", home, "--user", "李专家", "--role", "expert")
    assert code == 0 and "待审" in out
    code, out, _ = run(capsys, "note", "list", "--pending", "--home", home, "--user", "王干事")
    assert code == 0 and note.note_id in out and "共 1 条" in out
    code, out, err = run(capsys, "note", "review", note.note_id, "--accept", "--home", home, "--user", "李专家",
                         "--role", "expert")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["错误：专家（李专家）不能审核论证意见（此操作仅限：工作人员）"]
    code, out, err = run(capsys, "note", "list", "--pending", "--home", home, "--user", "张委员", "--role", "member")
    assert code == 2 and "不能审核论证意见" in err
    code, out, _ = run(capsys, "note", "review", note.note_id, "--accept", "--reason", "依据充分", "--home", home,
                       "--user", "王干事")
    assert code == 0 and "采纳入汇编" in out and note.note_id in out
    code, out, _ = run(capsys, "note", "list", "--home", home, "--user", "张委员", "--role", "member")
    assert code == 0 and "采纳入汇编（王干事" in out
    code, out, _ = run(capsys, "note", "review", note.note_id, "--internal", "--home", home, "--user", "王干事",
                       "--json")
    assert code == 0 and json.loads(out)["review"] == "internal"
    code, out, _ = run(capsys, "note", "list", "--home", home, "--user", "张委员", "--role", "member")
    assert code == 0 and "没有符合条件的论证意见" in out
    code, out, err = run(capsys, "note", "review", note.note_id, "--home", home, "--user", "王干事")
    assert code == 2 and "--accept" in err


def test_cli_note_add_for_a_non_staff_role_needs_a_name(staff, rules, kb_home, capsys):
    code, out, err = run(capsys, "note", "add", rules, "--quote", SUBSIDY, "--stance", "质疑", "--text", "偏低",
                         "--home", str(kb_home), "--role", "expert")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--user" in err
    assert "staff（专家）" not in err and not staff.notes.find()


def test_cli_pack_show_lists_notes_outside_the_pack(staff, expert, rules, kb_home, capsys):
    text = staff.document(rules).text
    staff.packs.add_span("zc", rules, text.index("第三条"), text.index("第四条"))
    note = expert.notes.add(rules, SAMPLES, stance="质疑", text="留样时间应延长")
    code, out, _ = run(capsys, "pack", "show", "zc", "--home", str(kb_home), "--user", "王干事")
    assert code == 0 and "未收入汇编的段落上的论证意见" in out and note.note_id in out and "待审" in out
    code, out, _ = run(capsys, "pack", "show", "zc", "--home", str(kb_home), "--user", "张委员", "--role", "member")
    assert code == 0 and note.note_id in out and "待审" in out  # a member sees the waiting note as such
    staff.notes.review(note.note_id, "internal")
    code, out, _ = run(capsys, "pack", "show", "zc", "--home", str(kb_home), "--user", "张委员", "--role", "member")
    assert code == 0 and note.note_id not in out  # …but not one kept for internal reference


def test_pending_of_a_topic_covers_its_documents_inside_and_outside_the_pack(staff, expert, rules, mini_corpus):
    text = staff.document(rules).text
    staff.packs.add_span("zc", rules, text.index("第三条"), text.index("第四条"))
    inside = expert.notes.add(rules, SUBSIDY, stance="支持", text="a")
    outside = expert.notes.add(rules, SAMPLES, stance="质疑", text="b")
    tea = next(d.doc_id for d in staff.documents() if d.doc_type == "speech")
    expert.notes.add(tea, "茶园面积", stance="补充", text="unrelated")
    assert [n.note_id for n in staff.notes.pending("zc")] == [inside.note_id, outside.note_id]
    assert len(staff.notes.pending()) == 3
