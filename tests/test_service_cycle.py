"""The consultation cycle on the team server: the panels' calls go through `kb.remote` to the
service's allow-list, the minutes and the year's report come back as files, and a member's
调研报告 goes up as an upload to their own task. Roles are the service layer's, from the hub group."""
from __future__ import annotations

import pytest
import requests

from kb.cycle import ResearchTask
from kb.errors import PermissionDenied
from indexer.errors import KBError

from .test_service import client, team  # noqa: F401  (the module's service and hub double)

REPORT = ("关于社区老年助餐点运营情况的调研报告\n\n一、基本情况\n调研组走访社区助餐点九个，"
          "其中三个日均就餐不足二十人。\n\n二、建议\n建议对日均就餐人数少的助餐点给予运营补助，并推行中央厨房配送。\n")
SPEECH = "助餐点运营困难。建议提高八十周岁以上老年人每餐补贴标准。"


@pytest.fixture(scope="module")
def cycle_task(team):  # noqa: F811
    staff = client(team, "tok-staff")
    task = staff.cycle.add_task("zhucan", "走访社区助餐点", kind="实地调研", date="2025-04-20",
                                members=["demo-member"], task_id="k-remote")
    staff.cycle.add_task("zhucan", "收集补贴结算数据", kind="资料收集", assignee="孙丽", task_id="k-other")
    return task


def test_staff_run_the_cycle_from_the_client_and_others_are_refused(team, cycle_task):  # noqa: F811
    staff, member, expert = (client(team, t) for t in ("tok-staff", "tok-member", "tok-expert"))
    assert isinstance(cycle_task, ResearchTask) and cycle_task.members == ["demo-member"]
    edited = staff.cycle.update_task("k-remote", place="东湖区", material="助餐点收支台账")
    assert (edited.place, edited.material) == ("东湖区", "助餐点收支台账")
    staff.cycle.add_speech("zhucan", "王建民", SPEECH, role="member", theme="补贴标准")
    minutes = staff.cycle.draft_minutes("zhucan")
    proposal_id = minutes.items[0].proposal_id
    staff.cycle.add_instruction("zhucan", "周明远市长", "请市民政局研究办理。", date="2025-07-05",
                                proposal_id=proposal_id)
    for status in ("交办", "办理中", "已采纳"):
        staff.cycle.set_status(proposal_id, "市民政局", status, date="2025-08-01")
    with pytest.raises(KBError, match="不能从“已采纳”改为“办理中”"):
        staff.cycle.set_status(proposal_id, "市民政局", "办理中")
    review = staff.cycle.add_review("zhucan", "补贴标准已提高。", date="2026-06-20", rating="较好")
    proposal = member.cycle.proposal(proposal_id)                     # members and experts read
    assert proposal.departments == {"市民政局": "已采纳"} and proposal.instructions[0].leader == "周明远市长"
    assert [r.review_id for r in expert.cycle.reviews("zhucan")] == [review.review_id]
    for attempt in (lambda: member.cycle.add_instruction("zhucan", "某领导", "同意。"),
                    lambda: expert.cycle.set_status(proposal_id, "市民政局", "已反馈"),
                    lambda: member.cycle.add_review("zhucan", "很好。"),
                    lambda: member.cycle.update_task("k-remote", title="改名"),
                    lambda: member.cycle.update_task("k-other", status="进行中")):
        with pytest.raises(PermissionDenied):
            attempt()
    assert member.cycle.update_task("k-remote", status="进行中").status == "进行中"   # their own task


def test_a_member_uploads_a_report_to_their_own_task(team, cycle_task, tmp_path):  # noqa: F811
    member, expert, staff = (client(team, t) for t in ("tok-member", "tok-expert", "tok-staff"))
    path = tmp_path / "社区助餐点调研报告.txt"
    path.write_text(REPORT, encoding="utf-8")
    task = member.cycle.attach_report("k-remote", path, date="2025-05-10")
    [report] = task.reports
    assert report.author == "demo-member" and report.date == "2025-05-10" and report.file_name == path.name
    doc = member.document(report.doc_id)
    assert doc.doc_type == "research" and "中央厨房" in doc.text
    assert any(h.doc_id == report.doc_id for h in member.search("助餐点运营补助 中央厨房", 5, doc_types=["research"]))
    assert any(link.kind == "research" and link.doc_id == report.doc_id for link in staff.topics.get("zhucan").links)
    with pytest.raises(PermissionDenied, match="别人的调研任务"):
        member.cycle.attach_report("k-other", path)
    with pytest.raises(PermissionDenied):
        expert.cycle.attach_report("k-remote", path)
    response = requests.post(team["url"] + "api/tasks/k-remote/reports", files={"file": ("x.exe", b"MZ")},
                             headers={"Authorization": "token tok-member"}, timeout=30)
    assert response.status_code == 400 and "格式不支持" in response.json()["error"]
    entry = staff.audit_log(action="task.attach")[0]
    assert (entry.user, entry.target_id) == ("demo-member", "k-remote")


def test_minutes_and_the_years_report_come_back_as_files(team, cycle_task, tmp_path):  # noqa: F811
    staff, member = client(team, "tok-staff"), client(team, "tok-member")
    if not staff.cycle.minutes_history("zhucan"):
        staff.cycle.add_speech("zhucan", "王建民", SPEECH, role="member")
        staff.cycle.draft_minutes("zhucan")
    minutes = member.cycle.export_minutes("zhucan", "docx", tmp_path / "纪要")
    assert minutes.path.parent == tmp_path / "纪要" and minutes.path.suffix == ".docx"
    assert minutes.path.stat().st_size > 5000
    report = member.cycle.export_report(2025, "html", tmp_path / "报告")
    html = report.path.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "推进老年助餐服务提质扩面" in html
    with pytest.raises(KBError, match="不能导出"):
        staff._request("POST", "api/cycle/exports", json={"what": "everything"})
    actions = {e.action for e in staff.audit_log(user="demo-member")}
    assert {"minutes.export", "report.export"} <= actions
