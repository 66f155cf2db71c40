"""The lay-to-official thesaurus (kb/thesaurus.py, kb/data/thesaurus/): its data, merging a
knowledge base's own entries, query plans, finding official passages for lay questions, and
editing entries from the CLI and the 文档管理 panel."""
from pathlib import Path

import pytest

from kb import thesaurus
from kb.knowledge_base import KnowledgeBase
from kb.search import THESAURUS_MIN_SHARE, THESAURUS_WEIGHT, Searcher, make_plan
from kb.widgets.indexing_panel import IndexingPanel
from kb.widgets.thesaurus_panel import ThesaurusPanel

from .conftest import run_cli

CITY_RULES = """青溪市市容和环境卫生管理条例
发文机关：青溪市人民代表大会常务委员会
第一条 为了加强市容管理，营造整洁、优美的城市环境，制定本条例。
第二条 任何单位和个人不得在城市道路、桥梁、广场等公共场所占道经营、堆放物品。
第三条 城市管理综合执法部门负责查处占道经营行为，并在七个工作日内答复举报人。
"""
WAGE_RULES = """青溪市保障农民工工资支付实施办法
第一条 用人单位拖欠工资的，由人力资源社会保障部门的劳动保障监察机构责令限期支付劳动报酬。
第二条 劳动者可以拨打热线或者到劳动保障监察机构投诉。
"""


def raw_lines(path: Path) -> list[tuple[str, list[str]]]:
    return [parsed for line in path.read_text(encoding="utf-8").splitlines()
            if (parsed := thesaurus.parse_line(line)) is not None]


# -- the built-in data ---------------------------------------------------------
def test_builtin_thesaurus_is_broad_and_well_formed():
    table = thesaurus.load()
    assert len(table) >= 1500
    by_field = table.by_field()
    assert set(thesaurus.FIELDS) <= set(by_field)
    assert all(len(by_field[key]) >= 80 for key in thesaurus.FIELDS)
    for key in thesaurus.FIELDS:
        path = thesaurus.DATA_DIR / f"{key}.tsv"
        lines = raw_lines(path)
        lays = [lay for lay, _ in lines]
        assert len(lays) == len(set(lays)), f"duplicate lay expression in {path.name}"
        assert all(terms for _, terms in lines), f"empty official side in {path.name}"
        assert all(lay not in terms for lay, terms in lines), f"a lay expression that is its own official term in {path.name}"
        assert "\t" in path.read_text(encoding="utf-8").split("\n# 格式")[-1], path.name


def test_package_data_ships_the_thesaurus():
    pyproject = (Path(thesaurus.__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert "data/thesaurus/*.tsv" in pyproject


def test_matching_is_by_substring_longest_first():
    table = thesaurus.Thesaurus([thesaurus.Entry("烂尾", ("停工",), "housing"),
                                 thesaurus.Entry("楼盘烂尾", ("商品房", "逾期交付"), "housing"),
                                 thesaurus.Entry("摆摊", ("占道经营",), "business")])
    matched, terms = table.expand("我家楼盘烂尾了，门口还有人摆 摊！")
    assert [e.lay for e in matched] == ["楼盘烂尾", "摆摊"]
    assert terms == ["商品房", "逾期交付", "占道经营"]
    assert table.expand("占道经营 商品房 逾期交付") == ([], [])


def test_examples_from_the_issue_expand():
    table = thesaurus.load()
    for lay, official in [("门口摆摊", "占道经营"), ("拖着不办", "办理时限"), ("楼盘烂尾", "保交楼"),
                          ("老板欠薪", "劳动保障监察"), ("外卖小哥", "网约配送员"), ("告政府", "行政诉讼"),
                          ("哪个部门管", "主管部门")]:
        assert official in table.expand(f"{lay}怎么办")[1], lay


# -- a knowledge base's own entries ------------------------------------------------
def test_own_entries_merge_over_the_builtin_ones(tmp_path):
    (tmp_path / "thesaurus.tsv").write_text(
        "# 本地词条\n门口摆摊\t夜市管理 临时摊点\n茶山补助\t茶园 补贴  # 本地说法\n外卖小哥\t-\n", encoding="utf-8")
    table = thesaurus.load(tmp_path)
    assert table.get("门口摆摊").terms == ("夜市管理", "临时摊点") and table.get("门口摆摊").field == "own"
    assert table.expand("茶山补助怎么领")[1] == ["茶园", "补贴"]
    assert "外卖小哥" not in table and "外卖小哥" in table.switched_off
    assert table.expand("外卖小哥被撞了") == ([], []) or "网约配送员" not in table.expand("外卖小哥被撞了")[1]
    assert len(table) == len(thesaurus.load()) + 1 - 1  # one new, one switched off


def test_a_bad_line_names_the_file_and_line(tmp_path):
    (tmp_path / "thesaurus.tsv").write_text("好词\t规范用语\n坏词\n", encoding="utf-8")
    with pytest.raises(thesaurus.InvalidThesaurusEntry, match="第 2 行"):
        thesaurus.load(tmp_path)


# -- search --------------------------------------------------------------------
@pytest.fixture
def kb(tmp_path, kb_home, embedder, mini_corpus):
    (mini_corpus / "市容条例.txt").write_text(CITY_RULES, encoding="utf-8")
    (mini_corpus / "工资办法.txt").write_text(WAGE_RULES, encoding="utf-8")
    base = KnowledgeBase(kb_home, embedder=embedder, user="王晓明", role="staff")
    base.index([mini_corpus])
    yield base
    base.close()


def test_a_lay_query_gets_official_terms_at_a_lower_weight(kb):
    plan = kb.searcher.plan("老板欠薪三个月，该向哪个部门反映？")
    assert "老板欠薪" in plan.lay_matches
    assert {"拖欠工资", "劳动报酬", "劳动保障监察"} <= set(plan.official_terms)
    assert 0 < plan.official_weight == THESAURUS_WEIGHT < 1
    assert plan.official_tokens and "拖欠工资" in plan.official_tokens
    assert plan.dense_text() == plan.text  # the dense side embeds the question as asked (measured)
    assert "拖欠工资" in plan.dense_text("append")
    scores, _ = kb.searcher.keyword_scores(plan)
    own, _ = kb.searcher.keyword_index.scores(plan.keyword_tokens, plan.expansion)
    official, _ = kb.searcher.keyword_index.scores(plan.official_tokens)
    assert scores == pytest.approx(own + THESAURUS_WEIGHT * official)


def test_a_lay_phrase_lost_in_a_long_story_is_listed_but_not_used(kb):
    story = ("我们家对面那片地原来是菜市场，后来拆了说要建学校，结果三年过去了什么也没建，"
             "现在堆满了建筑垃圾，晚上还有人门口摆摊，到底谁来管管")
    plan = kb.searcher.plan(story)
    assert "门口摆摊" in plan.lay_matches and plan.lay_share < THESAURUS_MIN_SHARE
    assert plan.official_weight == 0
    scores, _ = kb.searcher.keyword_scores(plan)
    assert scores == pytest.approx(kb.searcher.keyword_index.scores(plan.keyword_tokens, plan.expansion)[0])


def test_an_official_query_is_unchanged(kb):
    plan = kb.searcher.plan("占道经营 市容管理")
    bare = make_plan("占道经营 市容管理", kb.tokenizer, None)
    assert plan.lay_matches == [] and plan.official_terms == [] and plan.official_tokens == []
    assert plan.keyword_tokens == bare.keyword_tokens and plan.dense_text() == "占道经营 市容管理"


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_a_lay_question_finds_the_official_passage(kb, mode):
    hits = kb.search("门口摆摊", mode=mode)
    assert hits and hits[0].title == "青溪市市容和环境卫生管理条例"
    assert {"占道经营", "市容管理"} & set(hits[0].matched_terms)  # found through the official terms
    hits = kb.search("老板欠薪", mode=mode)
    assert hits and hits[0].title == "青溪市保障农民工工资支付实施办法"


def test_without_the_thesaurus_the_lay_question_misses(kb):
    bare = Searcher(kb.store, kb.embedder, kb.tokenizer, expand=False)
    hits = bare.search("门口摆摊", mode="keyword")
    assert not hits or hits[0].title != "青溪市市容和环境卫生管理条例"


def test_a_staff_entry_counts_from_the_next_search(kb):
    assert kb.searcher.plan("茶山补助").official_terms == []
    thesaurus.add_entry(kb.home, kb.db, kb.user, "茶山补助", "茶园 白茶")
    assert kb.searcher.plan("茶山补助").official_terms == ["茶园", "白茶"]


# -- editing: CLI and panel -----------------------------------------------------------
def test_cli_adds_lists_shows_and_removes_entries(kb, capsys):
    home = str(kb.home)
    staff = ["--home", home, "--user", "王晓明", "--role", "staff"]
    code, out, _ = run_cli(capsys, "thesaurus", "add", "门前摆摊", "占道经营", "市容管理", *staff)
    assert code == 0 and "门前摆摊" in out
    assert "门前摆摊\t占道经营 市容管理" in (kb.home / "thesaurus.tsv").read_text(encoding="utf-8")
    code, out, _ = run_cli(capsys, "thesaurus", "list", *staff)
    assert code == 0 and "门前摆摊 → 占道经营 市容管理" in out and "养老服务" in out
    code, out, _ = run_cli(capsys, "thesaurus", "show", "门前摆摊", "有人管吗", *staff)
    assert code == 0 and "门前摆摊" in out and "占道经营" in out
    code, out, _ = run_cli(capsys, "thesaurus", "show", "占道经营", *staff)
    assert "不扩展" in out
    code, out, err = run_cli(capsys, "thesaurus", "add", "门前摆摊", "占道经营", "--home", home, "--user", "李委员",
                             "--role", "member")
    assert code == 2 and "委员" in err
    code, out, _ = run_cli(capsys, "thesaurus", "remove", "门前摆摊", *staff)
    assert code == 0 and "门前摆摊" not in (kb.home / "thesaurus.tsv").read_text(encoding="utf-8")
    code, _, err = run_cli(capsys, "thesaurus", "remove", "楼盘烂尾", *staff)
    assert code == 2 and "内置词条" in err
    actions = [(e.action, e.target_id, e.detail["op"]) for e in kb.audit_log(action="thesaurus.edit")]
    assert ("thesaurus.edit", "门前摆摊", "add") in actions and ("thesaurus.edit", "门前摆摊", "remove") in actions


def test_panel_adds_and_removes_entries(kb):
    panel = ThesaurusPanel(kb)
    panel.lay_box.value, panel.terms_box.value = "茶山补助", "茶园  白茶"
    panel.add_button.click()
    assert panel.status_kind == "success"
    assert panel.entries == [{"lay": "茶山补助", "terms": ["茶园", "白茶"], "field": "own", "field_label": "本知识库"}]
    panel.query_box.value = "茶山补助有多少"
    panel.preview_button.click()
    assert panel.preview == "茶山补助 → 茶园 白茶"
    panel.lay_box.value, panel.terms_box.value = "空说法", ""
    panel.add_button.click()
    assert panel.status_kind == "error" and "规范用语" in panel.status
    panel.remove_choice.value = "茶山补助"
    panel.remove_button.click()
    assert panel.entries == [] and not (kb.home / "thesaurus.tsv").read_text(encoding="utf-8").count("茶山补助")
    assert [e.detail["op"] for e in kb.audit_log(action="thesaurus.edit")] == ["remove", "add"]


def test_the_panel_is_shown_to_staff_only(kb):
    assert isinstance(IndexingPanel(kb).thesaurus_panel, ThesaurusPanel)
    member = KnowledgeBase(kb.home, embedder=kb.embedder, user="李委员", role="member")
    try:
        assert IndexingPanel(member).thesaurus_panel is None
    finally:
        member.close()
