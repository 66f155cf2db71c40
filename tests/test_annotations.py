"""Expert notes: anchoring, surviving re-indexing, threads, listing, export/import, HTML, many writers."""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.anchoring import TextAnchor, anchor_at, relocate
from kb.annotations import Annotation, Reply, note_html
from kb.errors import DocumentNotFound, InvalidNote, NoteNotFound
from kb.knowledge_base import KnowledgeBase
from kb.roles import User

from .conftest import REPO

RULES = """青溪市社区助餐服务办法
发文机关：青溪市人民政府
文号：青政发〔2023〕15号
发布日期：2023年6月12日
第一条 为了规范本市社区老年助餐服务，保障老年人吃得上、吃得好，制定本办法。
第二条 助餐点应当公示价格。城区助餐点由街道负责日常监督。
第三条 对八十周岁以上老年人每餐补贴三元，对低保老年人每餐补贴五元。
第四条 助餐点应当严格落实食品安全责任，每日留样四十八小时。
第五条 助餐点应当公示价格。农村助餐点由乡镇负责日常监督。
第六条 本办法自2023年7月1日起施行。
"""
SUBSIDY = "对八十周岁以上老年人每餐补贴三元"
SAMPLES = "每日留样四十八小时"
PRICES = "助餐点应当公示价格"  # occurs in 第二条 and 第五条


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "docs"
    path.mkdir()
    (path / "助餐办法.txt").write_text(RULES, encoding="utf-8")
    return path


def open_kb(home, embedder, user="李专家", role="expert") -> KnowledgeBase:
    return KnowledgeBase(home, embedder=embedder, user=user, role=role)


@pytest.fixture
def staff(kb_home, embedder, folder) -> KnowledgeBase:
    kb = open_kb(kb_home, embedder, "王干事", "staff")
    kb.index([folder])
    return kb


@pytest.fixture
def expert(staff, kb_home, embedder) -> KnowledgeBase:
    return open_kb(kb_home, embedder)


@pytest.fixture
def doc_id(staff) -> str:
    return staff.documents()[0].doc_id


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / "助餐办法.txt"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def points_at_quote(kb: KnowledgeBase, note: Annotation) -> bool:
    return kb.document(note.doc_id).text[note.start:note.end] == note.quote


# -- creating -----------------------------------------------------------------
def test_note_is_anchored_by_quote_context_offsets_and_chunk(expert, doc_id):
    note = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="三元偏低，建议按物价联动。")
    doc = expert.document(doc_id)
    assert doc.text[note.start:note.end] == SUBSIDY and note.start == doc.text.index(SUBSIDY)
    assert doc.text[note.start - len(note.prefix):note.start] == note.prefix and len(note.prefix) == 32
    assert doc.text[note.end:note.end + len(note.suffix)].startswith("，对低保老年人")
    holder = next(c for c in doc.chunks if c.start <= note.start and note.end <= c.end)
    assert note.chunk_hash == holder.content_hash
    assert (note.status, note.text_hash, note.author, note.author_role) == ("anchored", doc.text_hash, "李专家", "expert")
    stored = expert.notes.get(note.note_id)
    assert stored.quote == SUBSIDY and stored.original_quote == SUBSIDY and stored.created == note.created


def test_first_use_inside_a_transaction_does_not_commit_it(kb_home, embedder):
    kb = open_kb(kb_home, embedder, "王干事", "staff")
    with pytest.raises(RuntimeError):
        with kb.store.transaction() as conn:
            conn.execute("INSERT INTO settings(key, value) VALUES('probe', '1')")
            kb.notes  # the table comes with the migrations; opening the notes writes nothing
            raise RuntimeError("roll back")
    assert kb.store.get_setting("probe") is None


def test_bad_notes_are_refused_with_chinese_messages(expert, doc_id):
    with pytest.raises(InvalidNote, match="找不到引文"):
        expert.notes.add(doc_id, "每餐补贴十元", stance="质疑", text="……")
    with pytest.raises(InvalidNote, match="内容为空"):
        expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="  \n")
    with pytest.raises(InvalidNote, match="未知的论证立场“反对”") as err:
        expert.notes.add(doc_id, SUBSIDY, stance="反对", text="不同意")
    assert "支持、质疑、补充、存疑" in err.value.user_message()
    with pytest.raises(DocumentNotFound):
        expert.notes.add("d000000000", SUBSIDY, stance="质疑", text="……")
    assert expert.notes.find() == []
    assert expert.notes.add(doc_id, SUBSIDY, stance="doubt", text="存疑").stance == "存疑"


def test_repeated_quote_takes_first_and_says_so_unless_context_given(expert, doc_id):
    text = expert.document(doc_id).text
    first, second = text.index(PRICES), text.rindex(PRICES)
    plain = expert.notes.add(doc_id, PRICES, stance="补充", text="应公示成本构成")
    assert plain.start == first and "出现 2 次" in plain.anchor_info and "第 1 处" in plain.anchor_info
    rural = expert.notes.add(doc_id, PRICES, stance="补充", text="农村也要公示", after="。农村助餐点由乡镇")
    assert rural.start == second and "按上下文选定第 2 处" in rural.anchor_info
    by_offset = expert.notes.add(doc_id, stance="补充", text="按位置", start=second, end=second + len(PRICES))
    assert (by_offset.quote, by_offset.anchor_info) == (PRICES, "")
    with pytest.raises(InvalidNote, match="与引文不一致"):
        expert.notes.add(doc_id, SUBSIDY, stance="补充", text="x", start=second, end=second + len(SUBSIDY))


def test_quote_pasted_across_a_line_break_is_taken_from_the_original(expert, doc_id):
    note = expert.notes.add(doc_id, "制定本办法。 第二条 助餐点", stance="补充", text="跨行摘录")
    assert note.quote == "制定本办法。\n第二条 助餐点" and "空白或换行不同" in note.anchor_info


# -- surviving re-indexing ------------------------------------------------------
def test_note_survives_reindex_of_unchanged_document(staff, expert, doc_id, folder):
    note = expert.notes.add(doc_id, SAMPLES, stance="支持", text="四十八小时留样符合规范")
    report = staff.index([folder])
    assert report.unchanged == 1
    (folder / "助餐办法.meta.yaml").write_text("region: 青溪市\n", encoding="utf-8")  # chunks re-inserted, text same
    assert staff.index([folder]).updated == 1
    staff.index([folder], rebuild=True)
    again = expert.notes.get(note.note_id)
    assert (again.status, again.start, again.end, again.quote, again.anchor_info) == ("anchored", note.start,
                                                                                       note.end, SAMPLES, "")
    assert points_at_quote(staff, again)
    assert again.chunk_hash == note.chunk_hash
    assert not staff.audit_log(target_type="document")  # nothing needed re-anchoring


def test_note_is_reanchored_when_its_passage_moves(staff, expert, doc_id, folder):
    note = expert.notes.add(doc_id, SAMPLES, stance="支持", text="留样规定好")
    inserted = "第一条之一 老年助餐服务坚持政府引导、社会参与、老人自愿。\n"
    edit(folder, "第二条", inserted + "第二条")
    staff.index([folder])
    moved = expert.notes.get(note.note_id)
    assert moved.status == "reanchored" and moved.quote == SAMPLES
    assert moved.start == note.start + len(inserted) and points_at_quote(staff, moved)
    assert moved.text_hash == staff.document(doc_id).text_hash
    assert "移到" in moved.anchor_info


def test_repeated_quote_follows_its_own_occurrence_after_an_edit(staff, expert, doc_id, folder):
    rural = expert.notes.add(doc_id, PRICES, stance="补充", text="农村", after="。农村助餐点")
    edit(folder, "第一条 ", "第一条 （新增引言）")
    staff.index([folder])
    moved = expert.notes.get(rural.note_id)
    text = staff.document(doc_id).text
    assert moved.start == text.rindex(PRICES) and moved.start != text.index(PRICES)


def test_note_is_reanchored_fuzzily_after_a_small_wording_edit(staff, expert, doc_id, folder):
    note = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="标准偏低")
    edit(folder, "每餐补贴三元", "每餐补贴四元")
    staff.index([folder])
    moved = expert.notes.get(note.note_id)
    assert moved.status == "reanchored" and moved.quote == "对八十周岁以上老年人每餐补贴四元"
    assert moved.original_quote == SUBSIDY and "相似度" in moved.anchor_info
    assert points_at_quote(staff, moved)


def test_note_is_orphaned_not_lost_when_its_passage_is_deleted(staff, expert, doc_id, folder):
    gone = expert.notes.add(doc_id, SAMPLES, stance="质疑", text="留样时间应延长")
    kept = expert.notes.add(doc_id, SUBSIDY, stance="支持", text="赞成")
    edit(folder, "第四条 助餐点应当严格落实食品安全责任，每日留样四十八小时。\n", "")
    staff.index([folder])
    orphan = expert.notes.get(gone.note_id)
    assert orphan.status == "orphaned" and orphan.quote == SAMPLES and orphan.text == "留样时间应延长"
    assert "找不到引文" in orphan.anchor_info
    assert [n.note_id for n in expert.notes.find(orphaned=True)] == [gone.note_id]
    still = expert.notes.get(kept.note_id)  # before the deleted article: same place, nothing to report
    assert (still.status, still.start) == ("anchored", kept.start)
    assert len(expert.notes.find()) == 2
    entry = staff.audit_log(target_type="document")[0]
    assert entry.action == "note.reanchor" and entry.detail["orphaned_ids"] == [gone.note_id]


def test_notes_of_a_removed_document_are_orphaned_and_come_back(staff, expert, doc_id, folder, tmp_path):
    note = expert.notes.add(doc_id, SAMPLES, stance="质疑", text="留样")
    source = folder / "助餐办法.txt"
    parked = tmp_path / "parked.txt"
    shutil.move(source, parked)
    (folder / "其他.txt").write_text("另一份文件，保证文件夹不空。\n", encoding="utf-8")
    assert staff.index([folder]).removed == 1
    orphan = expert.notes.get(note.note_id)
    assert orphan.status == "orphaned" and "移除" in orphan.anchor_info and orphan.quote == SAMPLES
    shutil.move(parked, source)
    staff.index([folder])
    back = expert.notes.get(note.note_id)
    assert back.status == "reanchored" and points_at_quote(staff, back)


def test_notes_and_topic_links_follow_a_renamed_file(staff, expert, doc_id, folder):
    note = expert.notes.add(doc_id, SAMPLES, stance="支持", text="留样规定好")
    reply = staff.notes.reply(note.note_id, "同意")
    topic = staff.topics.add("老年助餐提质扩面", keywords=["助餐"])
    staff.topics.link(topic.topic_id, "consultation", doc_id=doc_id)
    (folder / "助餐办法.txt").rename(folder / "青溪市社区助餐服务办法.txt")  # same text, new file name
    report = staff.index([folder])
    new_id = report.moved[doc_id]
    assert new_id != doc_id and [d.doc_id for d in staff.documents()] == [new_id]
    moved = expert.notes.get(note.note_id)
    assert (moved.doc_id, moved.status, moved.start, moved.end) == (new_id, "anchored", note.start, note.end)
    assert points_at_quote(staff, moved) and [r.note_id for r in moved.replies] == [reply.note_id]
    assert expert.notes.find(orphaned=True) == [] and expert.notes.find(doc_id=new_id) == [moved]
    assert [link.doc_id for link in staff.topics.get(topic.topic_id).links] == [new_id]
    [entry] = staff.audit_log(action="document.move")
    assert (entry.user, entry.target_id) == ("王干事", new_id)
    assert entry.detail == {"from_doc_id": doc_id, "notes": 2, "topic_links": 1}  # the note and its reply
    assert not staff.audit_log(action="note.reanchor")  # the text is the same: nothing to look up again


def test_an_edited_repeated_sentence_keeps_its_own_place(staff, expert, doc_id, folder):
    rural = expert.notes.add(doc_id, PRICES, stance="补充", text="农村", after="。农村助餐点")
    edit(folder, "第五条 助餐点应当公示价格", "第五条 助餐点应当公示收费价格")  # 第二条 keeps the exact words
    staff.index([folder])
    moved = expert.notes.get(rural.note_id)
    text = staff.document(doc_id).text
    assert moved.quote == "助餐点应当公示收费价格" and moved.start == text.index("助餐点应当公示收费价格")
    assert "相似度" in moved.anchor_info


def test_a_rewording_in_unchanged_surroundings_is_still_found():
    before = "第二，补运营可持续的短板。补贴不是越多越好，要把钱花在刀刃上。一方面，就餐补助要分类分档。"
    after = "第二，补运营可持续的短板。补贴并非越多越好，关键要把钱花在刀刃上。一方面，就餐补助要分类分档。"
    start = before.index("补贴不是")
    anchor = anchor_at(before, start, before.index("一方面"))
    found = relocate(anchor, after)
    assert found.method == "fuzzy" and found.score < 85
    assert found.anchor.quote == "补贴并非越多越好，关键要把钱花在刀刃上。"
    rewritten = after.replace("补贴并非越多越好，关键要把钱花在刀刃上。", "今年起助餐补贴改为按季度结算。")
    assert relocate(anchor, rewritten).anchor is None


def test_relocate_prefers_context_then_nearness():
    text = "甲乙丙。重要条款在此。丁戊己。重要条款在此。庚辛壬。"
    second = text.rindex("重要条款在此")
    anchor = TextAnchor("重要条款在此", second + 5, second + 11, prefix="丁戊己。", suffix="。庚辛")
    found = relocate(anchor, text)
    assert (found.method, found.anchor.start, found.occurrences) == ("exact", second, 2)
    assert relocate(anchor, "完全无关的一段文字，没有那句话。").anchor is None


# -- threads, listing, spans ------------------------------------------------------
def test_replies_form_a_thread_any_role_may_reply(staff, expert, kb_home, embedder, doc_id):
    note = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低")
    staff.notes.review(note.note_id, "accepted")  # members read accepted notes only
    member = open_kb(kb_home, embedder, "张委员", "member")
    first = member.notes.reply(note.note_id, "赞同专家意见")
    second = expert.notes.reply(first.note_id, "谢谢，补充一点")  # a reply to a reply joins the same thread
    thread = member.notes.get(note.note_id).replies
    assert [(r.author, r.author_role, r.text) for r in thread] == [("张委员", "member", "赞同专家意见"),
                                                                   ("李专家", "expert", "谢谢，补充一点")]
    assert second.parent_id == note.note_id
    with pytest.raises(InvalidNote):
        member.notes.reply(note.note_id, " ")
    with pytest.raises(NoteNotFound):
        member.notes.reply("n-missing", "在吗")
    assert len(member.notes.find()) == 1  # replies are not listed as notes


def test_find_by_document_author_stance_and_topic(staff, expert, kb_home, embedder, doc_id, folder):
    other = open_kb(kb_home, embedder, "赵专家", "expert")
    expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="a")
    expert.notes.add(doc_id, SAMPLES, stance="支持", text="b")
    other.notes.add(doc_id, SAMPLES, stance="质疑", text="c")
    (folder / "茶产业.txt").write_text("茶产业发展报告\n全市茶园面积十二万亩。\n", encoding="utf-8")
    staff.index([folder])
    tea = next(d.doc_id for d in staff.documents() if d.title == "茶产业发展报告")
    other.notes.add(tea, "茶园面积十二万亩", stance="补充", text="d")
    assert [n.text for n in expert.notes.find(doc_id=doc_id)] == ["a", "b", "c"]
    assert sorted(n.text for n in expert.notes.find(author="赵专家")) == ["c", "d"]
    assert [n.text for n in expert.notes.find(stance="质疑")] == ["a", "c"]
    assert [n.text for n in expert.notes.find(author="李专家", stance="支持")] == ["b"]
    if hasattr(staff, "topics"):
        staff.topics.add("茶产业品牌建设", keywords=["茶园"])
    assert [n.text for n in expert.notes.find(topic="茶产业品牌建设" if hasattr(staff, "topics") else "茶园")] == ["d"]


@pytest.mark.skipif(not hasattr(KnowledgeBase, "packs"), reason="briefing packs not in this tree")
def test_topic_with_a_briefing_pack_means_the_documents_in_the_pack(staff, expert, doc_id, folder):
    (folder / "茶产业.txt").write_text("茶产业发展报告\n全市茶园面积十二万亩。\n", encoding="utf-8")
    staff.index([folder])
    tea = next(d.doc_id for d in staff.documents() if d.title == "茶产业发展报告")
    expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="rules")
    expert.notes.add(tea, "茶园面积十二万亩", stance="补充", text="tea")
    staff.topics.add("老年助餐提质扩面", keywords=["茶园"])  # keywords alone would pick the tea report
    text = staff.document(doc_id).text
    staff.packs.add_span("老年助餐提质扩面", doc_id, text.index("第三条"), text.index("第四条"))
    assert [n.text for n in expert.notes.find(topic="老年助餐提质扩面")] == ["rules"]


def test_for_span_lists_overlapping_notes_anchored_first(staff, expert, doc_id, folder):
    text = expert.document(doc_id).text
    subsidy = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="a")
    samples = expert.notes.add(doc_id, SAMPLES, stance="支持", text="b")
    start = text.index("第三条")
    assert [n.note_id for n in expert.notes.for_span(doc_id, start, text.index("第四条"))] == [subsidy.note_id]
    assert [n.note_id for n in expert.notes.for_span(doc_id, 0, len(text))] == [subsidy.note_id, samples.note_id]
    edit(folder, "第三条 对八十周岁以上老年人每餐补贴三元，", "第三条 ")  # the subsidy quote is gone
    staff.index([folder])
    whole = expert.notes.for_span(doc_id, 0, len(staff.document(doc_id).text))
    assert [(n.note_id, n.orphaned) for n in whole] == [(samples.note_id, False), (subsidy.note_id, True)]
    assert expert.notes.for_span(doc_id, 0, 5) == []


# -- export and import ---------------------------------------------------------------
def note_keys(notes):
    return sorted((n.note_id, n.doc_id, n.quote, n.start, n.end, n.stance, n.text, n.author, n.status,
                   tuple((r.note_id, r.text, r.author) for r in n.replies)) for n in notes)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_then_import_is_faithful_and_idempotent(staff, expert, kb_home, embedder, doc_id, folder,
                                                       tmp_path, fmt):
    note = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低，\n建议“物价联动”")
    expert.notes.add(doc_id, SAMPLES, stance="支持", text="赞成")
    open_kb(kb_home, embedder, "张委员", "member").notes.reply(note.note_id, "同意")
    out = tmp_path / f"notes.{fmt}"
    assert expert.notes.export(out, fmt) == 2
    if fmt == "csv":
        assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # utf-8-sig, for Excel
        rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines(keepends=True)))
        assert [r["parent_id"] != "" for r in rows].count(True) == 1 and rows[0]["title"] == "青溪市社区助餐服务办法"
    else:
        data = json.loads(out.read_text(encoding="utf-8"))
        assert data["kind"] == "expert_notes" and data["count"] == 2 and data["exported_by"] == "李专家"

    other_home = tmp_path / "other_kb"
    open_kb(other_home, embedder, "王干事", "staff").index([folder])  # same file → same doc id
    target = open_kb(other_home, embedder)
    first = target.notes.import_file(out)
    assert (first.imported, first.already_present, first.problems) == (3, 0, [])
    assert note_keys(target.notes.find()) == note_keys(expert.notes.find())
    second = target.notes.import_file(out)
    assert (second.imported, second.already_present) == (0, 3)
    assert len(target.notes.find()) == 2
    log = target.for_user(User("王干事", "staff")).audit_log(target_type="note")
    assert [e.action for e in log] == ["note.import"]


FORMULAS = ["=HYPERLINK(\"http://x\",\"点击\")", "+1+1", "-2+3", "@SUM(A1)", "'=1", "'引号"]  # tab, CR: test_textsafety


def test_csv_export_defuses_formulas_and_imports_them_back_unchanged(staff, expert, kb_home, embedder, doc_id,
                                                                     folder, tmp_path):
    """OWASP CSV injection: a cell starting with = + - @ tab or CR gets a leading single quote, so a
    spreadsheet shows it as text; the import takes the quote off again."""
    for n, text in enumerate(FORMULAS):
        expert.notes.add(doc_id, SUBSIDY if n % 2 else SAMPLES, stance="补充", text=text)
    note = expert.notes.find()[0]
    open_kb(kb_home, embedder, "=cmd|' /C calc'!A0", "member").notes.reply(note.note_id, "-同意")
    out = tmp_path / "notes.csv"
    expert.notes.export(out, "csv")
    cells = [cell for row in csv.reader(out.read_text(encoding="utf-8-sig").splitlines(keepends=True))
             for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK(\"http://x\",\"点击\")" in cells and "'-2+3" in cells and "'@SUM(A1)" in cells
    assert "''=1" in cells and "''引号" in cells and "'=cmd|' /C calc'!A0" in cells and "'-同意" in cells

    other_home = tmp_path / "other_kb"
    open_kb(other_home, embedder, "王干事", "staff").index([folder])
    target = open_kb(other_home, embedder)
    assert target.notes.import_file(out).problems == []
    assert note_keys(target.notes.find()) == note_keys(expert.notes.find())
    assert sorted(n.text for n in target.notes.find()) == sorted(FORMULAS)


def test_exported_notes_lose_bidi_controls(expert, doc_id, tmp_path):
    expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低\u202e，建议\u2066联动\u2069")
    for fmt in ("csv", "json"):
        out = tmp_path / f"notes.{fmt}"
        expert.notes.export(out, fmt)
        text = out.read_text(encoding="utf-8-sig")
        assert "偏低，建议联动" in text and not any(c in text for c in "\u202e\u2066\u2069"), fmt
        raw = out.read_text(encoding="ascii", errors="backslashreplace")
        assert "\\u202e" not in raw.lower() and "\\u2066" not in raw.lower()


def test_imported_notes_on_missing_documents_are_kept_as_orphans(expert, doc_id, tmp_path, embedder):
    expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低")
    out = tmp_path / "notes.json"
    expert.notes.export(out)
    empty = open_kb(tmp_path / "empty_kb", embedder)
    assert empty.notes.import_file(out).imported == 1
    [note] = empty.notes.find()
    assert note.orphaned and note.quote == SUBSIDY


def test_import_reports_bad_rows_and_unreadable_files(expert, doc_id, tmp_path):
    from kb.errors import LoadError

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"notes": [
        {"note_id": "n1", "doc_id": doc_id, "quote": SUBSIDY, "start": 1, "end": 2, "author": "甲",
         "author_role": "expert", "stance": "反对", "text": "x"},
        {"note_id": "n2", "doc_id": doc_id, "quote": SUBSIDY, "start": 1, "end": 2, "author": "甲",
         "author_role": "expert", "stance": "支持", "text": ""},
        {"note_id": "r1", "parent_id": "n-missing", "author": "乙", "author_role": "member", "text": "回复"},
    ]}, ensure_ascii=False), encoding="utf-8")
    report = expert.notes.import_file(bad)
    assert report.imported == 0 and [n for n, _ in report.problems] == [1, 2, 3]
    assert "未知的论证立场" in report.problems[0][1] and "不存在" in report.problems[2][1]
    (tmp_path / "broken.json").write_text("{notes: ", encoding="utf-8")
    with pytest.raises(LoadError, match="不是有效的 JSON"):
        expert.notes.import_file(tmp_path / "broken.json")
    with pytest.raises(LoadError, match="文件不存在"):
        expert.notes.import_file(tmp_path / "nothing.csv")


# -- safe display ------------------------------------------------------------------
def test_note_html_escapes_every_user_string():
    evil = "<script>alert(1)</script>"
    note = Annotation(note_id="n1", doc_id="d1", quote=f"<b>原文</b>{evil}", start=0, end=5,
                      author="<img src=x onerror=alert(2)>", author_role="expert", stance="质疑",
                      text=f"意见 {evil}\n第二行 & <a href='javascript:x'>链接</a>", created="2025-01-01T00:00:00",
                      replies=[Reply("r1", "n1", "张委员", "member", f"回复{evil}", "2025-01-02T00:00:00")])
    out = note_html(note)
    assert "<script" not in out and "<img" not in out and "<a " not in out and "<b>" not in out
    assert out.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3
    assert "&lt;b&gt;原文&lt;/b&gt;" in out and "&amp; &lt;a href=&#x27;javascript:x&#x27;&gt;" in out
    assert "意见 &lt;script&gt;alert(1)&lt;/script&gt;<br>第二行" in out
    assert 'class="expert-note stance-challenge status-anchored"' in out


def test_note_html_of_a_stored_note_with_markup(expert, doc_id):
    note = expert.notes.add(doc_id, SAMPLES, stance="存疑", text="<script>alert(1)</script> <i>斜体</i>")
    out = note_html(expert.notes.get(note.note_id))
    assert "<script>" not in out and "<i>" not in out and "&lt;i&gt;斜体&lt;/i&gt;" in out


# -- many writers ---------------------------------------------------------------------
WORKER = r"""
import sys, time
from pathlib import Path
from indexer.embedding import HashingEmbedder
from kb.knowledge_base import KnowledgeBase

home, doc_id, user, count, go = sys.argv[1:]
kb = KnowledgeBase(home, embedder=HashingEmbedder(64), user=user, role="expert")
kb.notes.find()  # database opened and migrated before the race starts
Path(f"{go}.{user}").touch()
while not Path(go).exists():
    time.sleep(0.002)
for i in range(int(count)):
    kb.notes.add(doc_id, "每日留样四十八小时", stance="质疑", text=f"{user} 第{i}条")
"""


def test_concurrent_writers_lose_no_notes(expert, kb_home, doc_id, tmp_path):
    writers, per_writer = ["专家甲", "专家乙", "专家丙"], 60
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(kb_home), doc_id, user, str(per_writer), str(go)],
                              cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for user in writers]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{u}").exists() for u in writers):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer failed to start"
        time.sleep(0.02)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for user in writers:
        texts = {n.text for n in expert.notes.find(author=user)}
        assert texts == {f"{user} 第{i}条" for i in range(per_writer)}
    assert len(expert.notes.find()) == len(writers) * per_writer
    adds = expert.for_user(User("王干事", "staff")).audit_log(action="note.add", limit=10_000)
    assert len(adds) == len(writers) * per_writer and {e.user for e in adds} == set(writers)


# -- a sample-corpus document --------------------------------------------------------
SAMPLE_DOC = REPO / "corpus" / "老年助餐" / "郑伟何嘉树关于老年助餐补贴可持续性的专家论证意见.md"


@pytest.mark.skipif(not SAMPLE_DOC.exists(), reason="sample corpus not present")
def test_anchoring_on_an_edited_sample_corpus_document(tmp_path, embedder):
    folder = tmp_path / "sample"
    folder.mkdir()
    path = folder / SAMPLE_DOC.name
    shutil.copy(SAMPLE_DOC, path)
    staff = open_kb(tmp_path / "kb", embedder, "王干事", "staff")
    staff.index([folder])
    expert = open_kb(tmp_path / "kb", embedder)
    doc_id = staff.documents()[0].doc_id
    moved_quote = "覆盖率是过程指标，使用率才是结果指标。"
    reworded = "每餐1元的普惠补助覆盖全部60周岁以上户籍老人"
    deleted = "若主要依靠区县国有企业举债建设，且运营收入主要来自财政补助，容易形成隐性债务。"
    notes = [expert.notes.add(doc_id, q, stance="质疑", text="意见") for q in (moved_quote, reworded, deleted)]

    text = path.read_text(encoding="utf-8")
    text = text.replace("## 一、", "## 〇、补充说明\n\n本意见在2025年5月作了修订，增加了对农村助餐点的分析。\n\n## 一、", 1)
    text = text.replace("覆盖全部60周岁以上", "覆盖所有60周岁以上", 1)
    text = text.replace(deleted, "", 1)
    path.write_text(text, encoding="utf-8")
    staff.index([folder])

    moved, fuzzy, orphan = (expert.notes.get(n.note_id) for n in notes)
    assert (moved.status, moved.quote) == ("reanchored", moved_quote) and moved.start > notes[0].start
    assert fuzzy.status == "reanchored" and fuzzy.quote == "每餐1元的普惠补助覆盖所有60周岁以上户籍老人"
    assert (orphan.status, orphan.quote) == ("orphaned", deleted)
    assert all(points_at_quote(staff, n) for n in (moved, fuzzy))


def test_exports_carry_the_review_state_and_imported_notes_wait_for_review(staff, expert, kb_home, embedder,
                                                                            doc_id, folder, tmp_path):
    note = expert.notes.add(doc_id, SUBSIDY, stance="质疑", text="偏低")
    staff.notes.review(note.note_id, "accepted", reason="依据充分")
    out = tmp_path / "notes.json"
    staff.notes.export(out)
    [row] = json.loads(out.read_text(encoding="utf-8"))["notes"]
    assert (row["review"], row["review_label"], row["reviewed_by"], row["review_reason"]) == (
        "accepted", "采纳入汇编", "王干事", "依据充分")
    assert 'class="review review-accepted">采纳入汇编' in note_html(staff.notes.get(note.note_id))
    other_home = tmp_path / "other_kb"
    open_kb(other_home, embedder, "王干事", "staff").index([folder])
    target = open_kb(other_home, embedder)
    target.notes.import_file(out)
    assert target.notes.get(note.note_id).review == "pending"  # staff of this knowledge base decide afresh
