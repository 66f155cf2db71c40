from pathlib import Path

import pytest

from indexer import metadata as m
from indexer.errors import LoadError

from .conftest import CASE, REGULATION, SPEECH


def test_header_lines_give_issuer_number_date_validity():
    meta = m.from_text(REGULATION, {}, Path("x.txt"))
    assert meta["title"] == "青溪市社区助餐服务办法"
    assert meta["issuer"] == "青溪市人民政府"
    assert meta["doc_number"] == "青政发〔2023〕15号"
    assert meta["date"] == "2023-06-12"
    assert meta["validity"] == "in_force"
    assert meta["doc_type"] == "policy"
    assert meta["level"] == "city"


def test_speech_and_case_types_are_inferred():
    assert m.from_text(SPEECH, {}, Path("s.md"))["doc_type"] == "speech"
    assert m.from_text(CASE, {}, Path("c.txt"))["doc_type"] == "case"


def test_doc_number_cited_in_body_is_not_the_documents_own():
    text = "关于推进助餐的讲话\n讲话人：王某\n根据青政发〔2024〕9号文件精神，我讲三点。"
    assert "doc_number" not in m.from_text(text, {}, Path("s.txt"))


@pytest.mark.parametrize("raw,expected", [
    ("青政发[2023]15号", "青政发〔2023〕15号"),
    ("青政发（2023）15号", "青政发〔2023〕15号"),
    ("江民发 〔2022〕 31 号", "江民发〔2022〕31号"),
])
def test_doc_number_brackets_are_unified(raw, expected):
    assert m.normalise_doc_number(raw) == expected


def test_sidecar_and_csv_override_the_text(tmp_path):
    doc = tmp_path / "办法.pdf"
    doc.write_bytes(b"%PDF")
    (tmp_path / "办法.meta.yaml").write_text(
        "title: 修订后的标题\ndoc_type: 政策法规\ndate: 2024-01-05\nvalidity: 已废止\ntags: [助餐, 养老]\n", encoding="utf-8")
    (tmp_path / "metadata.csv").write_text("file,doc_type,level,region,tags\n办法.pdf,case,county,南塘县,a;b\n",
                                           encoding="utf-8")
    merged = m.merge(m.from_text(REGULATION, {}, doc), m.read_folder_csv(tmp_path)["办法.pdf"], m.read_sidecar(doc))
    assert merged["title"] == "修订后的标题"
    assert merged["doc_type"] == "policy"  # sidecar wins over the CSV
    assert merged["level"] == "county" and merged["region"] == "南塘县"
    assert merged["validity"] == "repealed"
    assert merged["tags"] == ["助餐", "养老"]
    assert merged["doc_number"] == "青政发〔2023〕15号"  # from the text, not overridden


def test_broken_sidecar_names_the_file(tmp_path):
    doc = tmp_path / "x.txt"
    doc.write_text("标题", encoding="utf-8")
    (tmp_path / "x.meta.yaml").write_text("title: [unclosed\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        m.read_sidecar(doc)
    assert "x.meta.yaml" in str(info.value)


def test_dates_in_several_forms():
    assert m.parse_date("2023年6月1日") == "2023-06-01"
    assert m.parse_date("2023-06-01") == "2023-06-01"
    assert m.parse_date("2023年13月1日") is None
    assert m.parse_date("日期：2024年10月") == "2024-10"
