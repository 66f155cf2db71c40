"""The `kb` command line: output shapes, exit codes and one-line errors."""
import json
import subprocess
import sys

import pytest


from .conftest import REPO, run_cli as run


@pytest.fixture
def indexed(kb_home, mini_corpus, capsys):
    code, _, _ = run(capsys, "index", str(mini_corpus), "--home", str(kb_home), "--quiet")
    assert code == 0
    return kb_home


def test_index_then_nothing_to_embed(indexed, mini_corpus, capsys):
    code, out, _ = run(capsys, "index", str(mini_corpus), "--home", str(indexed), "--json")
    report = json.loads(out)
    assert code == 0 and report["chunks_embedded"] == 0 and report["unchanged"] == 3
    code, out, _ = run(capsys, "index", str(mini_corpus), "--home", str(indexed), "--quiet")
    assert "nothing to embed" in out


def test_search_json_hits_carry_citations(indexed, capsys):
    code, out, _ = run(capsys, "search", "助餐补贴", "--home", str(indexed), "--json", "--top", "3")
    hits = json.loads(out)
    assert code == 0 and hits
    top = hits[0]
    for key in ("doc_id", "title", "doc_type", "score", "text", "page", "label", "start", "end", "citation"):
        assert key in top
    assert top["title"] == "青溪市社区助餐服务办法"
    assert "青政发〔2023〕15号" in top["citation"] and top["label"] in top["citation"]


def test_search_type_filter(indexed, capsys):
    _, out, _ = run(capsys, "search", "茶产业 品牌", "--home", str(indexed), "--json", "--type", "speech")
    assert {h["doc_type"] for h in json.loads(out)} == {"speech"}


def test_text_output_names_source_and_offsets(indexed, capsys):
    code, out, _ = run(capsys, "search", "多式联运", "--home", str(indexed))
    assert code == 0 and "南塘港公铁水联运模式" in out and "出处：" in out


def test_empty_query_is_one_clear_line(indexed, capsys):
    code, out, err = run(capsys, "search", "   ", "--home", str(indexed))
    assert code == 2 and err.startswith("错误：检索词为空") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_search_before_index_says_what_to_do(kb_home, capsys):
    code, _, err = run(capsys, "search", "助餐", "--home", str(kb_home))
    assert code == 2 and "还没有索引" in err and "kb index" in err


def test_info_and_show(indexed, capsys):
    code, out, _ = run(capsys, "info", "--home", str(indexed), "--json")
    info = json.loads(out)
    assert info["documents"] == 3 and info["model"] == "hashing:64" and info["index_size_mb"] > 0
    _, out, _ = run(capsys, "search", "助餐", "--home", str(indexed), "--json", "--top", "1")
    doc_id = json.loads(out)[0]["doc_id"]
    code, out, _ = run(capsys, "show", doc_id, "--home", str(indexed))
    assert code == 0 and "文号：青政发〔2023〕15号" in out and "第四条" in out
    code, out, _ = run(capsys, "show", doc_id, "--home", str(indexed), "--json")
    assert json.loads(out)["doc_number"] == "青政发〔2023〕15号"
    code, _, err = run(capsys, "show", "nope", "--home", str(indexed))
    assert code == 2 and "没有编号为 nope 的文档" in err


def test_skipped_files_set_the_exit_status(kb_home, mini_corpus, capsys):
    (mini_corpus / "坏文件.docx").write_bytes(b"broken")
    code, out, err = run(capsys, "index", str(mini_corpus), "--home", str(kb_home), "--quiet")
    assert code == 1
    assert "跳过：" in err and "坏文件.docx" in err and "Word 文件损坏" in err
    assert "Traceback" not in err


def test_member_may_not_index(kb_home, mini_corpus, capsys):
    code, _, err = run(capsys, "index", str(mini_corpus), "--home", str(kb_home), "--role", "member", "--user", "张委员")
    assert code == 2 and "委员" in err and "不能添加或更新文档" in err


def test_console_script_runs_as_a_process(indexed):
    proc = subprocess.run([sys.executable, "-m", "kb.cli", "info", "--home", str(indexed), "--json"],
                          capture_output=True, text=True, cwd=REPO, env={"KB_MODEL": "hashing:64", "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["documents"] == 3


def test_index_upgrades_an_older_knowledge_base_with_sentence_vectors(indexed, mini_corpus, capsys):
    import sqlite3
    conn = sqlite3.connect(indexed / "kb.sqlite")
    conn.execute("UPDATE chunks SET sentences=NULL, sentence_vectors=NULL")  # as if made before they existed
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "index", str(mini_corpus), "--home", str(indexed))
    assert code == 0 and "补算了句向量" in out and "nothing to embed" not in out
    code, out, _ = run(capsys, "index", str(mini_corpus), "--home", str(indexed), "--json")
    assert json.loads(out)["sentences_filled"] == 0


def test_text_output_quotes_the_sentence_that_answers(indexed, capsys):
    code, out, _ = run(capsys, "search", "全市茶园面积稳定在多少万亩", "--home", str(indexed))
    assert code == 0 and "最贴切的一句：过去三年，全市茶园面积稳定在十二万亩，茶叶产值突破四十亿元。" in out


# -- usage: words, Chinese errors, Chinese type names, checked values -----------------------
def one_chinese_line(err: str) -> bool:
    lines = err.strip().splitlines()
    english = ("usage", "error:", "invalid", "required", "unrecognized", "expected", "choose from")
    return (len(lines) == 1 and lines[0].startswith("错误：") and "Traceback" not in err
            and not any(word in err for word in english))


def test_search_words_need_no_quotes(indexed, capsys):
    code, joined, err = run(capsys, "search", "助餐", "补贴", "--home", str(indexed), "--json")
    assert code == 0, err
    _, quoted, _ = run(capsys, "search", "助餐 补贴", "--home", str(indexed), "--json")
    assert json.loads(joined) == json.loads(quoted) and json.loads(joined)


@pytest.mark.parametrize("argv", [
    ["search"],                                  # the following arguments are required
    ["search", "助餐", "--type", "nope"],         # invalid choice
    ["search", "助餐", "--frobnicate"],           # unrecognized arguments
    ["info", "--bogus", "x"],
    ["search", "助餐", "--top"],                  # expected one argument
    ["search", "助餐", "--top", "abc"],           # invalid int value
    ["search", "助餐", "--mode", "fuzzy"],
    ["serach", "助餐"],                           # an unknown command
    ["note", "add", "d1", "--text", "x"],        # --stance is required
])
def test_usage_errors_are_one_chinese_line(kb_home, capsys, argv):
    code, out, err = run(capsys, *argv, "--home", str(kb_home))
    assert code == 2 and out == ""
    assert one_chinese_line(err), err


def test_an_unknown_command_suggests_the_close_one(capsys):
    code, _, err = run(capsys, "serach", "助餐")
    assert code == 2 and "kb search" in err


def listed_commands(text: str) -> set[str]:
    return {word for line in text.splitlines() if line.startswith("  ") for word in line.split()[:3]}


def test_kb_alone_prints_chinese_help_with_the_commands(capsys):
    code, out, err = run(capsys)
    assert code == 2 and out == "" and "用法" in err and "usage" not in err
    assert {"index", "search", "documents", "docs", "show", "init", "topic", "pack", "note"} <= listed_commands(err)
    code, out, err = run(capsys, "note")  # a command group without its sub-command
    assert code == 2 and out == "" and {"add", "reply", "list", "export"} <= listed_commands(err)


def test_help_still_exits_zero(capsys):
    code, out, _ = run(capsys, "search", "--help")
    assert code == 0 and "--date-from" in out


@pytest.mark.parametrize("label, key", [("政策法规", "policy"), ("领导讲话", "speech"), ("案例模式", "case"),
                                        ("专家论证", "expert"), ("协商纪要", "minutes"), ("其他", "other")])
def test_type_takes_chinese_names(label, key):
    from kb.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["search", "x", "--type", label]).type == [key]
    assert parser.parse_args(["search", "x", "--type", key]).type == [key]
    assert parser.parse_args(["documents", "--type", label]).type == key
    assert parser.parse_args(["pack", "add", "t", "--search", "x", "--type", label]).type == [key]


def test_search_with_a_chinese_type_name(indexed, capsys):
    code, out, err = run(capsys, "search", "茶产业", "品牌", "--type", "领导讲话", "--home", str(indexed), "--json")
    assert code == 0, err
    assert {h["doc_type"] for h in json.loads(out)} == {"speech"}


@pytest.mark.parametrize("argv", [
    ["search", "助餐", "--date-from", "abc"],
    ["search", "助餐", "--date-to", "2023-13-45"],
    ["search", "助餐", "--date-from", "2023年2月30日"],
    ["search", "助餐", "--top", "-5"],
    ["search", "助餐", "--top", "0"],
    ["search", "助餐", "--top", "100000"],
    ["audit", "--limit", "-1"],
    ["index", "x", "--wait", "-1"],
    ["index", "x", "--wait", "nan"],
    ["pack", "move", "t", "1.1", "--position", "0"],
    ["pack", "add", "t", "--search", "x", "--pick", "0"],
    ["pack", "draft", "t", "--per-section", "-2"],
    ["documents", "--year", "abc"],
    ["docs", "--date-from", "昨天"],
])
def test_bad_dates_and_numbers_are_refused_in_one_line(indexed, capsys, argv):
    option = [arg for arg in argv if arg.startswith("--")][-1]
    code, out, err = run(capsys, *argv, "--home", str(indexed))
    assert code == 2 and out == ""
    assert one_chinese_line(err) and option in err, err


@pytest.mark.parametrize("written", ["2024-01-01", "2024-1-1", "2024年1月1日"])
def test_dates_may_be_written_the_chinese_way(indexed, capsys, written):
    code, out, err = run(capsys, "search", "茶产业", "助餐", "--date-from", written, "--home", str(indexed), "--json")
    assert code == 0, err
    assert {h["doc_type"] for h in json.loads(out)} == {"speech"}  # the regulation is from 2023


# -- listing documents -------------------------------------------------------------------------
def listed(capsys, home, *argv) -> list[dict]:
    code, out, err = run(capsys, *argv, "--home", str(home), "--json")
    assert code == 0, err
    return json.loads(out)


def test_docs_is_documents_with_filters(indexed, capsys):
    everything = listed(capsys, indexed, "docs")
    assert everything == listed(capsys, indexed, "documents") and len(everything) == 3
    assert "text" not in everything[0] and {"doc_id", "title", "doc_type", "date"} <= set(everything[0])
    assert [d["doc_type"] for d in listed(capsys, indexed, "docs", "--type", "领导讲话")] == ["speech"]
    assert [d["title"] for d in listed(capsys, indexed, "docs", "--issuer", "青溪市人民政府")] == ["青溪市社区助餐服务办法"]
    assert [d["date"] for d in listed(capsys, indexed, "docs", "--year", "2024")] == ["2024-03-08"]
    assert [d["date"] for d in listed(capsys, indexed, "docs", "--date-from", "2023年1月1日",
                                      "--date-to", "2023-12-31")] == ["2023-06-12"]
    assert listed(capsys, indexed, "docs", "--type", "case", "--year", "2024") == []
    code, out, _ = run(capsys, "docs", "--home", str(indexed))
    assert code == 0 and len(out.strip().splitlines()) == 3 and "青溪市社区助餐服务办法" in out
    code, out, _ = run(capsys, "docs", "--year", "1999", "--home", str(indexed))
    assert code == 0 and "没有符合条件的文档" in out


def test_year_and_a_date_range_together_are_refused(indexed, capsys):
    code, _, err = run(capsys, "docs", "--year", "2024", "--date-from", "2024-01-01", "--home", str(indexed))
    assert code == 2 and one_chinese_line(err) and "--year" in err


def test_show_of_an_unknown_id_points_to_kb_docs(indexed, capsys):
    code, _, err = run(capsys, "show", "nope", "--home", str(indexed))
    assert code == 2 and "kb docs" in err and len(err.strip().splitlines()) == 1


# -- kb init -----------------------------------------------------------------------------------
def test_init_creates_an_empty_knowledge_base_and_says_where(kb_home, capsys):
    code, out, err = run(capsys, "info", "--home", str(kb_home))
    assert code == 2 and "kb init" in err and not kb_home.exists()
    code, out, err = run(capsys, "init", "--home", str(kb_home))
    assert code == 0, err
    assert str(kb_home.resolve()) in out and (kb_home / "kb.sqlite").exists()
    code, out, _ = run(capsys, "info", "--home", str(kb_home), "--json")
    assert code == 0 and json.loads(out)["documents"] == 0
    code, out, _ = run(capsys, "docs", "--home", str(kb_home))
    assert code == 0 and "kb index" in out


def test_init_refuses_an_existing_knowledge_base(indexed, capsys):
    def files():  # SQLite's -wal and -shm come and go as earlier connections are closed
        return sorted(p.name for p in indexed.iterdir() if not p.name.endswith(("-wal", "-shm")))

    before = files()
    code, out, err = run(capsys, "init", "--home", str(indexed))
    assert code == 2 and out == "" and one_chinese_line(err) and "已有知识库" in err
    assert files() == before
    assert len(listed(capsys, indexed, "docs")) == 3


def test_init_uses_kb_home_and_answers_in_json(tmp_path, capsys, monkeypatch):
    home = tmp_path / "from_env"
    monkeypatch.setenv("KB_HOME", str(home))
    code, out, err = run(capsys, "init", "--json")
    assert code == 0, err
    assert json.loads(out)["home"] == str(home.resolve()) and (home / "kb.sqlite").exists()


def test_a_member_may_not_init(kb_home, capsys):
    code, _, err = run(capsys, "init", "--home", str(kb_home), "--role", "member", "--user", "张委员")
    assert code == 2 and "委员" in err and not (kb_home / "kb.sqlite").exists()
