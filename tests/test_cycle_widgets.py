"""The 协商工作台's forms (kb.widgets.cycle_panels) headless: staff add and edit research tasks,
record instructions and 回头看 and see which status may come next; members attach 调研报告 files to
their own tasks; experts and members read. The role is checked by kb.cycle even when a hidden
form's button is pressed."""
from __future__ import annotations

import datetime as dt

import pytest

from kb.knowledge_base import KnowledgeBase
from kb.widgets.dashboard import CycleDashboard

from .test_cycle_reports import REPORT

NOW = dt.datetime(2025, 5, 10, tzinfo=dt.timezone.utc)
SPEECH = "助餐点亏损较多。建议提高八十周岁以上老年人每餐补贴标准，对低保老年人加大补贴。"


@pytest.fixture
def kb(kb_home, mini_corpus, embedder):
    base = KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff")
    base.index([mini_corpus])
    base.topics.add("社区老年助餐补贴标准", format="双月座谈", year=2025, keywords=["助餐", "补贴"], topic_id="zc")
    base.topics.add("老年助餐回头看", format="双月座谈", year=2026, topic_id="zc2")
    base.cycle.set_step("zc", 6, due="2025-06-19", done="2025-06-19")
    base.cycle.add_speech("zc", "王建民", SPEECH, role="member", theme="补贴标准")
    base.cycle.draft_minutes("zc")
    base.cycle.add_task("zc", "赴南塘县农村助餐点调研", members=["王建民"], date="2025-04-22", task_id="k-visit")
    return base


def board_for(kb, name, role, embedder):
    board = CycleDashboard(KnowledgeBase(kb.home, embedder=embedder, user=name, role=role))
    board.year = 2025   # the consultation held, not next year's follow-up
    return board


def test_staff_add_and_edit_a_research_task(kb, embedder):
    board = board_for(kb, "王干事", "staff", embedder)
    form = board.task_form
    assert board.topic_id == "zc" and form.layout.display != "none" and form.task_choice.value == ""
    form.title.value, form.kind.value, form.place.value = "收集补贴结算数据", "资料收集", "市民政局"
    form.members.value, form.assignee.value, form.date.value = "孙丽、王建民", "孙丽", "2025-05-06"
    form.save_button.click()
    assert form.status_kind == "success" and "已添加" in form.status, form.status
    added = next(t for t in kb.cycle.plan("zc").tasks if t.title == "收集补贴结算数据")
    assert (added.kind_label, added.members, added.assignee) == ("资料收集", ["孙丽", "王建民"], "孙丽")
    assert "收集补贴结算数据" in board.topic_view.value          # the topic shows it at once
    form.task_choice.value = "k-visit"
    assert form.title.value == "赴南塘县农村助餐点调研"            # the form shows the task chosen
    form.place.value, form.material.value = "南塘县", "助餐点收支台账"
    form.save_button.click()
    assert form.status_kind == "success" and kb.cycle.task("k-visit").material == "助餐点收支台账"
    form.task_choice.value, form.date.value = "k-visit", "下周"
    form.save_button.click()
    assert form.status_kind == "error" and "日期" in form.status


def test_staff_record_an_instruction_a_status_and_a_review(kb, embedder):
    board = board_for(kb, "王干事", "staff", embedder)
    forms = board.outcome_forms
    proposal_id = kb.cycle.proposals("zc")[0].proposal_id
    forms.proposal_choice.value = proposal_id
    forms.leader.value, forms.instruction_date.value = "周明远市长", "2025-07-05"
    forms.instruction_text.value = "请市民政局牵头研究，提出补贴调整方案。"
    forms.instruct_button.click()
    assert forms.status_kind == "success" and "周明远市长" in forms.status, forms.status
    assert kb.cycle.proposal(proposal_id).instructions[0].text == "请市民政局牵头研究，提出补贴调整方案。"
    assert "周明远市长：请市民政局牵头研究" in board.topic_view.value
    board.proposal_choice.value, board.department.value = proposal_id, "市民政局"
    assert "下一步可以是 交办" in board.next_hint.value
    board.status_choice.value = "交办"
    board.status_button.click()
    assert "现为“交办”，下一步可以是 办理中" in board.next_hint.value
    forms.review_date.value, forms.reviewer.value, forms.rating.value = "2026-06-20", "社会和法制委员会", "较好"
    forms.findings.value, forms.next_topic.value = "八十周岁以上老年人每餐补贴已提高。", "zc2"
    forms.review_button.click()
    assert forms.status_kind == "success" and "关联到下一年的议题" in forms.status, forms.status
    assert kb.cycle.reviews("zc")[0].next_topic_id == "zc2" and "回头看" in board.topic_view.value
    forms.findings.value = ""
    forms.review_button.click()
    assert forms.status_kind == "error" and "回头看发现为空" in forms.status


def test_a_member_attaches_a_report_from_the_task_box(kb, embedder):
    board = board_for(kb, "王建民", "member", embedder)
    form = board.report_form
    assert form in board.task_box.children and form.layout.display != "none"
    assert board.task_form.layout.display == "none" and board.outcome_forms.layout.display == "none"
    assert [v for _l, v in form.task_choice.options] == ["k-visit"]
    form.attach_button.click()
    assert form.status_kind == "warning" and "选择报告文件" in form.status
    form.upload.value = ({"name": "南塘县调研报告.txt", "type": "text/plain", "size": len(REPORT.encode()),
                          "content": memoryview(REPORT.encode("utf-8")), "last_modified": NOW},)
    assert "南塘县调研报告.txt" in form.picked.value
    form.attach_button.click()
    assert form.status_kind == "success" and "调研报告" in form.status, form.status
    [report] = kb.cycle.task("k-visit").reports
    assert report.author == "王建民" and kb.document(report.doc_id).doc_type == "research"
    assert report.title in form.listing.value and report.title in board.my_tasks.value
    assert report.title in board.topic_view.value and form.upload.value == ()
    # a hidden staff form pressed anyway: kb.cycle refuses
    board.outcome_forms.topic_id = "zc"
    board.outcome_forms.leader.value, board.outcome_forms.instruction_text.value = "某领导", "同意。"
    board.outcome_forms.add_instruction()
    assert board.outcome_forms.status_kind == "error" and "不能" in board.outcome_forms.status
    assert kb.cycle.instructions("zc") == []


def test_experts_read_without_forms(kb, embedder):
    board = board_for(kb, "林雪芬", "expert", embedder)
    assert all(f.layout.display == "none" for f in (board.task_form, board.report_form, board.outcome_forms))
    assert "赴南塘县农村助餐点调研" in board.topic_view.value
    board.report_form.task_choice.options = [("任务", "k-visit")]
    board.report_form.task_choice.value = "k-visit"
    board.report_form.upload.value = ({"name": "报告.txt", "type": "text/plain", "size": 6,
                                       "content": memoryview("调研报告".encode()), "last_modified": NOW},)
    board.report_form.attach()
    assert board.report_form.status_kind == "error" and "专家" in board.report_form.status


def test_results_show_beside_the_row_pressed_and_a_members_task_is_chosen(kb, embedder):
    kb.cycle.update_task("k-visit", report="走访助餐点三个。")
    board = board_for(kb, "王建民", "member", embedder)
    assert board.task_choice.value == "k-visit"                     # not an empty dropdown (ipywidgets 8)
    assert (board.task_status.value, board.task_report.value) == ("待办", "走访助餐点三个。")
    assert "社区老年助餐补贴标准" in board.my_tasks.value and ">zc<" not in board.my_tasks.value
    board.task_status.value = "进行中"
    board.task_button.click()
    assert "已保存" in board.task_line.value and board.staff_line.value == ""
    assert kb.cycle.task("k-visit").status == "进行中"

    staff = board_for(kb, "王干事", "staff", embedder)
    staff.proposal_choice.value = kb.cycle.proposals("zc")[0].proposal_id
    staff.department.value, staff.status_choice.value = "市民政局", "办理中"     # not 交办 first: refused
    staff.status_button.click()
    assert "xs-status-error" in staff.staff_line.value and "不能从" in staff.staff_line.value
    assert all(len(label) <= 21 for label, _v in staff.proposal_choice.options)
    forms = staff.outcome_forms
    forms.leader.value, forms.instruction_text.value = "周明远市长", "同意。"
    forms.instruct_button.click()
    assert "已登记" in forms.instruction_status.value and forms.status_bar.value == ""
    forms.review_button.click()                                      # no findings: the error shows by its button
    assert "回头看发现为空" in forms.status_bar.value and forms.instruction_status.value == ""
