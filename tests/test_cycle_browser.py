"""The 协商工作台's forms (kb.widgets.cycle_panels) in a real browser: Voila on 127.0.0.1 with the
sample cycle, headless Chromium driven by Playwright, 1280 px wide.

Staff add a research task, record a leader's instruction on a proposal, move a department's
handling on and record a 回头看; then a member on the new task sees it under 我的调研任务 and
attaches a 调研报告 through the file picker, and sees it listed on the task. Each step is checked
on the page and, at the end, in the database. Screenshots (cycle_*.png) go where
tests/test_browser.py puts its own (KB_SCREENSHOT_DIR=docs/screenshots refreshes the docs').
"""
from __future__ import annotations

import pytest

from kb.knowledge_base import KnowledgeBase

from .conftest import REPO

pytestmark = pytest.mark.slow

TOPIC = "laonian-zhucan-2025"
TASK = "赴东湖区城市助餐点回访"
MEMBER = "钱志远"
INSTRUCTION = "请市民政局会同市财政局研究农村助餐点保底补助办法，年底前报市政府。"
FINDINGS = "农村助餐点保底补助已纳入2026年预算，东湖区、南塘县先行试点。"
REPORT = """东湖区城市助餐点回访调研报告
【示例材料】本文为测试编写，内容虚构。

一、基本情况
回访东湖区城市助餐点九个，其中七个已接入“青溪助餐”平台，刷卡就餐、自动结算运行平稳。

二、存在问题
部分助餐点午餐高峰排队时间较长，独居老人送餐预约仍需电话登记。

三、对策建议
建议在平台上增加送餐预约功能，对高峰时段排队较长的助餐点增设取餐窗口。
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from .test_browser import serving_sample_app

    home = tmp_path_factory.mktemp("cycle-forms") / "kb_data"
    with serving_sample_app(home, lambda kb: kb.cycle.import_yaml(REPO / "corpus" / "topics.yaml")) as (url, model):
        yield url, home, model


def _dropdown(page, label: str):
    """The visible <select> of the ipywidgets Dropdown described as `label`."""
    return page.locator(".widget-dropdown:visible", has=page.locator("label", has_text=label)).locator("select")


def _log_in(page, url: str, name: str, role_label: str | None = None) -> None:
    from .test_browser import LONG, tab

    page.goto(url, timeout=LONG)
    page.wait_for_selector("text=请选择身份", timeout=LONG)
    page.fill("input[placeholder^='请输入姓名']", name)
    if role_label:
        page.locator(".widget-toggle-button", has_text=role_label).click()
    page.locator("button", has_text="进入").click()
    page.wait_for_selector("text=检索资料")
    tab(page, "协商工作台")
    page.wait_for_selector("text=议题的工作计划与成果", timeout=LONG)


def _scroll_to(page, text: str) -> None:
    page.locator(".xs-section-head:visible", has_text=text).first.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -10)")


def _no_error(page) -> None:
    body = page.inner_text("body")
    assert "Traceback" not in body and "程序出现意外错误" not in body
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280   # nothing beyond the window


@pytest.mark.slow
def test_staff_forms_and_a_members_report_in_the_browser(served, tmp_path):
    from .test_browser import CLIPPED_JS, LONG, offline_page, shot

    url, home, model = served
    report_file = tmp_path / "东湖区城市助餐点回访调研报告.txt"
    report_file.write_text(REPORT, encoding="utf-8")
    with offline_page(tmp_path / "profile", {"width": 1280, "height": 1000}) as page:
        try:
            # -- staff: a new research task ----------------------------------------------------
            _log_in(page, url, "王晓明")
            page.wait_for_selector("text=调研任务（新增或修改）")
            page.fill("input[placeholder^='任务名称']", TASK)
            page.fill("input[placeholder='地点']", "东湖区")
            page.fill("input[placeholder^='日期，如']", "2025-05-20")
            page.fill("input[placeholder^='参加委员']", f"{MEMBER}、孙丽")
            page.fill("input[placeholder='负责人']", MEMBER)
            page.fill("input[placeholder='要收集的资料']", "平台结算数据、送餐预约记录")
            page.locator("button", has_text="保存调研任务").click()
            page.wait_for_selector(f"text=已添加调研任务：实地调研·{TASK}")
            assert page.locator(".xs-table", has_text=TASK).count() >= 1      # in the topic's task table
            page.locator(".xs-section-head", has_text="调研任务（新增或修改）").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -10)")
            assert page.evaluate(CLIPPED_JS, [".widget-text input", ".widget-dropdown select"]) == []
            shot(page, "cycle_task_form")

            # -- staff: a leader's instruction on the first proposal, and a 回头看 --------------
            _dropdown(page, "对象").select_option(index=1)
            page.fill("input[placeholder^='批示领导']", "周明远市长")
            page.fill("input[placeholder='批示日期']", "2025-07-05")
            page.fill("textarea[placeholder^='批示内容']", INSTRUCTION)
            page.locator("button", has_text="登记批示").click()
            page.wait_for_selector("text=已登记 周明远市长 对一条建议的批示")
            page.wait_for_selector(f"text=周明远市长：{INSTRUCTION}")      # in the proposals' table
            page.fill("input[placeholder='回头看日期']", "2026-06-20")
            page.fill("input[placeholder='回头看人员或单位']", "社会和法制委员会")
            page.locator("select", has=page.locator("option", has_text="较好")).select_option("较好")
            page.fill("textarea[placeholder^='回头看发现']", FINDINGS)
            page.fill("input[placeholder^='后续安排']", "2026年底再回头看试点成效")
            page.locator("button", has_text="登记回头看").click()
            page.wait_for_selector("text=已登记回头看（较好）")
            page.wait_for_selector(f"text={FINDINGS}")                          # in 批示与回头看
            page.locator(".xs-section-head", has_text="领导批示").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -10)")
            shot(page, "cycle_outcomes")

            # -- staff: a department's handling, 交办 then 办理中 -------------------------------
            _dropdown(page, "建议").select_option(index=0)
            page.fill("input[placeholder^='部门，如']", "市农业农村局")
            page.wait_for_selector("text=市农业农村局：现为“未交办”，下一步可以是 交办")
            page.locator("select", has=page.locator("option", has_text="办理中")).first.select_option("交办")
            page.locator("button", has_text="保存办理状态").click()
            page.wait_for_selector("text=市农业农村局：交办")
            page.wait_for_selector("text=市农业农村局：现为“交办”，下一步可以是 办理中")
            page.locator("select", has=page.locator("option", has_text="办理中")).first.select_option("办理中")
            page.fill("input[placeholder^='日期、答复']", "2025-08-01 已列入部门工作计划")
            page.locator("button", has_text="保存办理状态").click()
            # the result at the top and again beside the row pressed
            saved = page.locator(".xs-status:visible", has_text="市农业农村局：办理中（这条建议现为")
            saved.nth(1).wait_for()
            assert saved.count() == 2
            page.locator(".xs-section-head", has_text="议题的工作计划与成果").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -10)")
            shot(page, "cycle_status")
            _no_error(page)

            # -- a member on the new task: my tasks, the file picker, the report listed -----------
            _log_in(page, url, MEMBER, "委员")
            page.wait_for_selector("text=我的调研任务")
            mine = page.locator(".xs-table:visible", has_text=TASK)
            assert mine.count() >= 1
            for label in ("保存调研任务", "登记批示", "登记回头看", "保存办理状态"):
                assert page.locator(f"button:visible:has-text('{label}')").count() == 0, label
            _dropdown(page, "任务").last.select_option(label=f"实地调研·{TASK}（待办）")
            with page.expect_file_chooser() as chooser:   # the FileUpload's own file input
                page.locator("button.widget-upload:visible", has_text="选择报告文件").click()
            chooser.value.set_files(str(report_file))
            page.wait_for_selector(f"text=已选择：{report_file.name}")
            page.locator("button", has_text="上传调研报告").click()
            page.wait_for_selector("text=已索引为“调研报告”并关联到议题", timeout=LONG)
            listing = page.locator("li", has_text="东湖区城市助餐点回访调研报告")
            listing.first.wait_for()
            assert MEMBER in listing.first.inner_text() and report_file.name in listing.first.inner_text()
            assert page.locator(".xs-table:visible", has_text="《东湖区城市助餐点回访调研报告》").count() >= 1
            page.locator(".xs-section-head", has_text="上传调研报告").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -220)")
            shot(page, "cycle_task_report")
            _no_error(page)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print("page at failure:", tmp_path / "failure.png", page.inner_text("body")[:3000])
            raise

    # -- what the database holds ------------------------------------------------------------------
    kb = KnowledgeBase(home, model=model, user="测试员", role="staff")
    try:
        task = next(t for t in kb.cycle.plan(TOPIC).tasks if t.title == TASK)
        assert (task.members, task.assignee, task.place, task.date) == ([MEMBER, "孙丽"], MEMBER, "东湖区", "2025-05-20")
        [report] = task.reports
        assert report.author == MEMBER and report.file_name == report_file.name
        doc = kb.document(report.doc_id)
        assert doc.doc_type == "research" and "取餐窗口" in doc.text
        assert kb.audit_log(action="task.attach")[0].user == MEMBER
        first = kb.cycle.proposals(TOPIC)[0]
        assert [(i.leader, i.date, i.text) for i in first.instructions if i.leader == "周明远市长"] \
            == [("周明远市长", "2025-07-05", INSTRUCTION)]
        assert first.departments["市农业农村局"] == "办理中"
        assert [h.reply for h in first.handling if h.department == "市农业农村局"][-1] == "已列入部门工作计划"
        review = next(r for r in kb.cycle.reviews(TOPIC) if r.findings == FINDINGS)
        assert (review.date, review.rating, review.reviewer) == ("2026-06-20", "较好", "社会和法制委员会")
    finally:
        kb.close()
