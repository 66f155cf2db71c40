"""Consultation topics: fields, the eight steps, links, import, roles, audit and the CLI."""
import json

import pytest

from kb.cli import main
from kb.errors import DocumentNotFound, PermissionDenied, TopicNotFound
from kb.knowledge_base import KnowledgeBase
from kb.topics import STEPS, InvalidTopic, normalise_format, parse_step


@pytest.fixture
def kb(kb_home, mini_corpus, embedder):
    base = KnowledgeBase(kb_home, embedder=embedder, user="王静", role="staff")
    base.index([mini_corpus])
    return base


def test_add_then_find_by_id_or_exact_title(kb):
    topic = kb.topics.add("社区老年助餐补贴标准", format="双月座谈会", year="2025年", lead="社会和法制委员会",
                          sectors="社会福利和社会保障界、医药卫生界", keywords=["助餐", "补贴", "助餐"],
                          description="围绕补贴标准开展协商。", step="实施调研计划", topic_id="zhucan-2025")
    assert topic.format == "双月座谈" and topic.year == 2025 and topic.step == 3
    assert topic.sectors == ["社会福利和社会保障界", "医药卫生界"] and topic.keywords == ["助餐", "补贴"]
    assert kb.topics.get("zhucan-2025").title == "社区老年助餐补贴标准"
    assert kb.topics.get("社区老年助餐补贴标准").topic_id == "zhucan-2025"
    assert [t.topic_id for t in kb.topics.list()] == ["zhucan-2025"]
    assert kb.topics.list(year=2024) == []


def test_generated_id_and_duplicate_title(kb):
    topic = kb.topics.add("茶产业品牌建设")
    assert topic.topic_id.startswith("t-") and topic.format == "其他" and topic.step == 1
    with pytest.raises(InvalidTopic, match="议题已存在"):
        kb.topics.add("茶产业品牌建设")


def test_unknown_topic_names_the_ones_that_exist(kb):
    kb.topics.add("茶产业品牌建设", topic_id="tea")
    with pytest.raises(TopicNotFound) as err:
        kb.topics.get("茶产业")
    assert "tea（茶产业品牌建设）" in err.value.user_message()
    with pytest.raises(TopicNotFound, match="没有议题"):
        kb.topics.get("")


@pytest.mark.parametrize("field, value, message", [
    ("format", "茶话会", "未知协商形式"), ("step", 9, "未知工作步骤"), ("year", "明年", "不是年份"),
    ("year", 1800, "超出范围"), ("title", "  ", "标题为空"), ("step_dates", {1: "昨天"}, "无法识别")])
def test_bad_values_are_refused_with_a_reason(kb, field, value, message):
    kwargs = {"title": "议题", field: value} if field != "title" else {"title": value}
    with pytest.raises(InvalidTopic, match=message):
        kb.topics.add(**kwargs)


def test_format_and_step_names():
    assert normalise_format("面对面") == "面对面协商" and normalise_format("plenary") == "全体会议"
    assert parse_step("8") == 8 and parse_step("报送协商纪要") == 7 and parse_step("调研") == 3
    assert len(STEPS) == 8


def test_edit_records_changes_and_step_dates_in_the_audit_log(kb):
    kb.topics.add("茶产业品牌建设", topic_id="tea", step=1)
    topic = kb.topics.edit("tea", keywords="品牌，茶旅融合", lead="农业和农村委员会")
    assert topic.keywords == ["品牌", "茶旅融合"]
    topic = kb.topics.set_step("tea", "制定工作方案", date="2025年3月2日")
    assert topic.step == 2 and topic.step_dates == {2: "2025-03-02"}
    topic = kb.topics.edit("tea", step=3)
    assert 3 in topic.step_dates  # moving on records the day
    log = kb.audit_log(target_type="topic", target_id="tea")
    assert [e.action for e in log][:2] == ["topic.edit", "topic.edit"] and log[-1].action == "topic.add"
    assert log[-2].detail["changes"]["keywords"] == [[], ["品牌", "茶旅融合"]]
    before = len(kb.audit_log(target_type="topic"))
    kb.topics.edit("tea", lead="农业和农村委员会")  # nothing changes, nothing is logged
    assert len(kb.audit_log(target_type="topic")) == before
    with pytest.raises(InvalidTopic, match="不能修改字段"):
        kb.topics.edit("tea", topic_id="x")


def test_links_to_minutes_instructions_and_follow_up(kb):
    kb.topics.add("社区助餐", topic_id="zc")
    doc_id = kb.search("助餐补贴", top_k=1)[0].doc_id
    link = kb.topics.link("zc", "minutes", doc_id=doc_id)
    assert link.kind == "consultation" and link.title == "青溪市社区助餐服务办法" and link.date == "2023-06-12"
    kb.topics.link("zc", "批示", text="请市民政局认真研究办理。", author="周明远", date="2023-10-08")
    kb.topics.link("zc", "followup", text="一年后回头看：补贴已提高。", date="2024-09-01")
    topic = kb.topics.get("zc")
    assert [l.kind for l in topic.links] == ["consultation", "instruction", "followup"]
    assert topic.links_of("instruction")[0].author == "周明远"
    kb.topics.unlink("zc", link.link_id)
    assert len(kb.topics.get("zc").links) == 2
    with pytest.raises(DocumentNotFound):
        kb.topics.link("zc", "consultation", doc_id="nope")
    with pytest.raises(InvalidTopic, match="未知关联类型"):
        kb.topics.link("zc", "memo", text="x")
    with pytest.raises(InvalidTopic, match="没有编号"):
        kb.topics.unlink("zc", 999)


def test_only_staff_manage_topics(kb_home, kb):
    kb.topics.add("社区助餐", topic_id="zc")
    member = KnowledgeBase(kb_home, embedder=kb.embedder, user="李委员", role="member")
    assert member.topics.get("zc").title == "社区助餐"  # reading is fine
    with pytest.raises(PermissionDenied, match="不能管理协商议题"):
        member.topics.add("另一个议题")
    with pytest.raises(PermissionDenied):
        member.topics.edit("zc", year=2025)


TOPICS_YAML = """
topics:
  - id: zhucan
    title: 社区老年助餐补贴
    format: 双月座谈会
    year: 2025
    lead: 社会和法制委员会
    keywords: [助餐, 补贴]
    description: >-
      围绕补贴标准，
      协商助餐点运营问题。
    current_step: 3
    folder: 老年助餐/
    earlier_consultations: [青溪市社区助餐服务办法, 没有收录的纪要]
  - title: 茶产业品牌
    format: 面对面协商
"""


def test_import_is_idempotent_and_links_earlier_consultations(kb, tmp_path):
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML, encoding="utf-8")
    first = kb.topics.import_yaml(path)
    assert len(first.added) == 2 and first.unresolved == ["没有收录的纪要"]
    topic = kb.topics.get("zhucan")
    assert topic.description == "围绕补贴标准，协商助餐点运营问题。" and topic.extra["folder"] == "老年助餐/"
    assert [l.title for l in topic.links] == ["青溪市社区助餐服务办法"]
    audit_before = len(kb.audit_log())
    second = kb.topics.import_yaml(path)
    assert second.added == [] and second.updated == [] and len(second.unchanged) == 2
    assert len(kb.topics.get("zhucan").links) == 1 and len(kb.audit_log()) == audit_before
    path.write_text(TOPICS_YAML.replace("year: 2025", "year: 2026"), encoding="utf-8")
    assert kb.topics.import_yaml(path).updated == ["zhucan"]


def test_import_errors_name_the_file(kb, tmp_path):
    with pytest.raises(InvalidTopic, match="找不到议题文件"):
        kb.topics.import_yaml(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: [ {title: x", encoding="utf-8")
    with pytest.raises(InvalidTopic, match="格式错误"):
        kb.topics.import_yaml(bad)
    bad.write_text("topics:\n  - format: 其他\n", encoding="utf-8")
    with pytest.raises(InvalidTopic, match="第 1 条没有标题"):
        kb.topics.import_yaml(bad)


def test_cli_topic_commands(kb, kb_home, tmp_path, capsys):
    home = ["--home", str(kb_home), "--user", "王静", "--role", "staff"]
    assert main(["topic", "add", "社区老年助餐补贴", "--id", "zc", "--format", "双月座谈", "--year", "2025",
                 "--keywords", "助餐、补贴", "--step", "2", *home]) == 0
    assert "已添加议题 zc" in capsys.readouterr().out
    assert main(["topic", "edit", "zc", "--step", "3", "--step-date", "2025-04-01", "--json", *home]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["step"] == 3 and data["step_name"] == "实施调研计划" and data["step_dates"]["3"] == "2025-04-01"
    assert main(["topic", "list", "--json", *home]) == 0
    assert [t["topic_id"] for t in json.loads(capsys.readouterr().out)] == ["zc"]
    assert main(["topic", "show", "社区老年助餐补贴", *home]) == 0
    out = capsys.readouterr().out
    assert "▶ 3. 实施调研计划  2025-04-01" in out and "✓ 2. 制定工作方案" in out
    code = main(["topic", "show", "不存在", *home])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("错误：没有议题") and len(err.strip().splitlines()) == 1
    path = tmp_path / "topics.yaml"
    path.write_text(TOPICS_YAML.replace("id: zhucan", "id: zc").replace("title: 社区老年助餐补贴", "title: 社区老年助餐补贴"),
                    encoding="utf-8")
    assert main(["topic", "import", str(path), "--json", *home]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == [report["added"][0]] and "zc" in report["updated"]
    code = main(["topic", "add", "x", "--home", str(kb_home), "--role", "member", "--user", "李"])
    assert code == 2 and "不能管理协商议题" in capsys.readouterr().err
