"""Lay-to-official thesaurus (检索词表): the everyday words people bring to an office, with the
official terms policies answer in (门口摆摊 → 占道经营 市容管理; 老板欠薪 → 拖欠工资 劳动报酬).

The built-in entries live in `kb/data/thesaurus/<field>.tsv`, one file per field consultations
cover (养老服务, 儿童与教育 …); a knowledge base adds or overrides entries in its own
`<home>/thesaurus.tsv`, which staff edit in 文档管理 or with `kb thesaurus add/remove`. Each
line is `lay expression<TAB>official terms separated by spaces`; `#` starts a comment. In the
knowledge base's own file an official side of `-` switches a built-in entry off.

`Thesaurus.match` finds lay expressions in a query by substring on the normalised text,
longest first, so 楼盘烂尾了怎么办 matches 楼盘烂尾 even where jieba cuts it differently;
`kb.search` adds the official terms to the query plan at a lower weight than the query's own
words (docs/search.md).
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from indexer.errors import KBError
from indexer.store import atomic_write_text

DATA_DIR = Path(__file__).resolve().parent / "data" / "thesaurus"
KB_FILE = "thesaurus.tsv"
OWN_FIELD = "own"  # entries of the knowledge base itself
SWITCHED_OFF = "-"
MAX_LAY_CHARS = 20
MAX_TERMS = 12
# field key (file name) → the label staff read
FIELDS = {
    "elderly": "养老服务",
    "children": "儿童与教育",
    "employment": "就业与工资",
    "housing": "住房与物业",
    "rural": "农村治理与集体资产",
    "land": "土地",
    "ecology": "生态环境与垃圾",
    "transport": "交通出行",
    "business": "营商环境",
    "health": "医疗卫生",
    "social_security": "社会保障",
    "public_services": "公共服务与数字化",
    "culture_tourism": "文化旅游",
    "legal": "法律程序",
}
_SPACE_RE = re.compile(r"\s+")
_PUNCT_RE = re.compile(r"[，。！？、；：,.!?;:“”\"'（）()《》〈〉【】\[\]…—\-~～·]")
_TERM_RE = re.compile(r"^[\u4e00-\u9fffA-Za-z0-9·]+$")


class InvalidThesaurusEntry(KBError):
    """A thesaurus line or edit that cannot be used: empty side, too long, odd characters."""


@dataclass(frozen=True)
class Entry:
    """One lay expression with the official terms to look for as well."""

    lay: str
    terms: tuple[str, ...]
    field: str  # a key of FIELDS, or OWN_FIELD

    @property
    def field_label(self) -> str:
        return FIELDS.get(self.field, "本知识库")

    def as_dict(self) -> dict:
        return {"lay": self.lay, "terms": list(self.terms), "field": self.field, "field_label": self.field_label}


def normalise(text: str) -> str:
    """What matching compares: full-width folded, lower case, no spaces or punctuation."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return _PUNCT_RE.sub("", _SPACE_RE.sub("", text))


def parse_line(line: str) -> tuple[str, list[str]] | None:
    """(lay, terms) of one file line; None for blank and comment lines."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    lay, sep, rest = line.partition("\t")
    if not sep:  # a hand-edited file with spaces instead of the tab
        lay, _, rest = line.partition(" ")
    return lay.strip(), rest.split()


def check_entry(lay: str, terms: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """The entry cleaned, or `InvalidThesaurusEntry` saying what is wrong with it."""
    lay = (lay or "").strip()
    terms = tuple(dict.fromkeys(t.strip() for t in terms if t and t.strip()))
    if not normalise(lay):
        raise InvalidThesaurusEntry("日常说法为空", hint="例如：门口摆摊")
    if len(lay) > MAX_LAY_CHARS or "\t" in lay or "#" in lay:
        raise InvalidThesaurusEntry(f"日常说法“{lay[:24]}”过长或含制表符、#",
                                    hint=f"写成不超过 {MAX_LAY_CHARS} 字的一个短语")
    if not terms:
        raise InvalidThesaurusEntry(f"“{lay}”没有对应的规范用语", hint="用空格分隔几个规范用语，例如：占道经营 市容管理")
    if terms != (SWITCHED_OFF,):
        bad = [t for t in terms if not _TERM_RE.match(t)]
        if bad or len(terms) > MAX_TERMS:
            raise InvalidThesaurusEntry(f"规范用语有误：{'、'.join(bad) or f'多于 {MAX_TERMS} 个'}",
                                        hint="每个规范用语是一个词（汉字、字母或数字），用空格分隔")
    return lay, terms


def read_file(path: Path, field: str) -> list[Entry]:
    """The entries of one thesaurus file, in file order (a repeated lay expression: the last line wins)."""
    entries: dict[str, Entry] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        parsed = parse_line(line)
        if parsed is None:
            continue
        try:
            lay, terms = check_entry(*parsed)
        except InvalidThesaurusEntry as exc:
            raise InvalidThesaurusEntry(f"{path} 第 {n} 行：{exc}", hint=exc.hint) from None
        entries[lay] = Entry(lay, terms, field)
    return list(entries.values())


class Thesaurus:
    """Built-in entries with a knowledge base's own merged over them."""

    def __init__(self, entries: Iterable[Entry]):
        self.entries: dict[str, Entry] = {}
        for entry in entries:
            known = self.entries.get(entry.lay)
            if known and OWN_FIELD not in (known.field, entry.field):  # in two fields: one entry, both sides
                entry = Entry(known.lay, tuple(dict.fromkeys(known.terms + entry.terms)), known.field)
            self.entries[entry.lay] = entry
        self.switched_off = {lay for lay, e in self.entries.items() if e.terms == (SWITCHED_OFF,)}
        usable = [e for e in self.entries.values() if e.terms != (SWITCHED_OFF,)]
        # longest first, so 楼盘烂尾 wins over 烂尾
        self._keys = sorted(((normalise(e.lay), e) for e in usable), key=lambda ke: -len(ke[0]))

    def __len__(self) -> int:
        return len(self.entries) - len(self.switched_off)

    def __contains__(self, lay: str) -> bool:
        return lay in self.entries and lay not in self.switched_off

    def get(self, lay: str) -> Entry | None:
        return self.entries.get(lay) if lay in self else None

    def by_field(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {}
        for entry in self.entries.values():
            if entry.terms != (SWITCHED_OFF,):
                out.setdefault(entry.field, []).append(entry)
        return out

    def match(self, query: str) -> list[Entry]:
        """The entries whose lay expression occurs in the query, longest first; a shorter
        expression inside a longer match is not counted again."""
        text = normalise(query)
        taken = [False] * len(text)
        found: list[Entry] = []
        for key, entry in self._keys:
            if not key or len(key) > len(text):
                continue
            start = text.find(key)
            while start >= 0:
                if not any(taken[start:start + len(key)]):
                    taken[start:start + len(key)] = [True] * len(key)
                    found.append(entry)
                    break
                start = text.find(key, start + 1)
        return found

    def expand(self, query: str) -> tuple[list[Entry], list[str]]:
        """(matched entries, their official terms not already in the query), terms in entry order."""
        matched = self.match(query)
        text = normalise(query)
        terms: list[str] = []
        for entry in matched:
            terms += [t for t in entry.terms if normalise(t) not in text and t not in terms]
        return matched, terms


# -- loading ------------------------------------------------------------------
_cache: dict[tuple, Thesaurus] = {}


def builtin_entries() -> list[Entry]:
    """All built-in entries, field by field in `FIELDS` order."""
    entries: list[Entry] = []
    for key in FIELDS:
        path = DATA_DIR / f"{key}.tsv"
        if path.is_file():
            entries += read_file(path, key)
    return entries


def own_file(home: str | os.PathLike) -> Path:
    return Path(home) / KB_FILE


def own_entries(home: str | os.PathLike | None) -> list[Entry]:
    """The knowledge base's own entries (none when it has no thesaurus.tsv)."""
    if home is None or not own_file(home).is_file():
        return []
    return read_file(own_file(home), OWN_FIELD)


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (None, None)


def load(home: str | os.PathLike | None = None) -> Thesaurus:
    """The thesaurus in force for a knowledge base: built-in entries, its own merged over them.
    Cached until one of the files changes, so a staff edit counts from the next search."""
    files = sorted(DATA_DIR.glob("*.tsv"))
    if home is not None:
        files.append(own_file(home))
    key = tuple((str(p), *_stamp(p)) for p in files)
    if key not in _cache:
        if len(_cache) > 8:
            _cache.clear()
        _cache[key] = Thesaurus([*builtin_entries(), *own_entries(home)])
    return _cache[key]


# -- a knowledge base's own entries (staff edit them) ---------------------------
def _write_own(home: Path, entries: list[Entry]) -> None:
    lines = ["# 本知识库的检索词表：日常说法<TAB>规范用语（空格分隔）；规范用语写 - 表示停用内置的同名词条。",
             "# 由 kb thesaurus add/remove 或「文档管理」中的检索词表维护，也可以直接编辑。"]
    lines += [f"{e.lay}\t{' '.join(e.terms)}" for e in entries]
    atomic_write_text(own_file(home), "\n".join(lines) + "\n")


def _audit(db, user, op: str, lay: str, terms: tuple[str, ...] | None) -> None:
    from .storage import audit as audit_rows

    db.write(lambda conn: audit_rows.record(conn, user, "thesaurus.edit", "thesaurus", lay, op=op,
                                            terms=list(terms or ())), what="审计记录")


def add_entry(home: str | os.PathLike, db, user, lay: str, terms: Iterable[str] | str) -> Entry:
    """Add or replace the knowledge base's own entry for `lay` (staff only), audited as `thesaurus.edit`."""
    user.require("index")
    if isinstance(terms, str):
        terms = terms.split()
    lay, terms = check_entry(lay, terms)
    home = Path(home)
    entries = [e for e in own_entries(home) if e.lay != lay]
    entry = Entry(lay, terms, OWN_FIELD)
    _write_own(home, [*entries, entry])
    _audit(db, user, "add", lay, terms)
    return entry


def remove_entry(home: str | os.PathLike, db, user, lay: str) -> Entry:
    """Remove the knowledge base's own entry for `lay` (staff only); a built-in entry is not
    touched (switch it off with `add_entry(lay, "-")`)."""
    user.require("index")
    home = Path(home)
    entries = own_entries(home)
    found = next((e for e in entries if e.lay == lay.strip()), None)
    if found is None:
        builtin = lay.strip() in {e.lay for e in builtin_entries()}
        raise InvalidThesaurusEntry(f"本知识库的检索词表里没有“{lay.strip()}”",
                                    hint=("这是内置词条；要停用它，添加同名词条并把规范用语写成 -"
                                          if builtin else "先列出已有词条再删除"))
    _write_own(home, [e for e in entries if e.lay != found.lay])
    _audit(db, user, "remove", found.lay, found.terms)
    return found
