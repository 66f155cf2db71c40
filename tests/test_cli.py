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
