"""Users' text made safe to hand on: in exports, in CSV files, in file names.

- Bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) make
  text display other than it is stored — “汇编<U+202E>xcod.exe” shows as “汇编exe.docx”. Chinese
  text never needs them, so every export and every file name the product makes drops them.
- A CSV cell beginning with = + - @ tab or carriage return is a formula to Excel and
  WPS (OWASP “CSV injection”); `csv_cell` puts a single quote before it and
  `from_csv_cell` takes it off again when the file is imported.
"""
from __future__ import annotations

import re
from typing import Any

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
# What a spreadsheet reads as the start of a formula; a leading quote is escaped too, so that
# `from_csv_cell` can tell an added quote from one the user wrote.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_STARTS = CSV_FORMULA_STARTS + ("'",)
# Not allowed in Windows file names, or separators anywhere; whitespace goes too.
_FILENAME_UNSAFE = re.compile(r"[\\/:*?\"<>|\x00-\x1f\x7f\s]+")


def strip_bidi(text: Any) -> str:
    """`text` without bidirectional control characters (None gives "")."""
    return _BIDI.sub("", "" if text is None else str(text))


def strip_bidi_all(data: Any) -> Any:
    """`data` (strings, lists, dicts, as for JSON) with every string passed through `strip_bidi`."""
    if isinstance(data, str):
        return strip_bidi(data)
    if isinstance(data, dict):
        return {key: strip_bidi_all(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strip_bidi_all(value) for value in data]
    return data


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text without bidi controls, a formula start defused by a
    leading single quote. Numbers and None are left as they are."""
    if not isinstance(value, str):
        return value
    text = strip_bidi(value)
    return "'" + text if text.startswith(_ESCAPED_STARTS) else text


def from_csv_cell(cell: Any) -> Any:
    """The value `csv_cell` was given, for a cell it wrote; anything else is returned as it is."""
    if isinstance(cell, str) and cell.startswith("'") and cell[1:].startswith(_ESCAPED_STARTS):
        return cell[1:]
    return cell


def safe_filename(name: str, *, default: str = "导出", limit: int = 120) -> str:
    """A file name (without folder) made from users' text: no bidi controls, no path
    separators or characters Windows refuses, no whitespace, no dots at either end."""
    text = _FILENAME_UNSAFE.sub("", strip_bidi(name)).strip(".")[:limit].rstrip(".")
    return text or default
