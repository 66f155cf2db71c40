"""kb/textsafety.py: bidi controls, CSV cells and file names made from users' text."""
import pytest

from kb.textsafety import BIDI_CONTROLS, csv_cell, from_csv_cell, safe_filename, strip_bidi


def test_every_bidi_control_is_stripped_and_nothing_else():
    controls = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    assert set(BIDI_CONTROLS) == set(controls)
    assert strip_bidi(f"协{controls}商\u200d纪要 \u202e") == "协商\u200d纪要 "  # the zero-width joiner is not a bidi control
    assert strip_bidi(None) == "" and strip_bidi("") == ""


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+86 139", "'+86 139"), ("-5%", "'-5%"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("'=1", "''=1"), ("'引号", "''引号"),
    ("建议=1", "建议=1"), ("", ""), ("2025-01-01", "2025-01-01"),
])
def test_csv_cells_are_defused_and_read_back(value, cell):
    assert csv_cell(value) == cell
    assert from_csv_cell(cell) == value


def test_csv_cell_leaves_numbers_and_none_alone():
    assert csv_cell(-3) == -3 and csv_cell(None) is None and csv_cell("=\u202e1") == "'=1"


def test_file_names_keep_chinese_and_lose_separators_bidi_and_dots_at_the_edges():
    assert safe_filename("社区\u202e老年 助餐/补贴:*?第1版") == "社区老年助餐补贴第1版"
    assert safe_filename("..\\..\\etc") == "etc"
    assert safe_filename("\u202e\u2066", default="汇编") == "汇编"
    assert len(safe_filename("长" * 500)) == 120
