"""Briefing packs: drafting from the sample corpus, exact citations, thin sections, editing,
versions, roles and missing sources."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.embedding import HashingEmbedder
from kb.briefing import (DEFAULT_PER_SECTION, MAX_NOTE_CHARS, MAX_QUOTE_CHARS, SECTION_KEYS, InvalidPackEdit,
                         PackNotFound, Relevance, core_title, draft_sections, passage_span, topic_queries)
from kb.errors import PermissionDenied, StaleEdit
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO

CORPUS = REPO / "corpus"
needs_corpus = pytest.mark.skipif(not (CORPUS / "topics.yaml").exists(), reason="sample corpus not present")


def open_kb(home, role="staff", user="王静"):
    return KnowledgeBase(home, embedder=HashingEmbedder(64), model="hashing:64", user=user, role=role)


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory):
    """The sample corpus indexed with the hashing embedder, its topics imported and every pack drafted."""
    if not (CORPUS / "topics.yaml").exists():
        pytest.skip("sample corpus not present")
    home = tmp_path_factory.mktemp("sample") / "kb"
    kb = open_kb(home)
    kb.index([CORPUS])
    kb.topics.import_yaml(CORPUS / "topics.yaml")
    for topic in kb.topics.list():
        kb.packs.draft(topic)
    kb.close()
    return home


@pytest.fixture
def sample(sample_home, tmp_path):
    """A private copy of the sample knowledge base, free to edit."""
    home = tmp_path / "kb"
    shutil.copytree(sample_home, home)
    return open_kb(home)


def corpus_types(kb, topic):
    """Document types present in the topic's folder of the sample corpus."""
    folder = topic.extra.get("folder", "").strip("/")
    return {d.doc_type for d in kb.documents() if f"/{folder}/" in d.source}


@needs_corpus
def test_each_sample_topic_gets_items_in_every_section_the_corpus_supports(sample):
    for topic in sample.topics.list():
        pack = sample.packs.get(topic)
        supported = corpus_types(sample, topic) & set(SECTION_KEYS)
        assert supported, topic.title
        for section in pack.sections:
            if section.key in supported:
                assert section.items, f"{topic.title}: {section.label} is empty"
                assert not section.thin, f"{topic.title}: {section.label} is thin"
            if section.key != "policy":  # where the topic's core regulations give all their provisions
                assert len(section.items) <= DEFAULT_PER_SECTION
            assert all(item.doc_type == section.key for item in section.items)
        ids = [item.item_id for _, _, item in pack.items()]
        assert len(ids) == len(set(ids))


@needs_corpus
def test_drafted_items_come_from_the_topics_own_material(sample):
    """Another topic's documents never pad a section."""
    folders = {t.topic_id: t.extra["folder"].strip("/") for t in sample.topics.list()}
    for topic in sample.topics.list():
        for _, _, item in sample.packs.get(topic).items():
            assert f"/{folders[topic.topic_id]}/" in item.source, (topic.title, item.title)


@needs_corpus
def test_every_quote_is_a_verbatim_span_with_the_right_page_and_label(sample):
    checked = 0
    for topic in sample.topics.list():
        pack = sample.packs.get(topic)
        for _, _, item in pack.items():
            doc = sample.document(item.doc_id)
            assert item.quote == doc.text[item.start:item.end]
            assert item.source_status == "ok"
            chunk = next(c for c in doc.chunks if c.start <= item.start < c.end or c.start == item.start)
            if doc.pages:
                page = next(n for n, s, e in doc.pages if s <= item.start < e + 1)
                assert item.page == page, item.heading
            else:
                assert item.page is None
            article = re.search(r"第[一二三四五六七八九十百零]+条", item.label or "")
            if article and "（续）" not in item.label:
                assert item.quote.startswith(article.group()), item.heading
            paragraphs = re.fullmatch(r"第(\d+)(?:–(\d+))?段", item.label or "")
            if paragraphs and chunk.start < item.start:  # opening chunk without its header lines
                lines_before = [l for l in doc.text[:item.start].split("\n") if l.strip()]
                assert int(paragraphs.group(1)) == len(lines_before) + 1
            elif not paragraphs:  # a closing (谢谢大家, a sign-off) may be cut from the end
                assert item.label == chunk.label and item.start == chunk.start and item.end <= chunk.end
            citation = item.citation.formatted()
            assert f"《{doc.title}》" in citation
            if doc.doc_number:
                assert doc.doc_number in citation
            checked += 1
    assert checked >= 60


@needs_corpus
def test_opening_chunks_lose_their_header_lines(sample):
    doc = next(d for d in sample.documents("expert") if "林雪芬" in d.source)
    doc = sample.document(doc.doc_id)
    first = doc.chunks[0]
    start, end, label, page = passage_span(doc, first.start, first.end, first.label, first.page)
    assert doc.text[start:end].startswith("受政协青溪市委员会") and end == first.end
    assert "论证专家：" not in doc.text[start:end] and "【示例材料】" not in doc.text[start:end]
    assert label.startswith("第") and label != first.label
    # a speech's opening chunk is header, salutation and the opening paragraph: nothing to quote
    speech = sample.document(next(d for d in sample.documents("speech") if "周明远" in d.title).doc_id)
    first = speech.chunks[0]
    assert passage_span(speech, first.start, first.end, first.label, first.page) is None


def test_queries_come_from_title_keywords_and_description(kb_home, mini_corpus):
    kb = open_kb(kb_home)
    topic = kb.topics.add("2025年“推进老年助餐服务提质扩面”双月座谈会", keywords=["助餐补贴", "中央厨房"],
                          description="围绕补贴标准协商。农村助餐如何可持续运营？")
    assert core_title(topic.title) == "推进老年助餐服务提质扩面"
    queries = topic_queries(topic)
    assert queries[0] == "推进老年助餐服务提质扩面" and "助餐补贴" in queries and "中央厨房" in queries
    assert "农村助餐如何可持续运营" in queries


@pytest.fixture
def mini(kb_home, mini_corpus):
    kb = open_kb(kb_home)
    kb.index([mini_corpus])
    kb.topics.add("社区老年助餐补贴", topic_id="zc", keywords=["助餐", "补贴", "老年人"])
    return kb


def test_a_section_without_material_is_thin_not_padded(mini):
    pack = mini.packs.draft("zc")
    policy, speech, case, expert, minutes = pack.sections
    assert policy.items and all(i.title == "青溪市社区助餐服务办法" for i in policy.items)
    assert not speech.items and not case.items  # the tea speech and the port case are about other things
    for section in (speech, case, expert, minutes):
        assert section.thin and "暂未找到" in section.note and section.label in section.note
    assert not policy.thin or "仅有" in policy.note


def test_weak_hits_are_never_taken(mini):
    def only_weak(query, top_k=None, mode="hybrid", filters=None, **kw):
        hits = mini.search(query, top_k=top_k, mode=mode, filters=filters)
        for hit in hits:
            hit.weak = True
        return hits

    topic = mini.topics.get("zc")
    sections, _ = draft_sections(topic, search=only_weak, document=mini.document, user="王静",
                                 relevance=Relevance(topic, mini.tokenizer.tokenize, mini.store))
    assert all(not s.items for s in sections)
    assert sections[0].found["weak"] > 0 and "弱相关" in sections[0].note


def test_edit_add_move_note_key_drop_with_versions_and_audit(mini):
    pack = mini.packs.draft("zc")
    assert pack.version == 1 and pack.change.startswith("自动起草")
    first = pack.sections[0].items[0]
    hit = next(h for h in mini.search("多式联运 集装箱", top_k=5) if h.doc_type == "case")
    pack = mini.packs.add_hit("zc", hit, note="可借鉴的外地做法", key=True)
    added = pack.section("case").items[-1]
    assert added.origin == "manual" and added.key and added.note == "可借鉴的外地做法"
    assert added.quote == mini.document(hit.doc_id).text[hit.start:hit.end]
    pack = mini.packs.move("zc", added.item_id[:6], section="policy", position=1)
    assert pack.sections[0].items[0].item_id == added.item_id and not pack.section("case").items
    pack = mini.packs.note("zc", "1.2", "注意补贴标准已调整")
    assert pack.sections[0].items[1].note == "注意补贴标准已调整"
    pack = mini.packs.mark_key("zc", "1.1", key=False)
    assert not pack.sections[0].items[0].key
    pack = mini.packs.reorder("zc", "policy", [first.item_id])
    assert pack.sections[0].items[0].item_id == first.item_id
    pack = mini.packs.drop("zc", first.item_id)
    assert first.item_id in pack.dropped and pack.version == 7
    history = mini.packs.history("zc")
    assert [v.version for v in history] == [7, 6, 5, 4, 3, 2, 1]
    assert history[0].change.startswith("删除政策法规第1条") and history[0].user == "王静"
    assert history[3].change.startswith("添加编者按")
    assert mini.packs.get("zc", version=1).sections[0].items[0].item_id == first.item_id  # the old one is intact
    actions = [e.action for e in mini.audit_log(target_type="pack", target_id="zc")]
    assert actions == ["pack.drop", "pack.reorder", "pack.key", "pack.note", "pack.move", "pack.add", "pack.draft"]


def test_redraft_keeps_hand_work_and_leaves_dropped_items_out(mini):
    pack = mini.packs.draft("zc")
    items = pack.sections[0].items
    assert len(items) >= 2
    mini.packs.note("zc", items[0].item_id, "重点看补贴标准")
    mini.packs.drop("zc", items[1].item_id)
    pack = mini.packs.draft("zc")
    ids = [i.item_id for i in pack.sections[0].items]
    assert items[0].item_id in ids and items[1].item_id not in ids
    assert pack.sections[0].items[0].note == "重点看补贴标准" and "重新起草" in pack.change


def test_two_editors_at_once_both_keep_their_change(mini, kb_home):
    mini.packs.draft("zc")
    other = open_kb(kb_home, user="张力")
    mini.packs.note("zc", "1.1", "王静的按语")
    other.packs.mark_key("zc", "1.1")  # `other` never saw the note; it edits the latest version anyway
    item = mini.packs.get("zc").sections[0].items[0]
    assert item.note == "王静的按语" and item.key


def test_bad_edits_get_clear_messages(mini):
    with pytest.raises(PackNotFound, match="还没有调研资料汇编"):
        mini.packs.get("zc")
    with pytest.raises(PackNotFound):
        mini.packs.drop("zc", "1.1")
    mini.packs.draft("zc")
    with pytest.raises(PackNotFound, match="没有第 9 版"):
        mini.packs.get("zc", version=9)
    with pytest.raises(InvalidPackEdit, match="没有条目"):
        mini.packs.drop("zc", "3.9")
    with pytest.raises(InvalidPackEdit, match="未知部分"):
        mini.packs.move("zc", "1.1", section="附件")
    with pytest.raises(InvalidPackEdit, match="编者按过长"):
        mini.packs.note("zc", "1.1", "很" * (MAX_NOTE_CHARS + 1))
    doc = mini.documents("policy")[0]
    with pytest.raises(InvalidPackEdit, match="超出文档"):
        mini.packs.add_span("zc", doc.doc_id, 0, 10 ** 6)
    item = mini.packs.get("zc").sections[0].items[0]
    with pytest.raises(InvalidPackEdit, match="已在汇编中"):
        mini.packs.add_span("zc", item.doc_id, item.start, item.end)


def test_very_long_passages_are_refused(mini, tmp_path):
    long_doc = tmp_path / "long" / "长篇调研报告.txt"
    long_doc.parent.mkdir()
    long_doc.write_text("关于社区老年助餐的调研报告\n" + "助餐补贴标准需要提高。" * 700, encoding="utf-8")
    mini.index([long_doc.parent])
    doc = next(d for d in mini.documents() if d.title == "关于社区老年助餐的调研报告")
    with pytest.raises(InvalidPackEdit, match="摘录过长"):
        mini.packs.add_span("zc", doc.doc_id, 0, MAX_QUOTE_CHARS + 1, section="case")
    pack = mini.packs.add_span("zc", doc.doc_id, 14, 14 + 4000, section="case")
    assert len(pack.section("case").items[0].quote) == 4000


def test_documents_of_type_other_need_a_section(mini, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "随笔.txt").write_text("随笔\n社区食堂里的一天，老年人排队吃饭。", encoding="utf-8")
    mini.index([folder])
    doc = next(d for d in mini.documents() if d.title == "随笔")
    assert doc.doc_type == "other"
    with pytest.raises(InvalidPackEdit, match="不对应汇编的任何部分"):
        mini.packs.add_span("zc", doc.doc_id, 3, 10)
    assert mini.packs.add_span("zc", doc.doc_id, 3, 10, section="案例模式").section("case").items


def test_a_deleted_document_stays_in_the_pack_marked_missing(mini, mini_corpus):
    pack = mini.packs.draft("zc")
    item = pack.sections[0].items[0]
    (mini_corpus / "助餐办法.txt").unlink()
    mini.index([mini_corpus])
    pack = mini.packs.get("zc")
    kept = pack.sections[0].items[0]
    assert kept.item_id == item.item_id and kept.quote == item.quote
    assert kept.source_status == "missing" and "来源缺失" in kept.status_note
    assert item.doc_id in mini.packs.doc_ids("zc")


def test_a_changed_document_relocates_or_flags_the_quote(mini, mini_corpus):
    pack = mini.packs.draft("zc")
    items = pack.sections[0].items
    path = mini_corpus / "助餐办法.txt"
    text = path.read_bytes().decode("gb18030")
    moved, changed = items[0], items[-1]
    text = text.replace("第一章 总则", "第一章 总则\n（本办法经市政府常务会议修订）")
    text = text.replace(changed.quote, "第四条　本条已删除。")
    path.write_bytes(text.encode("gb18030"))
    mini.index([mini_corpus])
    pack = mini.packs.get("zc")
    by_id = {i.item_id: i for _, _, i in pack.items()}
    assert by_id[moved.item_id].source_status == "moved"
    doc = mini.document(moved.doc_id)
    relocated = by_id[moved.item_id]
    assert doc.text[relocated.start:relocated.end] == relocated.quote
    assert by_id[changed.item_id].source_status == "changed" and "原文已变更" in by_id[changed.item_id].status_note


def test_members_read_and_export_but_cannot_edit(mini, kb_home, tmp_path):
    mini.packs.draft("zc")
    member = open_kb(kb_home, role="member", user="李委员")
    assert member.packs.get("zc").item_count > 0
    with pytest.raises(PermissionDenied, match="不能编辑调研资料汇编"):
        member.packs.draft("zc")
    with pytest.raises(PermissionDenied):
        member.packs.drop("zc", "1.1")
    result = member.packs.export("zc", "md", tmp_path / "out.md")
    assert result.path.exists()
    exported = mini.audit_log(target_type="pack")[0]  # the office's log, read by staff
    assert (exported.action, exported.user) == ("pack.export", "李委员")


# -- versions: stale edits and many writers ---------------------------------------------
def test_an_edit_on_an_outdated_version_is_refused_and_changes_nothing(mini, kb_home):
    pack = mini.packs.draft("zc")
    first, second = pack.sections[0].items[:2]
    other = open_kb(kb_home, user="张力")
    other.packs.note("zc", first.item_id, "张力的按语", expected_version=1)
    before = other.packs.get("zc")
    audit_before = len(mini.audit_log(target_type="pack", target_id="zc"))
    doc = mini.documents("case")[0]
    hit = next(h for h in mini.search("多式联运 集装箱", top_k=5) if h.doc_type == "case")
    stale_edits = {
        "add_hit": lambda: mini.packs.add_hit("zc", hit, expected_version=1),
        "add_span": lambda: mini.packs.add_span("zc", doc.doc_id, 0, 20, section="case", expected_version=1),
        "drop": lambda: mini.packs.drop("zc", second.item_id, expected_version=1),
        "move": lambda: mini.packs.move("zc", second.item_id, section="case", expected_version=1),
        "reorder": lambda: mini.packs.reorder("zc", "policy", [second.item_id], expected_version=1),
        "note": lambda: mini.packs.note("zc", first.item_id, "王静的按语", expected_version=1),
        "mark_key": lambda: mini.packs.mark_key("zc", first.item_id, expected_version=1),
        "draft": lambda: mini.packs.draft("zc", expected_version=1),
    }
    for name, edit in stale_edits.items():
        with pytest.raises(StaleEdit) as caught:
            edit()
        message = caught.value.user_message()
        assert message.startswith(f"该汇编已被 张力 于 {before.created_at.replace('T', ' ')} 修改（第 2 版），"
                                  "请刷新后再改"), (name, message)
    after = mini.packs.get("zc")
    assert after.version == 2 and after.to_json() == before.to_json()
    assert len(mini.audit_log(target_type="pack", target_id="zc")) == audit_before
    assert mini.packs.mark_key("zc", first.item_id, expected_version=2).version == 3  # the current version is fine


def test_an_edit_that_expects_no_pack_is_refused_once_someone_drafted(mini, kb_home):
    open_kb(kb_home, user="张力").packs.draft("zc")
    doc = mini.documents("policy")[0]
    with pytest.raises(StaleEdit, match="第 1 版"):
        mini.packs.add_span("zc", doc.doc_id, 0, 20, expected_version=0)
    assert mini.packs.get("zc").version == 1


def test_cli_pack_edits_take_the_version_they_were_made_on(mini, kb_home, capsys):
    from kb.cli import main

    mini.packs.draft("zc")
    home = ["--home", str(kb_home), "--user", "王静"]
    assert main(["pack", "note", "zc", "1.1", "先读这一条", "--version", "1", *home]) == 0
    capsys.readouterr()
    assert main(["pack", "key", "zc", "1.1", "--version", "1", *home]) == 2
    err = capsys.readouterr().err
    assert err.startswith("错误：该汇编已被 王静 于") and "（第 2 版），请刷新后再改" in err
    assert len(err.strip().splitlines()) == 1
    assert not mini.packs.get("zc").sections[0].items[0].key


PACK_WRITER = r"""
import sys, time
from pathlib import Path
from indexer.embedding import HashingEmbedder
from kb.knowledge_base import KnowledgeBase

home, user, item, count, go = sys.argv[1:]
kb = KnowledgeBase(home, embedder=HashingEmbedder(64), model="hashing:64", user=user, role="staff")
kb.packs.get("zc")  # everything opened before the race starts
Path(f"{go}.{user}").touch()
while not Path(go).exists():
    time.sleep(0.002)
for i in range(int(count)):
    kb.packs.note("zc", item, f"{user} 第{i}次")
"""


def test_two_processes_editing_one_pack_at_once_lose_no_version(mini, kb_home, tmp_path):
    pack = mini.packs.draft("zc")
    items = {"王静": pack.sections[0].items[0].item_id, "张力": pack.sections[0].items[1].item_id}
    per_writer = 20
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", PACK_WRITER, str(kb_home), user, item, str(per_writer), str(go)],
                              cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for user, item in items.items()]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{user}").exists() for user in items):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer failed to start"
        time.sleep(0.02)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    history = mini.packs.history("zc")
    assert [v.version for v in history] == list(range(2 * per_writer + 1, 0, -1))
    notes = mini.audit_log(target_type="pack", target_id="zc", action="pack.note", limit=None)
    assert len(notes) == 2 * per_writer
    for user, item_id in items.items():
        written = [v.detail["new"] for v in reversed(history) if v.user == user and v.detail.get("item") == item_id]
        assert written == [f"{user} 第{i}次" for i in range(per_writer)]  # every edit, in the order made
        assert sum(e.user == user for e in notes) == per_writer
    # each version carries the other writer's latest note: no edit was made on a stale copy
    latest = {}
    for version in range(2, 2 * per_writer + 2):
        saved = {i.item_id: i.note for _, _, i in mini.packs.get("zc", version).items()}
        entry = next(v for v in history if v.version == version)
        latest[entry.detail["item"]] = entry.detail["new"]
        assert all(saved[item_id] == note for item_id, note in latest.items()), version
    final = mini.packs.get("zc")
    assert final.sections[0].items[0].note == f"王静 第{per_writer - 1}次"
    assert final.sections[0].items[1].note == f"张力 第{per_writer - 1}次"


def test_the_briefing_package_has_no_import_circles():
    probe = ("import sys, kb.exports; assert not any(m.startswith('kb.briefing') for m in sys.modules), 'exports';"
             "import kb.briefing; assert 'kb.knowledge_base' not in sys.modules, 'briefing'")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
