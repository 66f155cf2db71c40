"""Headless tests of the briefing-pack builder and of the app wiring around it."""
from __future__ import annotations

import base64
import dataclasses
import re

import pytest

from kb.knowledge_base import KnowledgeBase
from kb.widgets.app import TAB_PACKS, TAB_SEARCH, ResearchApp
from kb.widgets.briefing_builder import BriefingBuilder
from kb.widgets.expert_panel import ExpertPanel
from kb.widgets.search_panel import SearchPanel

TOPIC = "社区老年助餐服务专题协商"


@pytest.fixture
def staff_kb(kb_home, embedder, mini_corpus):
    kb = KnowledgeBase(kb_home, embedder=embedder, user="王晓明", role="staff")
    kb.index([mini_corpus])
    yield kb
    kb.close()


@pytest.fixture
def topic_kb(staff_kb):
    staff_kb.topics.add(TOPIC, format="双月座谈", year=2025, keywords="老年助餐、助餐补贴、食品安全",
                        description="围绕老年助餐补贴和食品安全开展协商", topic_id="zhucan")
    return staff_kb


def other_user(kb, user, role, embedder):
    return KnowledgeBase(kb.home, embedder=embedder, user=user, role=role)


def test_without_topics_staff_can_create_one(staff_kb):
    builder = BriefingBuilder(staff_kb)
    assert builder.topic_id == "" and "还没有协商议题" in builder.topic_info.value
    builder.new_topic_button.click()
    assert builder.topic_form.layout.display == "flex"
    builder.topic_title_box.value = TOPIC
    builder.topic_keywords_box.value = "老年助餐，助餐补贴"
    builder.create_topic_button.click()
    assert builder.status_kind == "success", builder.status
    assert builder.topic_id and staff_kb.topics.get(builder.topic_id).keywords == ["老年助餐", "助餐补贴"]
    assert builder.topic_form.layout.display == "none"
    assert "还没有资料汇编" in builder.banner.value and builder.draft_button.description == "自动起草"
    assert all(b.disabled for b in builder.export_buttons.values())
    builder.create_topic_button.click()  # empty title
    assert builder.status_kind == "error"


def test_draft_shows_sections_with_counts_and_thin_notes(topic_kb):
    builder = BriefingBuilder(topic_kb)
    assert builder.topic_id == "zhucan" and "双月座谈" in builder.topic_info.value
    builder.draft_button.click()
    assert builder.version == 1 == builder.latest_version and builder.item_count > 0, builder.status
    heads = [w.value for w in builder.sections_box.children if not hasattr(w, "item")]
    assert heads[0].startswith('<div class="xs-section-head">一、政策法规（') and len(heads) == 5
    assert any("xs-thin" in h for h in heads)  # the mini corpus has no minutes: that section says so
    assert builder.draft_button.description == "重新起草"
    card = builder.cards()[0]
    assert card.item.quote in topic_kb.document(card.item.doc_id).text
    assert "出处：" in card.children[0].value and "1.1" in card.children[0].value
    assert builder.version_select.value == 1 and "王晓明" in builder.version_select.label


def test_edit_items_move_key_note_drop_reorder(topic_kb):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    policy = [c.item for c in builder.cards() if c.item.doc_type == "policy"]
    assert len(policy) >= 2
    first, second = policy[0], policy[1]

    builder.cards()[1].buttons["up"].click()
    assert builder.cards()[0].item.item_id == second.item_id
    builder.cards()[0].buttons["down"].click()
    assert builder.cards()[0].item.item_id == first.item_id

    builder.cards()[0].buttons["key"].click()
    assert builder.cards()[0].item.key and "重点阅读" in builder.cards()[0].children[0].value
    assert builder.cards()[0].buttons["key"].description == "取消重点"

    builder.cards()[0].buttons["edit"].click()
    assert builder.editing_item == first.item_id and builder.editor.layout.display == "flex"
    builder.note_box.value = "<b>请关注</b>补贴标准"
    builder.save_note_button.click()
    html = builder.cards()[0].children[0].value
    assert "编者按" in html and "&lt;b&gt;请关注" in html and "<b>请关注" not in html

    builder.move_section.value = "case"
    builder.move_button.click()
    latest = topic_kb.packs.get("zhucan")
    assert first.item_id in [i.item_id for i in latest.section("case").items]

    builder.reorder("policy", [policy[-1].item_id])
    assert topic_kb.packs.get("zhucan").section("policy").items[0].item_id == policy[-1].item_id

    count = builder.item_count
    target = builder.cards()[0].item.item_id
    builder.cards()[0].buttons["drop"].click()
    assert builder.item_count == count - 1 and "可在「版本」中打开上一版找回" in builder.status
    assert target not in {c.item.item_id for c in builder.cards()}
    assert builder.version == builder.latest_version == len(topic_kb.packs.history("zhucan"))


def test_search_adds_to_the_current_pack(topic_kb):
    builder = BriefingBuilder(topic_kb)
    search = SearchPanel(topic_kb, on_add=builder.add_hit)
    search.search("茶园面积")
    card = search.cards()[0]
    card.buttons["add"].click()  # before any draft: the pack starts with this item
    assert search.status_kind == "success" and "已加入资料汇编" in search.status, search.status
    assert builder.version == 1 and builder.item_count == 1
    builder.draft()  # the hand-picked item stays
    assert any(c.item.doc_id == card.hit.doc_id and c.item.origin == "manual" for c in builder.cards())
    card.buttons["add"].click()
    assert search.status_kind == "error" and "已在资料汇编中" in search.status and "kb pack" not in search.status


def test_older_versions_are_read_only_and_export(topic_kb):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    builder.cards()[0].buttons["key"].click()
    assert builder.latest_version == 2
    builder.version_select.value = 1
    assert builder.version == 1 and builder.read_only
    assert "历史版本" in builder.banner.value
    assert all(c.buttons["drop"].disabled for c in builder.cards())
    builder.export("md")
    assert builder.status_kind == "success", builder.status
    assert builder.last_export.endswith("第1版.md")


@pytest.mark.parametrize("fmt", ["md", "html", "docx"])
def test_export_offers_a_download(topic_kb, fmt):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    builder.export_buttons[fmt].click()
    assert builder.status_kind == "success", builder.status
    path = builder.last_export
    assert path.endswith(f".{fmt}") and (topic_kb.home / "exports").exists()
    link = re.search(r'href="data:([^;]+);base64,([^"]+)"', builder.download_html.value)
    assert link and base64.b64decode(link.group(2)) == open(path, "rb").read()
    assert 'download="' in builder.download_html.value


def test_pack_table_is_a_dataframe(topic_kb):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    table = builder.pack_table()
    assert list(table.columns) == ["序号", "部分", "标题", "条款/段落", "摘录", "出处", "重点", "编者按", "状态"]
    assert len(table) == builder.item_count and table.iloc[0]["序号"] == "1.1"
    builder.view_select.value = "table"
    assert builder.cards() == [] and "<table" in builder.table_html.value
    builder.view_select.value = "cards"
    assert builder.cards() and builder.table_html.value == ""


def test_members_read_and_export_but_do_not_edit(topic_kb, embedder):
    BriefingBuilder(topic_kb).draft()
    member = other_user(topic_kb, "李委员", "member", embedder)
    builder = BriefingBuilder(member, on_open=lambda *a: None)
    # a member sees only what a member can use: no disabled edit buttons anywhere
    for control in (builder.draft_button, builder.new_topic_button):
        assert control.disabled and control.layout.display == "none"
    assert builder.read_only and builder.cards()
    assert all(set(c.buttons) == {"open"} for c in builder.cards())
    assert builder.view_select.options[0][0] == "按部分阅读"
    assert "委员可以阅读和导出" in builder.banner.value
    builder.export("md")
    assert builder.status_kind == "success"
    builder.draft()  # refused by the library even when called directly
    assert builder.status_kind == "error" and "委员" in builder.status
    member.close()


def test_experts_see_no_edit_buttons_either(topic_kb, embedder):
    BriefingBuilder(topic_kb).draft()
    expert = other_user(topic_kb, "赵专家", "expert", embedder)
    builder = BriefingBuilder(expert)
    assert builder.draft_button.layout.display == "none"
    assert all(set(c.buttons) == {"open"} and c.buttons["open"].layout.display == "none" for c in builder.cards())
    assert all(not b.disabled for b in builder.export_buttons.values())  # exporting is for everyone
    expert.close()


def test_staff_see_the_edit_buttons(topic_kb):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    card = builder.cards()[0]
    assert {"up", "down", "key", "edit", "drop", "open"} == set(card.buttons)
    assert all(b.layout.display != "none" for name, b in card.buttons.items() if name != "open")
    assert builder.draft_button.layout.display != "none" and not builder.draft_button.disabled


def test_a_document_outside_the_five_sections_is_refused_in_app_words(topic_kb):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    hit = topic_kb.search("助餐 补贴")[0]
    other = dataclasses.replace(hit, doc_type="other")
    search = SearchPanel(topic_kb, on_add=lambda h: builder.add_hit(other))
    search.search("助餐 补贴")
    search.cards()[0].buttons["add"].click()
    assert search.status_kind == "error" and "不对应汇编" in search.status
    assert "--" not in search.status and "kb " not in search.status and "命令行" not in search.status


def test_expert_notes_show_on_pack_items(topic_kb, embedder):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    item = builder.cards()[0].item
    expert = other_user(topic_kb, "赵专家", "expert", embedder)
    expert.notes.add(item.doc_id, item.quote[:12], stance="存疑", text="数据来源需核实",
                     start=item.start, end=item.start + 12)
    builder.refresh()
    html = builder.cards()[0].children[0].value
    assert "专家论证意见 1 条" in html and "存疑" in html and "数据来源需核实" in html
    expert.close()


def test_role_notebook_app_opens_on_its_tab(topic_kb, embedder):
    app = ResearchApp(topic_kb.home, embedder=embedder, tabs=[TAB_PACKS], user="王晓明", role="工作人员")
    assert list(app.tabs.titles) == [TAB_SEARCH, TAB_PACKS] and app.tabs.selected_index == 1
    assert app.role == "staff" and "在「调研资料汇编」中开始" in app.status


def test_app_wires_search_to_builder(topic_kb, embedder):
    app = ResearchApp(topic_kb.home, embedder=embedder, user="王晓明", role="staff")
    assert app.logged_in and TAB_PACKS in app.tabs.titles
    builder, search = app.panels[TAB_PACKS], app.panels[TAB_SEARCH]
    builder.draft()
    search.search("茶园面积")
    search.cards()[0].buttons["add"].click()
    assert "已加入资料汇编" in search.status
    builder.cards()[0].buttons["open"].click()  # 打开原文 from the pack goes to the viewer in 检索
    assert app.panels["viewer"].doc_id == builder.cards()[0].item.doc_id
    assert app.tabs.selected_index == 0


def test_an_edit_on_a_version_someone_else_changed_is_refused_then_the_pack_reloads(topic_kb, embedder):
    builder = BriefingBuilder(topic_kb)
    builder.draft()
    first = builder.cards()[0].item
    other_user(topic_kb, "李娜", "staff", embedder).packs.mark_key("zhucan", first.item_id)
    builder.cards()[0].buttons["edit"].click()
    builder.note_box.value = "请关注补贴标准"
    builder.save_note_button.click()
    assert builder.status_kind == "error", builder.status
    assert "该汇编已被 李娜 于" in builder.status and "（第 2 版），请刷新后再改" in builder.status
    assert builder.version == builder.latest_version == 2 and builder.cards()[0].item.key  # reloaded
    assert builder.editing_item == first.item_id and builder.note_box.value == "请关注补贴标准"  # not lost
    assert topic_kb.packs.get("zhucan").sections[0].items[0].note == ""
    builder.save_note_button.click()  # now made on the latest version
    assert builder.status_kind == "success" and builder.version == 3
    assert topic_kb.packs.get("zhucan").sections[0].items[0].note == "请关注补贴标准"

    other_user(topic_kb, "李娜", "staff", embedder).packs.drop("zhucan", "1.2")
    count = builder.item_count
    builder.cards()[0].buttons["drop"].click()
    assert "（第 4 版），请刷新后再改" in builder.status and builder.item_count == count - 1
    assert topic_kb.packs.get("zhucan").version == 4


def test_redraft_asks_first_and_keeps_hand_work(topic_kb):
    builder = BriefingBuilder(topic_kb)
    builder.draft_button.click()  # no pack yet: drafts at once
    assert builder.version == 1 and builder.confirm_box.layout.display == "none"
    first = builder.cards()[0].item
    builder.cards()[0].buttons["key"].click()
    builder.draft_button.click()  # 重新起草: asks first
    assert builder.confirm_box.layout.display == "flex" and builder.version == 2
    assert "重新起草会替换自动选入的条目，手工加入的条目和顺序会保留。确定吗？" in builder.confirm_box.children[0].value
    builder.confirm_no.click()
    assert builder.confirm_box.layout.display == "none" and topic_kb.packs.get("zhucan").version == 2
    builder.draft_button.click()
    builder.confirm_yes.click()
    assert builder.confirm_box.layout.display == "none" and builder.version == 3, builder.status
    kept = builder.cards()[0].item
    assert kept.item_id == first.item_id and kept.key and "重新起草" in builder.pack.change


def test_notes_outside_the_pack_are_listed_and_pulled_in(topic_kb, embedder):
    doc = next(d for d in topic_kb.documents() if d.title == "青溪市社区助餐服务办法")
    text = doc.text
    topic_kb.packs.add_span("zhucan", doc.doc_id, text.index("第三条"), text.index("第四条"))
    expert = other_user(topic_kb, "赵专家", "expert", embedder)
    note = expert.notes.add(doc.doc_id, "每日留样四十八小时", stance="质疑", text="留样时间应延长")
    builder = BriefingBuilder(topic_kb)
    [card] = builder.outside_cards()
    assert card.note.note_id == note.note_id and "未收入汇编的段落上的论证意见（1 条）" in builder.outside_box.children[0].value
    assert "待审" in card.children[0].value and "留样时间应延长" in card.children[0].value
    member = BriefingBuilder(other_user(topic_kb, "张委员", "member", embedder))
    [seen] = member.outside_cards()  # members read it marked 待审, without the staff's 加入汇编
    assert "待审" in seen.children[0].value and not seen.buttons
    card.buttons["add"].click()
    assert builder.status_kind == "success", builder.status
    assert builder.outside_cards() == [] and any("每日留样四十八小时" in c.item.quote for c in builder.cards())
    topic_kb.notes.review(note.note_id, "accepted")
    member.refresh()
    assert member.outside_cards() == []  # the passage is in the pack now: the note sits under its item
    assert "专家论证意见 1 条" in "".join(c.children[0].value for c in member.cards())
    expert.close()


# -- the expert panel: staff review of expert notes (issue 14) --------------------------------
def test_expert_panel_staff_review_experts_see_state_members_not_internal(staff_kb, embedder):
    staff = staff_kb
    expert = other_user(staff, "李专家", "expert", embedder)
    member = other_user(staff, "张委员", "member", embedder)
    rules = next(d.doc_id for d in staff.documents() if d.title == "青溪市社区助餐服务办法")
    first = expert.notes.add(rules, "对八十周岁以上老年人每餐补贴三元", stance="质疑", text="标准偏低")
    second = expert.notes.add(rules, "每日留样四十八小时", stance="补充", text="x")
    panel = ExpertPanel(staff)
    assert panel.pending_ids == [first.note_id, second.note_id]
    assert panel.review_box.layout.display != "none"
    card = panel.review_cards()[0]
    card.buttons["accept"].click()
    assert panel.status_kind == "success" and "采纳入汇编" in panel.status, panel.status
    assert panel.pending_ids == [second.note_id]
    panel.review_cards()[0].buttons["internal"].click()
    assert panel.pending_ids == [] and "没有待审的论证意见" in panel.review_list.children[0].value
    panel.decision_select.value = first.note_id  # staff change a decision
    panel.internal_button.click()
    assert staff.notes.get(first.note_id).review == "internal"
    panel.decision_select.value = first.note_id
    panel.accept_button.click()
    assert staff.notes.get(first.note_id).review == "accepted"

    own = ExpertPanel(expert)
    assert own.review_box.layout.display == "none" and own.accept_button.layout.display == "none"
    assert "审核" in own.table_html.value and "采纳入汇编" in own.notes_html.value
    assert "仅内部参考" in own.notes_html.value and len(own.notes) == 2

    reader = ExpertPanel(member)
    assert [n.note_id for n in reader.notes] == [first.note_id]
    assert reader.review_box.layout.display == "none" and "标准偏低" in reader.notes_html.value
    assert "：x" not in reader.notes_html.value

