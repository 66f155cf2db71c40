"""The consultation cycle (kb.cycle): the eight steps as a plan, research tasks and the 履职菜单,
speeches and the minutes drafted from them, the outcome chain, audit and roles, the dashboard and
its exports, the 协商工作台 tab, the CLI and the sample data."""
from __future__ import annotations

import base64
import json
import re

import pytest
from docx import Document

from kb import audit as audit_labels
from kb.cycle import InvalidCycleEdit, MinutesNotFound
from kb.cycle.minutes import sentences
from kb.errors import PermissionDenied, StaleEdit
from kb.knowledge_base import KnowledgeBase
from kb.storage import migrations
from kb.topics import STEPS

from .conftest import REPO, run_cli

ON = "2025-08-01"
SPEECHES = [
    ("王建民", "member", "民建市委会", "补贴标准",
     "调研发现补贴偏低，部分助餐点亏损。建议提高八十周岁以上老年人每餐补贴标准，对低保老年人加大补贴。"),
    ("周晓红", "member", "医药卫生界", "食品安全",
     "助餐点的食品安全仍有隐患。建议助餐点严格落实食品安全责任，每日留样并公开检查结果。"),
    ("林雪芬", "expert", "青溪师范学院", "补贴标准",
     "普惠补助起到了引流作用。建议保留普惠补助，同时与健康档案关联。"),
]


@pytest.fixture
def kb(kb_home, mini_corpus, embedder):
    base = KnowledgeBase(kb_home, embedder=embedder, user="王干事", role="staff")
    base.index([mini_corpus])
    base.topics.add("社区老年助餐补贴标准", format="双月座谈", year=2025, lead="社会和法制委员会",
                    keywords=["助餐", "补贴"], topic_id="zc")
    base.topics.add("茶产业品牌建设", format="面对面协商", year=2025, topic_id="tea")
    return base


def as_user(kb, name, role, embedder):
    return KnowledgeBase(kb.home, embedder=embedder, user=name, role=role)


@pytest.fixture
def held(kb):
    """A topic planned, held, with speeches and drafted minutes."""
    cycle = kb.cycle
    for step, due, done in ((1, "2025-01-20", "2025-01-15"), (2, "2025-03-01", "2025-03-05"),
                            (3, "2025-05-31", "2025-05-20"), (6, "2025-06-19", "2025-06-19")):
        cycle.set_step("zc", step, owner="社会和法制委员会", due=due, done=done)
    cycle.set_step("zc", 7, due="2025-07-10")
    for speaker, role, affiliation, theme, text in SPEECHES:
        cycle.add_speech("zc", speaker, text, role=role, affiliation=affiliation, theme=theme)
    cycle.draft_minutes("zc")
    return kb


# -- the plan ----------------------------------------------------------------------------
def test_plan_has_eight_steps_with_owner_due_done_and_overdue(kb):
    plan = kb.cycle.plan("zc")
    assert [s.name for s in plan.steps][:3] == ["精选协商议题", "制定工作方案", "实施调研计划"] and len(plan.steps) == 8
    kb.cycle.set_step("zc", "精选协商议题", owner="市政协办公室", due="2025-01-20", done="2025年1月15日")
    kb.cycle.set_step("zc", 2, owner="社会和法制委员会", due="2025-03-01", note="报党组审定")
    kb.cycle.set_step("zc", 3, due="2025-09-30")
    plan = kb.cycle.plan("zc")
    assert plan.steps[0].done == "2025-01-15" and plan.steps[1].note == "报党组审定"
    assert [s.name for s in plan.overdue(ON)] == ["制定工作方案"]      # due in March, not done
    assert plan.current.name == "制定工作方案" and plan.done_count == 1
    assert kb.topics.get("zc").step == 2  # the topic's step number follows the plan
    record = kb.cycle.topic_record("zc")
    assert [s["name"] for s in record["steps"]] == list(STEPS)
    assert {"owner", "due", "done"} <= set(record["steps"][0]) and "tasks" in record and "proposals" in record
    with pytest.raises(InvalidCycleEdit, match="日期"):
        kb.cycle.set_step("zc", 4, due="下周")


def test_research_tasks_are_visible_to_the_members_assigned(kb, embedder):
    visit = kb.cycle.add_task("zc", "赴南塘县农村助餐点调研", kind="实地调研", place="南塘县", date="2025-04-22",
                              members="王建民、孙丽", material="助餐点运营收支", assignee="王建民")
    kb.cycle.add_task("zc", "收集补贴结算数据", kind="资料收集", assignee="孙丽")
    kb.cycle.add_task("tea", "赴云岫市学习", kind="考察学习", members=["方晓雯"])
    assert visit.kind_label == "实地调研" and visit.members == ["王建民", "孙丽"]
    wang = as_user(kb, "王建民", "member", embedder)
    assert [t.title for t in wang.cycle.my_tasks()] == ["赴南塘县农村助餐点调研"]
    sun = as_user(kb, "孙丽", "member", embedder)
    assert {t.title for t in sun.cycle.my_tasks()} == {"赴南塘县农村助餐点调研", "收集补贴结算数据"}
    assert wang.cycle.my_tasks("孙丽") == wang.cycle.my_tasks()  # a member sees only their own
    done = wang.cycle.update_task(visit.task_id, status="已完成", report="走访助餐点14个，6个日均就餐不足15人。")
    assert done.status == "已完成" and "14个" in done.report
    other = next(t for t in kb.cycle.plan("tea").tasks)
    with pytest.raises(PermissionDenied, match="别人的调研任务"):
        wang.cycle.update_task(other.task_id, status="进行中")
    with pytest.raises(PermissionDenied):
        wang.cycle.update_task(visit.task_id, assignee="孙丽")   # reassigning is staff's
    with pytest.raises(PermissionDenied):
        as_user(kb, "李教授", "expert", embedder).cycle.update_task(visit.task_id, status="进行中")
    with pytest.raises(InvalidCycleEdit, match="任务类型"):
        kb.cycle.add_task("zc", "别的", kind="吃饭")


def test_members_sign_up_on_the_menu_and_staff_confirm(kb, embedder):
    member = as_user(kb, "钱志远", "member", embedder)
    signup = member.cycle.sign_up("zc", member="别人")  # a member signs up only themselves
    assert signup.member == "钱志远" and signup.status == "已报名"
    assert member.cycle.sign_up("zc").status == "已报名"   # twice is once
    with pytest.raises(PermissionDenied):
        member.cycle.confirm_signup("zc", "钱志远")
    assert kb.cycle.confirm_signup("zc", "钱志远").status == "已确认"
    menu = {m["topic_id"]: m for m in kb.cycle.menu(2025)}
    assert menu["zc"]["signups"] == [{"topic_id": "zc", "member": "钱志远", "status": "已确认", "confirmed_by": "王干事"}]
    with pytest.raises(PermissionDenied):
        as_user(kb, "李教授", "expert", embedder).cycle.sign_up("zc")


# -- speeches and the minutes ---------------------------------------------------------------
def test_minutes_trace_each_proposal_to_its_speaker_and_a_policy_passage(held):
    minutes = held.cycle.minutes("zc")
    speeches = {s.speech_id: s for s in held.cycle.speeches("zc")}
    assert [t.theme for t in minutes.themes] == ["补贴标准", "食品安全"]  # grouped by theme, in order of first mention
    assert len(minutes.items) == 3
    for item in minutes.items:
        speech = speeches[item.speech_id]
        assert item.speaker == speech.speaker and item.text in speech.text and item.text.startswith("建议")
    by_speaker = {i.speaker: i for i in minutes.items}
    assert by_speaker["林雪芬"].speaker_role == "expert" and "专家" in by_speaker["林雪芬"].byline
    regulation = held.document(by_speaker["王建民"].citation["doc_id"])
    assert regulation.title == "青溪市社区助餐服务办法"
    cited = by_speaker["王建民"].citation
    assert regulation.text[cited["start"]:cited["end"]] == cited["quote"] and "第三条" in cited["formatted"] + cited["label"]
    facts = dict(minutes.facts)
    assert facts["协商形式"] == "双月座谈" and facts["时间"] == "2025年6月19日" and facts["委员发言"] == "王建民、周晓红"


def test_minutes_hold_no_sentence_that_nobody_said_or_wrote(held, tmp_path):
    minutes = held.cycle.minutes("zc")
    said = " ".join(s.text for s in held.cycle.speeches("zc"))
    written = " ".join(held.document(d.doc_id).text for d in held.documents())
    md = held.cycle.export_minutes("zc", "md", tmp_path / "纪要.md").path.read_text(encoding="utf-8")
    proposals_part = md.split("## 二、主要意见建议", 1)[1].split("## 三、", 1)[0]
    checked = 0
    for line in proposals_part.splitlines():
        line = line.strip()
        if re.match(r"\d+\. ", line):  # a proposal: every sentence is the speaker's own
            for sentence in sentences(line.split(". ", 1)[1]):
                assert sentence in said, sentence
                checked += 1
        elif line.startswith("> 依据："):  # the passage: verbatim from the document
            quote = line.split("：“", 1)[1].rstrip("”")
            assert quote in written, quote
            checked += 1
    assert checked >= 4 and len(minutes.items) == 3


def test_speech_proposals_must_be_verbatim_and_a_member_cannot_record_speeches(kb, embedder):
    with pytest.raises(InvalidCycleEdit, match="不在"):
        kb.cycle.add_speech("zc", "王建民", "建议提高补贴。", proposals=[{"text": "建议取消补贴", "theme": "补贴"}])
    speech = kb.cycle.add_speech("zc", "王建民", "情况是这样。建议提高补贴，并公开结算。",
                                 proposals=[{"text": "建议提高补贴", "theme": "补贴标准"}])
    assert speech.proposals == [{"text": "建议提高补贴", "theme": "补贴标准"}]
    with pytest.raises(PermissionDenied):
        as_user(kb, "王建民", "member", embedder).cycle.add_speech("zc", "王建民", "建议提高补贴。")
    with pytest.raises(MinutesNotFound):
        kb.cycle.minutes("tea")
    with pytest.raises(InvalidCycleEdit, match="还没有登记发言"):
        kb.cycle.draft_minutes("tea")


def test_staff_edit_the_minutes_in_versions_and_a_redraft_keeps_their_edits(held):
    cycle = held.cycle
    first = cycle.minutes("zc")
    edited = cycle.edit_minutes("zc", expected_version=first.version, fact=("地点", "市政协机关三楼协商议政厅"))
    edited = cycle.edit_minutes("zc", move=("2", "食品安全"))  # 林雪芬's, from 补贴标准
    edited = cycle.edit_minutes("zc", text=("1", "建议提高高龄老人每餐补贴。"))
    assert edited.version == first.version + 3 and dict(edited.facts)["地点"] == "市政协机关三楼协商议政厅"
    assert [len(t.items) for t in edited.themes] == [1, 2] and edited.items[0].edited
    with pytest.raises(StaleEdit):
        cycle.edit_minutes("zc", expected_version=first.version, fact=("主持", "陈国华"))
    redrafted = cycle.draft_minutes("zc")
    assert dict(redrafted.facts)["地点"] == "市政协机关三楼协商议政厅"
    assert redrafted.items[0].text == "建议提高高龄老人每餐补贴。" and [len(t.items) for t in redrafted.themes] == [1, 2]
    assert [v["version"] for v in cycle.minutes_history("zc")] == list(range(1, redrafted.version + 1))
    assert len(cycle.proposals("zc")) == 3
    pid = cycle.resolve_proposal("zc", 3)
    cycle.assign(pid, "市市场监管局")
    cycle.edit_minutes("zc", drop="1")
    cycle.edit_minutes("zc", drop="2")  # was 3: it has been sent to a department, so its record stays
    assert [p.proposal_id for p in cycle.proposals("zc")] == [cycle.resolve_proposal("zc", 1), pid]


def test_minutes_word_file_names_every_source(held, tmp_path):
    held.cycle.add_instruction("zc", "市长周明远", "请市民政局牵头研究落实。", date="2025-07-08")
    result = held.cycle.export_minutes("zc", "docx", tmp_path / "纪要.docx")
    paragraphs = [p.text for p in Document(str(result.path)).paragraphs]
    text = "\n".join(paragraphs)
    assert "一、协商概况" in text and "二、主要意见建议" in text and "三、领导批示" in text
    for item in held.cycle.minutes("zc").items:
        at = next(n for n, p in enumerate(paragraphs) if item.text in p)
        assert paragraphs[at + 1] == f"—— {item.byline}"
        if item.citation:
            assert paragraphs[at + 2].startswith("依据：《") and item.citation["quote"] in paragraphs[at + 2]
    assert "市长周明远（2025年7月8日）：请市民政局牵头研究落实。" in text


# -- the outcome chain ----------------------------------------------------------------------
def test_outcome_status_moves_along_the_chain_and_invalid_moves_are_refused(held):
    cycle = held.cycle
    pid = cycle.resolve_proposal("zc", 1)
    instruction = cycle.add_instruction("zc", "副市长沈立群", "请市财政局测算。", date="2025-07-10", proposal_id=pid)
    proposal = cycle.assign(pid, "市民政局、市财政局", date="2025-07-12")
    assert proposal.departments == {"市民政局": "交办", "市财政局": "交办"} and proposal.instructions == [instruction]
    with pytest.raises(InvalidCycleEdit, match="不能从“交办”改为“已反馈”"):
        cycle.set_status(pid, "市民政局", "已反馈")
    with pytest.raises(InvalidCycleEdit, match="未交办"):
        cycle.set_status(pid, "市农业农村局", "办理中")
    cycle.set_status(pid, "市民政局", "办理中", date="2025-08-01")
    cycle.set_status(pid, "市民政局", "已采纳", date="2025-10-15", reply="出台分档补助办法。")
    proposal = cycle.set_status(pid, "市民政局", "已反馈", date="2025-10-25", reply="书面反馈市政协。")
    assert [h.status for h in proposal.history("市民政局")] == ["交办", "办理中", "已采纳", "已反馈"]
    assert proposal.outcome("市民政局") == "已采纳" and proposal.status == "交办"  # 市财政局 is still at 交办
    with pytest.raises(InvalidCycleEdit, match="不能从“已反馈”改为“办理中”"):
        cycle.set_status(pid, "市民政局", "办理中")
    with pytest.raises(InvalidCycleEdit, match="未知办理状态"):
        cycle.set_status(pid, "市财政局", "同意")
    data = proposal.as_dict()
    assert data["instructions"][0]["leader"] == "副市长沈立群" and len(data["status_history"]) == 5


def test_a_review_opens_next_years_topic_with_the_history_linked(held, tmp_path):
    cycle = held.cycle
    held.topics.add("老年助餐提质扩面", format="双月座谈", year=2026, keywords=["助餐", "补贴"], topic_id="zc-2026")
    review = cycle.add_review("zc", "农村保底补助尚未落地。", date="2026-06-20", rating="较好",
                              followup="列为明年协商重点", next_topic="zc-2026")
    assert review.next_topic_id == "zc-2026"
    history = cycle.history("zc-2026")
    assert history[0]["topic_id"] == "zc" and history[0]["proposals"] == 3 and history[0]["review"]["rating"] == "较好"
    link = held.topics.get("zc-2026").links_of("followup")[0]  # the dossier's 编辑说明 shows it
    assert link.title == "社区老年助餐补贴标准" and "协商纪要建议 3 条" in link.text and "农村保底补助尚未落地" in link.text
    held.packs.draft("zc-2026")
    dossier = held.packs.export("zc-2026", "md", tmp_path / "汇编.md").path.read_text(encoding="utf-8")
    intro = dossier.split("编辑说明", 2)[2]
    assert "回头看" in intro and "协商纪要建议 3 条" in intro
    with pytest.raises(InvalidCycleEdit, match="未知评价"):
        cycle.add_review("zc", "发现", rating="优秀")


def test_every_change_is_audited_with_a_chinese_label(held, embedder):
    cycle = held.cycle
    pid = cycle.resolve_proposal("zc", 2)
    cycle.add_instruction("zc", "市长", "请研究。")
    cycle.assign(pid, "市市场监管局")
    cycle.set_status(pid, "市市场监管局", "办理中")
    task = cycle.add_task("zc", "调研", members=["王建民"])
    as_user(held, "王建民", "member", embedder).cycle.update_task(task.task_id, report="调研报告正文")
    cycle.add_review("zc", "回头看发现")
    actions = {e.action for e in held.audit_log(limit=None)}
    assert {"plan.step", "speech.add", "minutes.draft", "proposal.instruct", "proposal.assign", "proposal.status",
            "task.add", "task.report", "review.add"} <= actions
    assert all(a in audit_labels.ACTION_LABELS for a in actions)
    report = next(e for e in held.audit_log(action="task.report"))
    assert report.user == "王建民" and report.role == "member"
    before = len(held.audit_log(limit=None))
    with pytest.raises(InvalidCycleEdit):
        cycle.set_status(pid, "市市场监管局", "已反馈")
    assert len(held.audit_log(limit=None)) == before  # a refused change leaves no entry


@pytest.mark.parametrize("role", ["member", "expert"])
def test_members_and_experts_read_but_do_not_change_the_plan_minutes_or_outcomes(held, embedder, role):
    other = as_user(held, "某人", role, embedder).cycle
    assert len(other.plan("zc").steps) == 8 and other.minutes("zc").items and other.proposals("zc")
    pid = other.resolve_proposal("zc", 1)
    for attempt in (lambda: other.set_step("zc", 4, done="2025-06-01"), lambda: other.draft_minutes("zc"),
                    lambda: other.edit_minutes("zc", fact=("地点", "x")), lambda: other.assign(pid, "市民政局"),
                    lambda: other.add_instruction("zc", "市长", "请研究"), lambda: other.add_review("zc", "发现"),
                    lambda: other.add_task("zc", "调研")):
        with pytest.raises(PermissionDenied):
            attempt()


# -- the dashboard and its exports ------------------------------------------------------------
@pytest.fixture
def outcomes(held):
    cycle = held.cycle
    one, two, three = (cycle.resolve_proposal("zc", n) for n in (1, 2, 3))
    for pid, dept, result in ((one, "市民政局", "已采纳"), (two, "市民政局", "未采纳"), (three, "市民政局", "部分采纳"),
                              (one, "市财政局", "未采纳"), (three, "市卫生健康委", None)):
        cycle.assign(pid, dept, date="2025-07-12")
        cycle.set_status(pid, dept, "办理中", date="2025-08-01")
        if result:
            cycle.set_status(pid, dept, result, date="2025-10-01")
    cycle.set_status(one, "市民政局", "已反馈", date="2025-10-10")
    return held


def test_dashboard_figures_adoption_by_department_and_overdue(outcomes):
    board = outcomes.cycle.dashboard(2025, on=ON)
    adoption = board.adoption.set_index("部门")
    assert adoption.loc["市民政局", "交办"] == 3 and adoption.loc["市民政局", "采纳率"] == pytest.approx(2 / 3, abs=1e-3)
    assert adoption.loc["市财政局", "采纳率"] == 0 and adoption.loc["市卫生健康委", "办理中"] == 1
    assert adoption.loc["市卫生健康委", "采纳率"] is None or adoption["采纳率"].isna()["市卫生健康委"]
    status = dict(zip(board.status["状态"], board.status["件数"]))
    assert status == {"办理中": 1, "部分采纳": 1, "未采纳": 2, "已反馈": 1}
    assert board.totals["adoption_rate"] == pytest.approx(2 / 4)
    plan = board.plan.set_index("topic_id")
    assert plan.loc["zc", "逾期步骤"] == "报送协商纪要" and plan.loc["zc", "会议日期"] == "2025-06-19"
    assert list(board.by_year["年度"]) == [2025]
    later = outcomes.cycle.dashboard(2025, on="2026-07-01")
    assert later.review_due.set_index("议题").loc["社区老年助餐补贴标准", "状态"] == "逾期"
    assert json.dumps(board.as_dict(), ensure_ascii=False)


def test_report_exports_html_with_chart_images_and_a_word_file(outcomes, tmp_path):
    html_file = outcomes.cycle.export_report(2025, "html", tmp_path / "年度协商.html", on=ON).path
    page = html_file.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "2025年度协商工作报告" in page and "市民政局" in page and "67%" in page
    docx_file = outcomes.cycle.export_report(2025, "docx", tmp_path / "年度协商.docx", on=ON).path
    doc = Document(str(docx_file))
    assert len(doc.inline_shapes) == 3 and doc.tables
    assert any("一、年度协商计划与进度" in p.text for p in doc.paragraphs)
    assert {e.action for e in outcomes.audit_log(action="report.export")} == {"report.export"}


# -- the app ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["staff", "member", "expert"])
def test_the_workbench_tab_builds_for_each_role(outcomes, embedder, role):
    from kb.widgets.app import TAB_CYCLE, ResearchApp

    outcomes.cycle.add_task("zc", "赴南塘县调研", members=["王建民"], date="2025-04-22")
    app = ResearchApp(outcomes.home, embedder=embedder, user="王建民", role=role)
    assert TAB_CYCLE in app.tabs.titles
    panel = app.panels[TAB_CYCLE]
    assert panel.status_kind != "error", panel.status
    assert "data:image/png;base64" in panel.charts.value and "市民政局" in panel.tables.value
    assert panel.topic_id == "zc" and "纪要中的意见建议及办理" in panel.topic_view.value
    assert (panel.draft_button.layout.display != "none") == (role == "staff")
    assert (panel.signup_button.layout.display != "none") == (role in ("staff", "member"))
    if role == "member":
        assert "赴南塘县调研" in panel.my_tasks.value
        panel.task_choice.value = panel.task_choice.options[0][1]
        panel.task_status.value = "已完成"
        panel.task_report.value = "走访助餐点6个。"
        panel.task_button.click()
        assert panel.status_kind == "success" and "已完成" in panel.status
        panel.signup_button.click()
        assert panel.status_kind == "success" and "已报名" in panel.status
    if role == "staff":
        panel.step_choice.value, panel.step_done.value = 7, "2025-07-02"
        panel.step_button.click()
        assert panel.status_kind == "success" and "报送协商纪要" in panel.status
        assert outcomes.cycle.plan("zc").steps[6].done == "2025-07-02"
        panel.proposal_choice.value = panel.proposal_choice.options[2][1]
        panel.department.value, panel.status_choice.value = "市卫生健康委", "已采纳"
        panel.reply.value = "2025-10-20 纳入社区食堂服务规范"
        panel.status_button.click()
        assert panel.status_kind == "success", panel.status
        assert outcomes.cycle.proposals("zc")[2].history("市卫生健康委")[-1].reply == "纳入社区食堂服务规范"
        panel.status_choice.value = "交办"
        panel.status_button.click()
        assert panel.status_kind == "error" and "不能从“已采纳”改为“交办”" in panel.status
        panel.draft_button.click()
        assert panel.status_kind == "success" and "协商纪要第" in panel.status
        panel.report_html_button.click()
        assert ".html" in panel.download.value
    if role != "staff":
        assert panel.staff_box.layout.display == "none"
    if role == "expert":
        assert panel.task_box.layout.display == "none"


# -- the command line and the sample data -----------------------------------------------------------
def test_cli_plan_minutes_outcome_and_dashboard(held, capsys, tmp_path):
    home = str(held.home)
    held.close()
    code, out, err = run_cli(capsys, "plan", "step", "zc", "7", "--done", "2025-07-02", "--home", home)
    assert code == 0 and "报送协商纪要" in out, err
    code, out, _ = run_cli(capsys, "plan", "show", "zc", "--json", "--home", home)
    record = json.loads(out)
    assert len(record["steps"]) == 8 and record["steps"][6]["done"] == "2025-07-02" and len(record["proposals"]) == 3
    code, out, err = run_cli(capsys, "outcome", "assign", "zc", "2", "--dept", "市市场监管局", "--home", home)
    assert code == 0 and "市市场监管局" in out, err
    code, _, err = run_cli(capsys, "outcome", "status", "zc", "2", "--dept", "市市场监管局", "--status", "已反馈",
                           "--home", home)
    assert code == 2 and "不能从“交办”改为“已反馈”" in err and "Traceback" not in err
    code, out, _ = run_cli(capsys, "minutes", "draft", "zc", "--out", str(tmp_path / "纪要.docx"), "--home", home)
    assert code == 0 and (tmp_path / "纪要.docx").stat().st_size > 5000
    code, out, _ = run_cli(capsys, "minutes", "show", "zc", "--home", home)
    assert "二、主要意见建议" in out and "—— 王建民委员" in out
    code, out, _ = run_cli(capsys, "outcome", "list", "zc", "--json", "--home", home)
    assert json.loads(out)[1]["departments"] == {"市市场监管局": "交办"}
    code, out, _ = run_cli(capsys, "dashboard", "--year", "2025", "--on", ON, "--json", "--home", home)
    assert json.loads(out)["totals"]["topics"] == 2
    code, out, err = run_cli(capsys, "report", "--year", "2025", "--out", str(tmp_path / "年度协商.docx"), "--home", home)
    assert code == 0 and (tmp_path / "年度协商.docx").exists(), err
    code, _, err = run_cli(capsys, "plan", "step", "zc", "8", "--done", "2025-07-02", "--role", "member",
                           "--user", "王建民", "--home", home)
    assert code == 2 and "不能" in err


def test_the_schema_is_portable_sql():
    script = migrations._CYCLE
    assert not re.search(r"AUTOINCREMENT|BLOB|BOOLEAN|DATETIME|JSON|PRAGMA", script)
    source = (REPO / "kb" / "storage" / "cycle.py").read_text(encoding="utf-8")
    assert not re.search(r"lastrowid|rowid|json_|group_concat|strftime|datetime\(|IFNULL|INSERT OR", source)
    assert migrations.SCHEMA_VERSION >= 6


@pytest.mark.skipif(not (REPO / "corpus" / "topics.yaml").exists(), reason="sample corpus not present")
def test_the_sample_cycle_imports_once_and_tells_the_story(kb_home, embedder):
    kb = KnowledgeBase(kb_home, embedder=embedder, user="测试员", role="staff")
    kb.index([REPO / "corpus"])
    kb.topics.import_yaml(REPO / "corpus" / "topics.yaml")
    report = kb.cycle.import_yaml(REPO / "corpus" / "topics.yaml")
    assert len(report["topics"]) == 6 and len(report["minutes_drafted"]) == 5
    entries = len(kb.audit_log(limit=None))
    again = kb.cycle.import_yaml(REPO / "corpus" / "topics.yaml")
    assert again["minutes_drafted"] == [] and again["handling_steps"] == 0
    assert len(kb.audit_log(limit=None)) == entries + 1  # only the import itself
    board = kb.cycle.dashboard(2025, on="2026-12-01")
    assert len(board.plan) == 4 and board.totals["proposals"] > 10 and board.adoption["采纳率"].notna().any()
    assert "逾期" in set(board.review_due["状态"])
    assert kb.cycle.history("laonian-zhucan-2025")[0]["topic_id"] == "laonian-shitang-2023"
    for item in kb.cycle.minutes("laonian-zhucan-2025").items:
        speech = next(s for s in kb.cycle.speeches("laonian-zhucan-2025") if s.speech_id == item.speech_id)
        assert item.text in speech.text


# -- in a real browser (slow): the tab and the exported report, with screenshots ---------------------
@pytest.fixture(scope="module")
def served_cycle(tmp_path_factory):
    from .test_browser import serving_sample_app

    home = tmp_path_factory.mktemp("cycle-browser") / "kb_data"
    with serving_sample_app(home, lambda kb: kb.cycle.import_yaml(REPO / "corpus" / "topics.yaml")) as (url, model):
        yield url, home, model


@pytest.mark.slow
def test_the_workbench_and_the_report_in_the_browser(served_cycle, tmp_path):
    from .test_browser import LONG, SHOTS, offline_page, shot, tab

    url, home, model = served_cycle
    with offline_page(tmp_path / "profile", {"width": 1280, "height": 1000}) as page:
        page.goto(url, timeout=LONG)
        page.wait_for_selector("text=请选择身份", timeout=LONG)
        page.fill("input[placeholder^='请输入姓名']", "王晓明")
        page.locator("button", has_text="进入").click()
        page.wait_for_selector("text=检索资料")
        tab(page, "协商工作台")
        page.wait_for_selector("img[alt='年度协商计划时间轴']", timeout=LONG)
        page.wait_for_selector("text=纪要中的意见建议及办理")
        assert page.locator("img[alt='意见建议办理与采纳']").count() == 1
        body = page.inner_text("body")
        assert "各部门办理和采纳" in body and "市民政局" in body and "逾期" in body
        assert "Traceback" not in body and "程序出现意外错误" not in body
        page.locator(".xs-title", has_text="协商工作台").scroll_into_view_if_needed()
        shot(page, "dashboard")
        page.locator(".xs-section-head", has_text="议题的工作计划与成果").scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -20)")
        shot(page, "dashboard_topic")

        # the exported report, as a member of the office opens it
        kb = KnowledgeBase(home, model=model, user="测试员", role="staff")
        report = kb.cycle.export_report(2025, "html", tmp_path / "年度协商.html").path
        kb.close()
        page.set_content(report.read_text(encoding="utf-8"))
        page.wait_for_selector("img[alt='各议题八步工作法进度']")
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 300)")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard_report.png"), full_page=False)
