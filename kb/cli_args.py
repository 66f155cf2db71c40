"""Arguments of the `kb` command: usage errors in Chinese, and checked option values.

`ChineseArgumentParser` prints a usage error as one Chinese line on stderr and exits 2
(argparse's status for usage errors, and `kb`'s for every error); called without its
sub-command it lists the sub-commands. The `*_value` functions are argparse types that
refuse a bad value before anything is opened.
"""
from __future__ import annotations

import argparse
import difflib
import math
import re
from typing import Callable

from indexer.metadata import DOC_TYPE_BY_LABEL, DOC_TYPES, parse_date

USAGE_ERROR = 2
MAX_TOP = 200  # results per search: more is never read, and ranking that many costs seconds


# -- usage errors in Chinese ------------------------------------------------------------
# Names of positional arguments as the user thinks of them (options keep their --name).
_ARGUMENT_NAMES = {"query": "检索词", "paths": "文件或文件夹", "doc_id": "文档编号", "note_id": "意见编号",
                   "topic": "议题", "item": "条目", "text": "文字", "file": "文件", "title": "标题",
                   "link_id": "关联记录编号", "OUT": "备份文件夹", "BACKUP": "备份文件夹", "BENCH_DIR": "评测集文件夹"}
_TYPE_NAMES = {"int": "整数", "float": "数字"}


def _named(argument: str) -> str:
    return f"{_ARGUMENT_NAMES[argument]}（{argument}）" if argument in _ARGUMENT_NAMES else argument


def _choices(text: str) -> list[str]:
    """'a', 'b' (Python 3.11) or a, b (later versions) as a list."""
    return re.findall(r"'([^']*)'", text) or [c.strip() for c in text.split(",")]


def usage_message(message: str) -> str:
    """argparse's English error message in Chinese (unknown ones are left as they are)."""
    if match := re.fullmatch(r"the following arguments are required: (.+)", message):
        return "缺少必需的参数：" + "、".join(_named(a) for a in match[1].split(", "))
    if match := re.fullmatch(r"unrecognized arguments: (.+)", message):
        return f"无法识别的参数：{match[1]}"
    if match := re.fullmatch(r"ambiguous option: (\S+) could match (.+)", message):
        return f"选项 {match[1]} 不明确，可能是 {match[2]}"
    match = re.fullmatch(r"argument (\S+): (.+)", message, re.S)
    if not match:
        return message
    argument, problem = _named(match[1]), match[2]
    if found := re.fullmatch(r"invalid choice: '(.*)' \(choose from (.+)\)", problem):
        return f"{argument} 不能取“{found[1]}”（可选：{'、'.join(_choices(found[2]))}）"
    if found := re.fullmatch(r"invalid (\w+) value: '(.*)'", problem):
        return f"{argument} 须是{_TYPE_NAMES.get(found[1], found[1])}，“{found[2]}”不是"
    if problem.startswith("expected"):  # one argument, at least one, at most one
        return f"{argument} 后面缺少取值"
    if found := re.fullmatch(r"not allowed with argument (\S+)", problem):
        return f"{argument} 不能与 {found[1]} 同时使用"
    if found := re.fullmatch(r"ignored explicit argument '(.*)'", problem):
        return f"{argument} 不带取值（多了“{found[1]}”）"
    return f"{argument}：{problem}"


class ChineseHelpFormatter(argparse.HelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, "用法：" if prefix is None else prefix)


class ChineseArgumentParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one Chinese line on stderr (exit 2), and
    which, called without its sub-command, lists the sub-commands instead."""

    def __init__(self, *args, add_help: bool = True, **kwargs):
        kwargs.setdefault("formatter_class", ChineseHelpFormatter)
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title = "参数"
        self._optionals.title = "选项"
        if add_help:
            self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS, help="显示本帮助后退出")

    def _commands(self) -> argparse._SubParsersAction | None:
        return next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            # said by the sub-command that was given, so the hint names its --help
            parser: ChineseArgumentParser = self
            while (commands := parser._commands()) and getattr(parsed, commands.dest, None) in commands.choices:
                parser = commands.choices[getattr(parsed, commands.dest)]
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def error(self, message: str):
        commands = self._commands()
        name = commands and (commands.metavar or commands.dest)  # as argparse names it in messages
        if commands is not None and message == f"the following arguments are required: {name}":
            self.exit(USAGE_ERROR, self.command_list())
        text = usage_message(message)
        if commands is not None and (match := re.fullmatch(rf"argument {name}: invalid choice: '(.*)' .*", message)):
            close = difflib.get_close_matches(match[1], list(commands.choices), n=1)
            text = f"没有“{match[1]}”这个命令" + (f"，是不是 {self.prog} {close[0]}？" if close else "")
        self.exit(USAGE_ERROR, f"错误：{self.prog}：{text}（用 {self.prog} --help 查看用法）\n")

    def command_list(self) -> str:
        """Short help: usage, then one line per sub-command with its aliases."""
        commands = self._commands()
        aliases: dict[int, list[str]] = {}
        for name, parser in commands.choices.items():
            aliases.setdefault(id(parser), []).append(name)
        rows = [(" | ".join(aliases[id(commands.choices[c.dest])]), c.help or "") for c in commands._choices_actions]
        width = max(len(name) for name, _ in rows) + 2
        lines = [f"用法：{self.prog} 命令 [参数] [选项]"] + ([self.description] if self.description else [])
        lines += ["", "命令："] + [f"  {name.ljust(width)}{text}" for name, text in rows]
        lines += ["", f"某个命令的用法：{self.prog} 命令 --help"]
        return "\n".join(lines) + "\n"


# -- checked option values ---------------------------------------------------------------
def doc_type_value(value: str) -> str:
    """A document type by its key (policy) or its Chinese name (政策法规)."""
    value = value.strip()
    if value in DOC_TYPES:
        return value
    if value in DOC_TYPE_BY_LABEL:
        return DOC_TYPE_BY_LABEL[value]
    known = "、".join(f"{label}（{key}）" for key, label in DOC_TYPES.items())
    raise argparse.ArgumentTypeError(f"没有“{value}”这种文档类型（可选：{known}）")


DOC_TYPE_HELP = "文档类型：" + "、".join(f"{label}（{key}）" for key, label in DOC_TYPES.items())


def date_value(value: str) -> str:
    """A calendar date written 2023-01-01, 2023-1-1 or 2023年1月1日, as ISO."""
    iso = parse_date(value) if re.fullmatch(r"[\d\s年月日/.\-]+", value or "") else None
    if not iso or len(iso) != 10:
        raise argparse.ArgumentTypeError(f"“{value}”不是日期（写作 2023-01-01、2023-1-1 或 2023年1月1日）")
    return iso


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high` (no upper bound when None)."""
    def convert(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            wanted = f" {low} 到 {high} 之间的整数" if high is not None else f"不小于 {low} 的整数"
            raise argparse.ArgumentTypeError(f"须是{wanted}，“{value}”不是")
        return number

    return convert


def non_negative(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number, 0 or more; `what` names it in the message (秒数)."""
    def convert(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise argparse.ArgumentTypeError(f"须是不小于 0 的{what}，“{value}”不是")
        return number

    return convert


seconds_value = non_negative("秒数")


year_value = int_between(1900, 2100)
