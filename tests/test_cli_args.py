"""kb/cli_args.py: argparse's messages in Chinese and the checked option values."""
import argparse

import pytest

from kb.cli_args import date_value, doc_type_value, int_between, non_negative, usage_message


@pytest.mark.parametrize("english, chinese", [
    ("the following arguments are required: query, --stance", "缺少必需的参数：检索词（query）、--stance"),
    ("unrecognized arguments: --frob x", "无法识别的参数：--frob x"),
    ("argument --mode: invalid choice: 'fuzzy' (choose from 'hybrid', 'keyword', 'dense')",
     "--mode 不能取“fuzzy”（可选：hybrid、keyword、dense）"),
    ("argument --mode: invalid choice: 'fuzzy' (choose from hybrid, keyword, dense)",
     "--mode 不能取“fuzzy”（可选：hybrid、keyword、dense）"),
    ("argument --top: expected one argument", "--top 后面缺少取值"),
    ("argument --top: invalid int value: 'abc'", "--top 须是整数，“abc”不是"),
    ("argument --wait: invalid float value: 'x'", "--wait 须是数字，“x”不是"),
    ("ambiguous option: --d could match --date-from, --date-to", "选项 --d 不明确，可能是 --date-from, --date-to"),
    ("argument --json: ignored explicit argument 'yes'", "--json 不带取值（多了“yes”）"),
    ("argument --top: 须是 1 到 200 之间的整数", "--top：须是 1 到 200 之间的整数"),
])
def test_argparse_messages_in_chinese(english, chinese):
    assert usage_message(english) == chinese


def test_values_are_checked():
    assert [date_value(v) for v in ("2023-01-01", "2023-1-1", "2023年1月1日", "2023/1/1")] == ["2023-01-01"] * 4
    assert doc_type_value("协商纪要") == "minutes" and doc_type_value("minutes") == "minutes"
    assert int_between(1, 200)("200") == 200 and non_negative("秒数")("0") == 0.0
    for convert, value in ((date_value, "2023年1月"), (date_value, "2023-02-29"), (date_value, "abc 2023-01-01"),
                           (doc_type_value, "纪要"), (int_between(1, 200), "201"), (int_between(0), "1.5"),
                           (non_negative("秒数"), "inf"), (non_negative("秒数"), "-0.1")):
        with pytest.raises(argparse.ArgumentTypeError):
            convert(value)
