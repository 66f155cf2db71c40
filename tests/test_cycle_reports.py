"""Members' 调研报告 files (kb.cycle.reports): attached to a research task, kept in the knowledge
base's source folder, indexed as documents of type 调研报告, linked to the topic as material,
listed on the task and taken into the pack by staff."""
from __future__ import annotations

import json

import pytest

from kb.cycle import InvalidCycleEdit
from kb.cycle.reports import REPORT_FOLDER
from kb.errors import InvalidPackEdit, PermissionDenied
from kb.knowledge_base import KnowledgeBase

from .conftest import run_cli

REPORT = """关于南塘县农村老年助餐点运营情况的调研报告
【示例材料】本文为测试编写，内容虚构。

一、基本情况
调研组走访南塘县助餐点十四个，其中六个日均就餐不足十五人，运营经费主要依靠村集体补贴。

二、存在问题
农村助餐点就餐人数少、配送半径大，每餐成本比城区高出三成，补贴标准未区分城乡。

三、对策建议
建议按城乡分档确定助餐补贴标准，对配送距离较远的农村助餐点给予运营补助。
"""


@pytest.fixture
def kb(kb_home, mini_corpus, embedder):
    base = KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff")
    base.index([mini_corpus])
    base.topics.add("社区老年助餐补贴标准", format="双月座谈", year=2025, keywords=["助餐", "补贴"], topic_id="zc")
    base.topics.add("茶产业品牌建设", format="面对面协商", year=2025, topic_id="tea")
    base.cycle.add_task("zc", "赴南塘县农村助餐点调研", kind="实地调研", place="南塘县", date="2025-04-22",
                        members="王建民、孙丽", assignee="王建民", task_id="k-visit")
    base.cycle.add_task("tea", "赴云岫市学习", kind="考察学习", members=["方晓雯"], task_id="k-tea")
    return base


def as_user(kb, name, role, embedder):
    return KnowledgeBase(kb.home, embedder=embedder, user=name, role=role)


@pytest.fixture
def report_file(tmp_path):
    path = tmp_path / "南塘县助餐点调研报告.txt"
    path.write_text(REPORT, encoding="utf-8")
    return path


def test_a_member_attaches_a_report_to_their_task_and_it_becomes_a_document_of_the_topic(kb, embedder, report_file):
    wang = as_user(kb, "王建民", "member", embedder)
    task = wang.cycle.attach_report("k-visit", report_file)
    [attached] = task.reports
    assert attached.file_name == report_file.name and attached.author == "王建民"
    stored = kb.home / REPORT_FOLDER / "k-visit" / report_file.name
    assert stored.read_text(encoding="utf-8") == REPORT             # kept in the knowledge base's folder
    doc = kb.document(attached.doc_id)
    assert doc.doc_type == "research" and doc.type_label == "调研报告"
    assert doc.title == "关于南塘县农村老年助餐点运营情况的调研报告" and doc.issuer == "王建民"
    assert [d.doc_id for d in kb.documents("research")] == [attached.doc_id]
    hits = kb.search("农村助餐点补贴城乡分档", doc_types=["research"])
    assert hits and hits[0].doc_id == attached.doc_id
    links = [link for link in kb.topics.get("zc").links if link.kind == "research"]
    assert [(link.doc_id, link.author, link.kind_label) for link in links] == [(attached.doc_id, "王建民", "调研报告")]
    assert kb.cycle.plan("zc").tasks[0].reports == task.reports      # listed on the task for everyone
    entry = kb.audit_log(action="task.attach")[0]
    assert entry.user == "王建民" and entry.target_id == "k-visit"


def test_attaching_again_replaces_the_file_and_keeps_one_document(kb, embedder, report_file):
    wang = as_user(kb, "王建民", "member", embedder)
    first = wang.cycle.attach_report("k-visit", report_file).reports[0]
    report_file.write_text(REPORT.replace("十四个", "十六个"), encoding="utf-8")
    again = wang.cycle.attach_report("k-visit", report_file, title="南塘县助餐点调研报告（修订）").reports
    assert [r.doc_id for r in again] == [first.doc_id]
    assert "十六个" in kb.document(first.doc_id).text and kb.document(first.doc_id).title.endswith("（修订）")
    assert len([link for link in kb.topics.get("zc").links if link.kind == "research"]) == 1
    assert len(kb.documents("research")) == 1


def test_only_the_members_on_a_task_and_staff_attach_reports(kb, embedder, report_file):
    with pytest.raises(PermissionDenied, match="别人的调研任务"):
        as_user(kb, "王建民", "member", embedder).cycle.attach_report("k-tea", report_file)
    with pytest.raises(PermissionDenied):
        as_user(kb, "李教授", "expert", embedder).cycle.attach_report("k-visit", report_file)
    assert not (kb.home / REPORT_FOLDER / "k-tea").exists() and kb.documents("research") == []
    task = kb.cycle.attach_report("k-tea", report_file)            # staff attach to any task
    assert task.reports[0].author == "王干事"


def test_bad_report_files_are_refused_with_a_reason(kb, embedder, tmp_path):
    sun = as_user(kb, "孙丽", "member", embedder)
    (tmp_path / "报告.exe").write_bytes(b"MZ")
    with pytest.raises(InvalidCycleEdit, match="格式不支持"):
        sun.cycle.attach_report("k-visit", tmp_path / "报告.exe")
    with pytest.raises(InvalidCycleEdit, match="空文件"):
        sun.cycle.attach_report("k-visit", "空.txt", content=b"")
    with pytest.raises(InvalidCycleEdit, match="无法读取"):
        sun.cycle.attach_report("k-visit", tmp_path / "不存在.txt")
    with pytest.raises(InvalidCycleEdit, match="不能用作"):
        sun.cycle.attach_report("k-visit", "../.hidden.txt", content=b"x")
    broken = tmp_path / "损坏的调研报告.pdf"
    broken.write_bytes(b"%PDF-1.4 truncated")
    with pytest.raises(InvalidCycleEdit, match="无法索引"):
        sun.cycle.attach_report("k-visit", broken)
    assert kb.cycle.task("k-visit").reports == [] and not list((kb.home / REPORT_FOLDER / "k-visit").iterdir())


def test_staff_take_a_reports_passage_into_the_pack_and_the_draft_keeps_it_out_of_earlier_consultations(
        kb, embedder, report_file):
    doc_id = as_user(kb, "王建民", "member", embedder).cycle.attach_report("k-visit", report_file).reports[0].doc_id
    pack = kb.packs.draft("zc")
    assert doc_id not in {item.doc_id for item in pack.section("minutes").items}
    text = kb.document(doc_id).text
    start = text.index("建议按城乡分档")
    end = text.find("\n", start) % (len(text) + 1)   # the sentence's line, the last one included
    pack = kb.packs.add_span("zc", doc_id, start, end, "案例")
    [item] = [i for i in pack.section("case").items if i.doc_id == doc_id]
    assert item.quote.startswith("建议按城乡分档") and item.doc_type == "research"
    with pytest.raises(InvalidPackEdit, match="不对应汇编的任何部分") as refused:
        kb.packs.add_span("zc", doc_id, 0, 10)
    assert "--section" in refused.value.hint                      # without a section staff are told to name one


def test_cli_attaches_and_lists_reports(kb, capsys, report_file):
    home = str(kb.home)
    kb.close()
    code, out, err = run_cli(capsys, "plan", "attach", "k-visit", str(report_file), "--user", "孙丽", "--role", "member",
                             "--home", home)
    assert code == 0 and "已上传调研报告" in out and "调研报告" in out, err
    code, out, _ = run_cli(capsys, "plan", "show", "zc", "--home", home)
    assert report_file.name in out
    code, out, _ = run_cli(capsys, "plan", "mine", "--json", "--user", "孙丽", "--role", "member", "--home", home)
    assert json.loads(out)[0]["reports"][0]["author"] == "孙丽"
    code, _, err = run_cli(capsys, "plan", "attach", "k-tea", str(report_file), "--user", "孙丽", "--role", "member",
                           "--home", home)
    assert code != 0 and "别人的调研任务" in err and "Traceback" not in err


# -- what a tester tries: odd names, odd files, the same report twice, a finished task -----------------
def _docx(path, text):
    from docx import Document

    doc = Document()
    for line in text.splitlines():
        doc.add_paragraph(line)
    doc.save(path)
    return path


def test_file_names_with_controls_bidi_or_too_long_are_refused_or_cleaned(kb, embedder):
    sun = as_user(kb, "孙丽", "member", embedder)
    data = REPORT.encode("utf-8")
    for name in ("调研\x00报告.txt", "调研\n报告.txt", "调研\x1b报告.txt"):
        with pytest.raises(InvalidCycleEdit, match="控制字符"):
            sun.cycle.attach_report("k-visit", name, content=data)
    with pytest.raises(InvalidCycleEdit, match="文件名过长"):
        sun.cycle.attach_report("k-visit", "调" * 90 + ".txt", content=data)
    # 调研报告<U+202E>exe.txt shows as 调研报告txt.exe: the control is dropped from what is kept
    [report] = sun.cycle.attach_report("k-visit", "调研报告\u202eexe.txt", content=data).reports
    assert report.file_name == "调研报告exe.txt" and "\u202e" not in report.title
    assert [p.name for p in (kb.home / REPORT_FOLDER / "k-visit").iterdir() if not p.name.endswith(".yaml")] \
        == ["调研报告exe.txt"]
    data = REPORT.replace("十四个", "十二个").encode("utf-8")
    task = sun.cycle.attach_report("k-visit", "C:\\Users\\孙丽\\桌面\\ 南塘报告.txt ", content=data)
    assert sorted(r.file_name for r in task.reports) == ["南塘报告.txt", "调研报告exe.txt"]
    with pytest.raises(InvalidCycleEdit, match="标题过长"):
        sun.cycle.attach_report("k-visit", "南塘报告.txt", content=data, title="长" * 300)
    assert "\u202e" not in sun.cycle.attach_report("k-visit", "南塘报告.txt", content=data,
                                                    title="南塘\u202e报告").reports[0].title


def test_a_huge_file_is_refused_before_it_is_read(kb, embedder, tmp_path, monkeypatch):
    from kb.cycle import reports

    monkeypatch.setattr(reports, "MAX_REPORT_BYTES", 1000)
    big = tmp_path / "大报告.txt"
    with big.open("wb") as f:
        f.truncate(5000)
    read = []
    monkeypatch.setattr(type(big), "read_bytes", lambda self: read.append(self) or b"x" * 5000)
    with pytest.raises(InvalidCycleEdit, match="过大"):
        as_user(kb, "孙丽", "member", embedder).cycle.attach_report("k-visit", big)
    assert read == []                                   # refused from its size, not after reading it all
    with pytest.raises(InvalidCycleEdit, match="过大"):
        kb.cycle.attach_report("k-visit", "大报告.txt", content=b"x" * 1001)


def test_a_file_with_no_text_is_refused(kb, embedder):
    with pytest.raises(InvalidCycleEdit, match="无法索引|没有文字|空"):
        as_user(kb, "孙丽", "member", embedder).cycle.attach_report("k-visit", "空白.txt", content=b" \n\t\n")
    assert kb.cycle.task("k-visit").reports == [] and kb.documents("research") == []


def test_the_same_file_twice_is_one_report_and_the_same_text_under_another_name_is_refused(kb, embedder, report_file):
    wang = as_user(kb, "王建民", "member", embedder)
    first = wang.cycle.attach_report("k-visit", report_file).reports
    again = wang.cycle.attach_report("k-visit", report_file).reports     # unchanged: nothing to index
    assert again == first
    assert [e.detail.get("replaced") for e in kb.audit_log(action="task.attach")] == [True, False]
    with pytest.raises(InvalidCycleEdit, match="已经上传过") as refused:
        wang.cycle.attach_report("k-visit", "副本.txt", content=report_file.read_bytes())
    assert report_file.name in str(refused.value)
    assert len(kb.documents("research")) == 1 and not (kb.home / REPORT_FOLDER / "k-visit" / "副本.txt").exists()


def test_a_member_does_not_replace_a_report_someone_else_attached_nor_share_its_sidecar(kb, embedder, report_file):
    wang, sun = as_user(kb, "王建民", "member", embedder), as_user(kb, "孙丽", "member", embedder)
    [first] = wang.cycle.attach_report("k-visit", report_file).reports
    with pytest.raises(PermissionDenied, match="王建民上传的"):
        sun.cycle.attach_report("k-visit", report_file.name, content=REPORT.replace("十四个", "十个").encode())
    # 报告.md beside 报告.txt would share 报告.meta.yaml, the sidecar that makes the first one a 调研报告
    with pytest.raises(InvalidCycleEdit, match="同名"):
        sun.cycle.attach_report("k-visit", report_file.stem + ".md", content="# 孙丽的报告\n\n内容不同。".encode())
    assert kb.cycle.task("k-visit").reports == [first] and kb.document(first.doc_id).issuer == "王建民"
    assert kb.cycle.attach_report("k-visit", report_file.name,              # staff may put in a new version
                                  content=REPORT.replace("十四个", "十个").encode()).reports[0].doc_id == first.doc_id


def test_a_broken_new_version_keeps_the_report_that_was_there(kb, embedder, tmp_path):
    wang = as_user(kb, "王建民", "member", embedder)
    good = _docx(tmp_path / "南塘县调研报告.docx", REPORT)
    [first] = wang.cycle.attach_report("k-visit", good).reports
    with pytest.raises(InvalidCycleEdit, match="无法索引"):
        wang.cycle.attach_report("k-visit", "南塘县调研报告.docx", content=b"PK\x03\x04 broken")
    stored = kb.home / REPORT_FOLDER / "k-visit" / "南塘县调研报告.docx"
    assert stored.read_bytes() == good.read_bytes()                      # the earlier version is back
    assert kb.cycle.task("k-visit").reports == [first] and "十四个" in kb.document(first.doc_id).text


def test_a_finished_task_still_takes_its_report_and_stays_finished(kb, embedder, report_file):
    # the report is usually written after the visit: the sample's tasks with reports are all 已完成
    wang = as_user(kb, "王建民", "member", embedder)
    wang.cycle.update_task("k-visit", status="已完成")
    task = wang.cycle.attach_report("k-visit", report_file)
    assert task.status == "已完成" and [r.author for r in task.reports] == ["王建民"]


def test_the_form_reports_a_cleaned_file_name_without_an_unexpected_error(kb, embedder):
    import datetime as dt

    from kb.widgets.dashboard import CycleDashboard

    board = CycleDashboard(as_user(kb, "王建民", "member", embedder))
    form = board.report_form
    form.upload.value = ({"name": " 南塘\u202e报告.txt", "type": "text/plain", "size": len(REPORT.encode()),
                          "content": memoryview(REPORT.encode("utf-8")),
                          "last_modified": dt.datetime(2025, 5, 10, tzinfo=dt.timezone.utc)},)
    assert "\u202e" not in form.picked.value
    form.attach_button.click()
    assert form.status_kind == "success", form.status
    assert [r.file_name for r in kb.cycle.task("k-visit").reports] == ["南塘报告.txt"]


# -- on PostgreSQL: the report goes in under the staff role, only after kb.cycle's check ---------------
def test_on_postgresql_a_member_attaches_to_their_own_task_and_their_role_still_cannot_write_documents(
        kb_home, mini_corpus, embedder, report_file):
    psycopg = pytest.importorskip("psycopg")
    from indexer.build import index_paths
    from kb.roles import User
    from kb.storage import Store

    from .pg_server import server

    url = server().new_database()
    staff = KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff", database=url)
    try:
        assert staff.db.backend == "postgresql"
        staff.index([mini_corpus])
        staff.topics.add("社区老年助餐补贴标准", year=2025, topic_id="zc")
        staff.cycle.add_task("zc", "赴南塘县农村助餐点调研", members="王建民、孙丽", task_id="k-visit")
        staff.cycle.add_task("zc", "收集补贴结算数据", members=["方晓雯"], task_id="k-data")
        wang = staff.for_user(User("王建民", "member"))

        [report] = wang.cycle.attach_report("k-visit", report_file).reports
        doc = staff.document(report.doc_id)
        assert doc.doc_type == "research" and doc.issuer == "王建民"
        assert staff.search("农村助餐点补贴城乡分档", doc_types=["research"])[0].doc_id == report.doc_id
        assert [(l.doc_id, l.author) for l in staff.topics.get("zc").links if l.kind == "research"] \
            == [(report.doc_id, "王建民")]
        entry = staff.audit_log(action="task.attach")[0]
        assert (entry.user, entry.role, entry.target_id) == ("王建民", "member", "k-visit")

        documents = len(staff.documents())
        with pytest.raises(PermissionDenied, match="别人的调研任务"):
            wang.cycle.attach_report("k-data", "结算数据说明.txt", content="二〇二四年结算数据说明。".encode())
        assert len(staff.documents()) == documents and not (kb_home / REPORT_FOLDER / "k-data").exists()

        # past kb.cycle, the member's own database role is refused by PostgreSQL
        with psycopg.connect(url) as conn:
            conn.execute("SET ROLE kb_member")
            conn.execute("SELECT set_config('kb.user', '王建民', false)")
            for sql in ("INSERT INTO documents (doc_id) VALUES ('d-forged')",
                        "INSERT INTO topic_links (topic_id, kind) VALUES ('zc', 'research')",
                        "DELETE FROM documents"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
                conn.rollback()
                conn.execute("SET ROLE kb_member")
        other = report_file.with_name("另一份报告.txt")
        other.write_text(REPORT.replace("十四个", "九个"), encoding="utf-8")
        with pytest.raises(PermissionDenied, match="数据库拒绝"):   # the indexer run under the member's role
            index_paths(Store(kb_home, db=wang.db), embedder, [other])
        assert len(staff.documents()) == documents
    finally:
        staff.close()
