"""Headless tests of the panels: construct, set values, click, assert on state and rendered HTML."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from indexer.errors import DocumentNotFound, IndexDamaged, KBError
from kb.errors import InvalidNote, PackNotFound
from kb.knowledge_base import KnowledgeBase
from kb.widgets._common import CSS, GENERIC_ERROR, Panel, action, app_message, highlight, passage_label
from kb.widgets.app import TAB_DOCS, TAB_NOTES, TAB_SEARCH, ResearchApp
from kb.widgets.document_viewer import DocumentViewer
from kb.widgets.expert_panel import ExpertPanel
from kb.widgets.indexing_panel import IndexingPanel
from kb.widgets.search_panel import SearchPanel

HOSTILE = "<b>加粗</b><script>alert('x')</script> 老年助餐补贴 & 其他"


@pytest.fixture
def corpus(mini_corpus):
    # A document whose text looks like markup: it must be shown as text, never run.
    (mini_corpus / "标记测试.txt").write_text("网页标记测试材料\n" + HOSTILE + "\n", encoding="utf-8")
    return mini_corpus


@pytest.fixture
def make_kb(kb_home, embedder, corpus):
    opened = []

    def make(user="王晓明", role="staff", index=True):
        kb = KnowledgeBase(kb_home, embedder=embedder, user=user, role=role)
        if index and not opened:
            kb.index([corpus])
        opened.append(kb)
        return kb

    yield make
    for kb in opened:
        kb.close()


@pytest.fixture
def staff_kb(make_kb):
    return make_kb()


def card_html(card) -> str:
    return card.children[0].value


# -- helpers -----------------------------------------------------------------
def test_highlight_escapes_before_marking():
    out = highlight("补贴<b>&amp补贴", ["补贴", "amp", "b"])
    assert out.count('<mark class="xs-mark">补贴</mark>') == 2
    assert "<b>" not in out and "&lt;" in out
    # "amp" occurs in the raw text once; it must not also match inside the escaped entities
    assert out.count('<mark class="xs-mark">amp</mark>') == 1


def test_passage_label_drops_labels_that_repeat_the_text():
    assert passage_label("（七）建立补助机制…", "（七）建立补助机制。各地要") == ""
    assert passage_label("第二章 补贴与监管 第三条", "第三条 对八十周岁") == "第二章 补贴与监管 第三条"


def test_action_turns_errors_into_one_line(staff_kb, tmp_path):
    class Broken(Panel):
        @action("处理中…")
        def explode(self):
            raise RuntimeError("secret internal detail")

    panel = Broken(staff_kb)
    panel.explode()
    assert panel.status == GENERIC_ERROR and panel.status_kind == "error" and not panel.busy
    assert "secret" not in panel.status_bar.value and "Traceback" not in panel.status_bar.value
    log = (staff_kb.home / "logs" / "app.log")
    assert log.exists() and "secret internal detail" in log.read_text(encoding="utf-8")


CLI_WORDING = ("--", "kb ", "KB_", "python -m")


def assert_app_wording(text: str) -> None:
    assert not any(w in text for w in CLI_WORDING), text


@pytest.mark.parametrize("error", [
    InvalidNote("回复内容为空", hint="用 --text 写明回复"),
    DocumentNotFound("没有编号为 d_x 的文档", hint="用 kb docs 列出文档编号"),
    IndexDamaged("索引文件坏了", hint="运行 kb doctor --repair 从数据库重建检索文件"),
    PackNotFound("议题“某议题”还没有调研资料汇编", hint="先运行 kb pack draft t1"),
])
def test_library_hints_naming_commands_never_reach_the_page(staff_kb, error):
    class Raising(Panel):
        @action()
        def go(self):
            raise error

    panel = Raising(staff_kb)
    panel.go()
    assert panel.status_kind == "error" and panel.status.startswith(str(error))
    assert_app_wording(panel.status)
    assert app_message(error) == panel.status


def test_app_safe_hints_are_kept():
    assert app_message(KBError("没有要索引的文件", hint="先点「选择文件」上传")) == "没有要索引的文件（先点「选择文件」上传）"
    # a command-line hint gives way to what to do in the app, where there is such a way
    assert "自动起草" in app_message(PackNotFound("还没有调研资料汇编", hint="先运行 kb pack draft t1"))


# -- search panel -------------------------------------------------------------------
def test_highlight_underlines_the_focus_sentence_and_still_marks_terms():
    out = highlight("第一句。每餐补贴三元<多>。第三句。", ["补贴"], focus="每餐补贴三元<多>。")
    assert out == ('第一句。<span class="xs-focus">每餐<mark class="xs-mark">补贴</mark>三元&lt;多&gt;。</span>第三句。')
    assert "xs-focus" not in highlight("只有一句。", [], focus="只有一句。")  # the whole passage: nothing to single out
    assert "xs-focus" not in highlight("正文。", [], focus="不在正文里")


def test_search_shows_cards_with_highlights_and_citation(staff_kb):
    panel = SearchPanel(staff_kb)
    panel.query_box.value = "助餐 补贴"  # Enter in the box searches
    assert panel.query == "助餐 补贴" and panel.results
    assert panel.status_kind == "success" and "找到" in panel.status
    html = "".join(card_html(c) for c in panel.cards())
    assert '<mark class="xs-mark">补贴</mark>' in html
    assert "青政发〔2023〕15号" in html and "出处：" in html and "相关度" in html
    first = panel.cards()[0]
    assert set(first.buttons) == {"open", "add", "annotate"}


def test_only_weak_hits_are_not_reported_as_a_success(staff_kb):
    panel = SearchPanel(staff_kb)
    panel.search("量子计算机芯片出口管制")
    assert panel.results and all(h.weak for h in panel.results)
    assert panel.status_kind == "warning" and "找到" not in panel.status
    assert f"没有明确谈到“量子计算机芯片出口管制”的材料，以下 {len(panel.results)} 条只是弱相关" in panel.status
    assert "xs-status-success" not in panel.status_bar.value
    assert all("弱相关" in card_html(c) for c in panel.cards())


def test_mixed_results_say_how_many_are_strong(staff_kb):
    panel = SearchPanel(staff_kb)
    panel.search("助餐 补贴")
    strong = sum(not h.weak for h in panel.results)
    assert 0 < strong < len(panel.results)
    assert panel.status_kind == "success"
    assert f"找到 {len(panel.results)} 条相关段落，其中 {strong} 条明确相关" in panel.status


def test_document_text_is_escaped_in_cards(staff_kb):
    panel = SearchPanel(staff_kb)
    panel.search("网页标记测试材料 老年助餐补贴")
    html = "".join(card_html(c) for c in panel.cards())
    assert "网页标记测试材料" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>加粗" not in html


def test_filters_restrict_results_and_empty_result_explains(staff_kb):
    panel = SearchPanel(staff_kb)
    panel.type_select.value = "speech"
    panel.search("茶产业 发展")
    assert panel.results and {h.doc_type for h in panel.results} == {"speech"}
    assert panel.doc_type == "speech"

    panel.type_select.value = ""
    panel.date_from_box.value = dt.date(1990, 1, 1)
    panel.date_to_box.value = dt.date(1990, 12, 31)
    panel.search("老年助餐")
    assert panel.results == [] and panel.status_kind == "warning"
    empty = panel.results_box.children[0].value
    assert "没有找到" in empty and "放宽筛选条件" in empty and "1990-01-01" in empty

    panel.reset_filters()
    panel.in_force_box.value = True
    panel.search("老年助餐")
    assert panel.results and all(h.citation.validity == "in_force" for h in panel.results)


def test_empty_query_gives_a_readable_error(staff_kb):
    panel = SearchPanel(staff_kb)
    panel.search_button.click()
    assert panel.status_kind == "error" and "检索词为空" in panel.status
    assert not panel.busy and not panel.search_button.disabled


def test_paging(staff_kb):
    panel = SearchPanel(staff_kb, page_size=1)
    panel.search("老年 助餐 茶 港")
    assert len(panel.results) > 1 and panel.page_count == len(panel.results)
    assert panel.pager.layout.display == "flex" and panel.prev_button.disabled
    first = panel.cards()[0].hit
    panel.next_button.click()
    assert panel.page == 1 and panel.cards()[0].hit is not first
    assert "第 2 /" in panel.page_label.value
    panel.go_to_page(99)
    assert panel.page == panel.page_count - 1 and panel.next_button.disabled


def test_card_buttons_hand_the_hit_over(staff_kb):
    opened, added = [], []
    panel = SearchPanel(staff_kb, on_open=opened.append, on_add=lambda h: added.append(h) or "已加入")
    panel.search("助餐 补贴")
    card = panel.cards()[0]
    card.buttons["open"].click()
    card.buttons["add"].click()
    assert opened == [card.hit] and added == [card.hit]
    assert panel.status == "已加入"
    # no expert panel connected: the button says where to go instead of doing nothing
    assert card.buttons["annotate"].disabled and "专家论证" in card.buttons["annotate"].tooltip


def test_a_failing_handler_shows_a_message_not_a_traceback(staff_kb):
    def broken(_hit):
        raise ValueError("boom")

    panel = SearchPanel(staff_kb, on_open=broken)
    panel.search("助餐")
    panel.cards()[0].buttons["open"].click()
    assert panel.status == GENERIC_ERROR and "boom" not in panel.status_bar.value


def test_members_cannot_add_to_packs_or_annotate(make_kb):
    make_kb()  # index as staff
    member = make_kb("李委员", "member")
    panel = SearchPanel(member, on_open=lambda h: None, on_add=lambda h: None, on_annotate=lambda h: None)
    panel.search("助餐")
    card = panel.cards()[0]
    assert not card.buttons["open"].disabled and card.buttons["open"].layout.display != "none"
    # a member sees only what a member can use
    assert card.buttons["add"].layout.display == "none" and card.buttons["add"].disabled
    assert card.buttons["annotate"].layout.display == "none" and card.buttons["annotate"].disabled


def test_empty_knowledge_base_points_to_document_management(make_kb):
    empty = make_kb(index=False)
    panel = SearchPanel(empty)
    panel.search("老年助餐")
    assert panel.status_kind == "warning" and "文档管理" in panel.status and "kb index" not in panel.status


def test_filter_options_come_from_the_documents(staff_kb):
    panel = SearchPanel(staff_kb)
    assert "青溪市人民政府" in panel.issuer_box.options


# -- document viewer -----------------------------------------------------------------
def test_viewer_shows_structure_and_focus(staff_kb):
    hit = next(h for h in staff_kb.search("八十周岁 每餐补贴") if "第三条" in h.text)
    viewer = DocumentViewer(staff_kb)
    assert "打开原文" in viewer.header.value  # the empty state says how to start
    message = viewer.show_hit(hit)
    assert "已在右侧打开" in message and viewer.doc_id == hit.doc_id and viewer.focus_start == hit.start
    assert "青溪市社区助餐服务办法" in viewer.header.value and "青政发〔2023〕15号" in viewer.header.value
    assert "第三条" in viewer.body.value and "xs-passage-focus" in viewer.body.value
    assert "定位段落" in viewer.focus_html.value and "每餐补贴三元" in viewer.focus_html.value
    viewer.close_button.click()
    assert viewer.doc_id == "" and viewer.body.value == ""


def test_viewer_shows_notes_beside_their_passage_escaped(make_kb):
    staff = make_kb()
    expert = make_kb("赵专家", "expert")
    doc = next(d for d in staff.documents() if d.title == "青溪市社区助餐服务办法")
    expert.notes.add(doc.doc_id, "每日留样四十八小时", stance="质疑", text="<img src=x onerror=alert(1)>留样时间是否足够？")
    viewer = DocumentViewer(staff)
    viewer.show(doc.doc_id)
    assert viewer.note_count == 1
    body = viewer.body.value
    assert "xs-doc\"" in body or "class=\"xs-doc\"" in body  # two columns when there are notes
    assert "质疑" in body and "赵专家（专家）" in body and "留样时间是否足够" in body
    assert "<img" not in body and "&lt;img" in body
    # the note sits in the cell right after the passage that holds its quote
    passage_at = body.index("每日留样四十八小时")
    assert passage_at < body.index("留样时间是否足够")


def test_viewer_header_wraps_in_a_narrow_column(staff_kb):
    doc = next(d for d in staff_kb.documents() if d.title == "青溪市社区助餐服务办法")
    viewer = DocumentViewer(staff_kb)
    viewer.show(doc.doc_id)
    assert "xs-doc-head" in viewer.header.value and "xs-doc-meta" in viewer.header.value
    rules = {m.group(1).strip(): m.group(2) for m in re.finditer(r"([^{}]+)\{([^}]*)\}", CSS)}
    meta = rules[".xs-doc-meta"]
    assert "flex-wrap: wrap" in meta and "min-width: 0" in meta
    field = rules[".xs-meta-field"]
    assert "nowrap" not in field and "overflow-wrap: anywhere" in field
    assert "overflow-wrap: anywhere" in rules[".xs-doc-head .xs-card-title"]
    # the widget boxes themselves may shrink below their content's width
    assert any("min-width: 0" in body for sel, body in rules.items() if ".widget-html-content" in sel)
    # no fixed width in the style sheet wider than a 1024 px window
    assert all(int(w) <= 1024 for w in re.findall(r"(?<!-)width:\s*(\d+)px", CSS))


def test_viewer_unknown_document(staff_kb):
    viewer = DocumentViewer(staff_kb)
    viewer.show("d_missing")
    assert viewer.status_kind == "error" and "没有编号为 d_missing 的文档" in viewer.status
    assert_app_wording(viewer.status)


# -- indexing panel ------------------------------------------------------------------
def test_indexing_panel_indexes_a_folder_with_progress_and_skips(kb_home, embedder, corpus):
    (corpus / "坏文件.pdf").write_bytes(b"%PDF-1.4 truncated")
    (corpus / "说明.xyz").write_text("不支持", encoding="utf-8")
    kb = KnowledgeBase(kb_home, embedder=embedder, user="王晓明", role="staff")
    panel = IndexingPanel(kb)
    assert "还没有文档" in panel.documents_html.value
    panel.folder_box.value = str(corpus)
    panel.index_button.click()
    assert panel.indexed_documents == 4
    assert panel.progress.value == panel.progress.max and panel.progress.max >= 4
    assert panel.status_kind == "warning" and "新增 4 篇" in panel.status
    skipped = {p.rsplit("/", 1)[-1] for p, _ in panel.skipped}
    assert {"坏文件.pdf", "说明.xyz"} <= skipped
    assert "未能索引的文件" in panel.report_html.value and "不支持的文件格式" in panel.report_html.value
    assert "青溪市社区助餐服务办法" in panel.documents_html.value and "共 4 篇文档" in panel.summary_html.value
    kb.close()


def test_indexing_panel_takes_uploads(kb_home, embedder):
    kb = KnowledgeBase(kb_home, embedder=embedder, user="王晓明", role="staff")
    panel = IndexingPanel(kb)
    panel.upload.value = ({"name": "../../上传的讲话.txt", "type": "text/plain", "size": 60,
                           "content": memoryview("在全市会议上的讲话\n同志们：要办好老年助餐。\n".encode("utf-8")),
                           "last_modified": dt.datetime.now(dt.timezone.utc)},)
    assert "已选择 1 个文件" in panel.upload_label.value
    panel.run_index()
    assert panel.indexed_documents == 1, panel.status
    assert (kb_home / "uploads" / "上传的讲话.txt").exists()  # the browser's path is never used
    assert panel.upload.value == ()
    kb.close()


def test_indexing_panel_refuses_non_staff(make_kb, corpus):
    make_kb()
    member = make_kb("李委员", "member")
    panel = IndexingPanel(member)
    assert panel.index_button.disabled and panel.upload.disabled
    assert panel.upload_row.layout.display == "none" and panel.folder_row.layout.display == "none"
    assert "只有工作人员" in panel.children[2].value
    panel.folder_box.value = str(corpus)
    panel.run_index()  # even when called directly
    assert panel.status_kind == "error" and "委员" in panel.status and "不能添加或更新文档" in panel.status


def test_indexing_panel_without_input(staff_kb):
    panel = IndexingPanel(staff_kb)
    panel.index_button.click()
    assert panel.status_kind == "error" and "没有要索引的文件" in panel.status


# -- expert panel ---------------------------------------------------------------------
def test_expert_writes_filters_and_member_replies(make_kb):
    staff_kb = make_kb()
    expert_kb = make_kb("赵专家", "expert")
    panel = ExpertPanel(expert_kb)
    hit = next(h for h in expert_kb.search("留样 食品安全") if "留样" in h.text)
    SearchPanel(expert_kb, on_annotate=panel.start_note)  # the search card hands over the hit
    panel.start_note(hit)
    assert panel.doc_id == hit.doc_id and "留样" in panel.quote_box.value
    panel.quote_box.value = "每日留样四十八小时"
    panel.stance_buttons.value = "质疑"
    panel.text_box.value = "<script>x</script>留样时间应与省标准一致"
    panel.save_button.click()
    assert panel.status_kind == "success", panel.status
    assert panel.last_note_id and len(panel.notes) == 1
    note = panel.notes[0]
    assert (note.stance, note.quote, note.author) == ("质疑", "每日留样四十八小时", "赵专家")
    assert "<script>" not in panel.table_html.value + panel.notes_html.value
    assert "质疑" in panel.table_html.value and panel.text_box.value == ""

    panel.stance_filter.value = "支持"
    assert panel.notes == [] and "暂无符合条件" in panel.table_html.value
    panel.stance_filter.value = ""
    panel.author_filter.value = "赵专家"
    assert len(panel.notes) == 1

    staff_kb.notes.review(note.note_id, "accepted")  # members read accepted notes only
    member_kb = make_kb("李委员", "member")
    member = ExpertPanel(member_kb)
    assert member.save_button.disabled and member.text_box.disabled
    assert member.writer.layout.display == "none"  # no disabled note form for a member
    assert "可以阅读和回复论证意见" in member.role_note.value
    member.reply_box.value = "   "
    member.reply_button.click()
    assert member.status_kind == "error" and "回复内容为空" in member.status and "回复框" in member.status
    assert_app_wording(member.status)
    member.reply_box.value = "请补充依据"
    member.reply_button.click()
    assert member.status == "回复已发送"
    assert member.notes[0].replies[0].author == "李委员"
    assert "请补充依据" in member.notes_html.value
    member.save_note()  # refused even when called directly
    assert member.status_kind == "error" and "委员" in member.status


def test_expert_quote_must_be_verbatim(make_kb):
    make_kb()
    panel = ExpertPanel(make_kb("赵专家", "expert"))
    panel.quote_box.value = "原文里没有的话"
    panel.text_box.value = "意见"
    panel.save_button.click()
    assert panel.status_kind == "error" and "引文与原文不一致" in panel.status
    assert_app_wording(panel.status)
    assert panel.writer.layout.display != "none"
    panel.text_box.value = ""
    panel.quote_box.value = ""
    panel.save_button.click()
    assert "论证意见内容为空" in panel.status and "「意见」框" in panel.status
    panel.text_box.value = "意见"
    panel.save_button.click()  # no quote: the library would say "用 --quote 摘录"
    assert panel.status_kind == "error" and "没有给出引文" in panel.status and "段落" in panel.status
    assert_app_wording(panel.status)


# -- app -----------------------------------------------------------------------------
def test_app_login_and_panels_talk(kb_home, embedder, corpus):
    seed = KnowledgeBase(kb_home, embedder=embedder)
    seed.index([corpus])
    seed.close()
    app = ResearchApp(kb_home, embedder=embedder, tabs=(TAB_SEARCH, TAB_NOTES, TAB_DOCS))
    assert not app.logged_in and app.body.children == (app.login_box,)
    app.enter_button.click()  # no name yet
    assert app.status_kind == "error" and "姓名" in app.status and not app.logged_in
    assert_app_wording(app.status)
    app.name_box.value = "赵专家"
    app.role_buttons.value = "expert"
    app.enter_button.click()
    assert app.logged_in and app.kb.user.role == "expert" and app.kb.user.name == "赵专家"
    assert app.status_kind == "success" and "欢迎" in app.status
    assert list(app.tabs.titles) == [TAB_SEARCH, TAB_NOTES, TAB_DOCS]
    search = app.panels[TAB_SEARCH]
    app.name_box.value = "赵专家 "  # a second click with the same user keeps the panels
    app.enter_button.click()
    assert app.panels[TAB_SEARCH] is search and app.status_kind != "busy"
    assert "赵专家（专家）" in app.header.value

    search = app.panels[TAB_SEARCH]
    app.status = "欢迎，赵专家。"
    search.search("助餐 补贴")
    assert app.status == ""  # the welcome line does not stand above the search's own verdict
    card = search.cards()[0]
    card.buttons["open"].click()
    assert app.panels["viewer"].doc_id == card.hit.doc_id
    card.buttons["annotate"].click()
    assert app.tabs.selected_index == 1 and app.panels[TAB_NOTES].doc_id == card.hit.doc_id
    assert app.panels[TAB_DOCS].index_button.disabled  # experts do not manage documents

    app.switch_button.click()
    assert not app.logged_in and app.body.children == (app.login_box,)


def test_app_on_a_damaged_database_says_so_and_does_not_replace_it(kb_home, embedder, corpus):
    seed = KnowledgeBase(kb_home, embedder=embedder)
    seed.index([corpus])
    seed.close()
    (kb_home / "kb.sqlite").write_bytes(b"")
    app = ResearchApp(kb_home, embedder=embedder, tabs=(TAB_SEARCH,))
    assert app.status_kind == "error" and "kb.sqlite" in app.status and "空文件" in app.status
    assert app.enter_button.disabled and (kb_home / "kb.sqlite").stat().st_size == 0


def test_indexing_panel_progress_moves_inside_a_big_file(kb_home, embedder, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    body = "\n".join(f"第{n}条 社区食堂每餐补贴{n % 5 + 1}元，送餐上门由街道统筹。" for n in range(1, 700))
    (folder / "细则.txt").write_text("青溪市助餐细则（样例）\n" + body, encoding="utf-8")
    panel = IndexingPanel(KnowledgeBase(kb_home, embedder=embedder))
    values, labels = [], []
    panel.progress.observe(lambda change: values.append(change["new"]), "value")
    panel.progress_label.observe(lambda change: labels.append(change["new"]), "value")
    panel.folder_box.value = str(folder)
    panel.index_button.click()
    assert panel.status_kind == "success", panel.status
    assert any(0 < v < 1 for v in values) and any("（256/700 段）" in label for label in labels), labels
