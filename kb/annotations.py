"""Expert notes (专家论证意见) anchored to passages of documents, with replies, export and import.

A note points at a span of a document's normalised text by doc id, the content hash of the
chunk holding it, the quoted text, the text around it and character offsets (see
`kb.anchoring`). Doc ids are stable across re-indexing while chunks are not, so the
note stores the document's `text_hash` as of its last anchoring: after indexing,
every note whose document text changed is looked up again and ends up anchored,
reanchored (the passage moved or its wording changed a little) or orphaned (the
passage is gone, or the document was removed). Notes are never deleted.

Notes live in `kb.sqlite` next to the documents, in one table: a reply is a row with a
`parent_id` and no anchor. Several processes may write at once (WAL, busy timeout,
BEGIN IMMEDIATE, and a retry loop here), and each change goes into the audit log in the
same transaction.
"""
from __future__ import annotations

import csv
import html
import io
import json
import random
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from indexer.errors import IndexLocked, LoadError
from indexer.store import atomic_write_text

from . import audit
from .anchoring import CONTEXT_CHARS, TextAnchor, anchor_at, choose, find_loose, occurrences, relocate
from .errors import ExportError, InvalidNote, NoteNotFound
from .roles import ROLES

if TYPE_CHECKING:
    from .knowledge_base import KnowledgeBase

STANCES = ("支持", "质疑", "补充", "存疑")
_STANCE_ALIASES = {"support": "支持", "challenge": "质疑", "question": "质疑", "supplement": "补充",
                   "doubt": "存疑"}
# CSS class per stance, so HTML never carries user-chosen class names.
_STANCE_CSS = {"支持": "support", "质疑": "challenge", "补充": "supplement", "存疑": "doubt"}
STATUS_LABELS = {"anchored": "已锚定", "reanchored": "已重新锚定", "orphaned": "原文已改动或移除，未能定位"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS expert_notes (
    note_id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES expert_notes(note_id),
    doc_id TEXT NOT NULL,
    author TEXT NOT NULL,
    author_role TEXT NOT NULL,
    stance TEXT,
    text TEXT NOT NULL,
    created TEXT NOT NULL,
    quote TEXT,
    original_quote TEXT,
    prefix TEXT,
    suffix TEXT,
    start_char INTEGER,
    end_char INTEGER,
    chunk_hash TEXT,
    text_hash TEXT,
    status TEXT,
    anchor_info TEXT NOT NULL DEFAULT '',
    anchored_at TEXT
);
CREATE INDEX IF NOT EXISTS expert_notes_doc ON expert_notes(doc_id, start_char);
CREATE INDEX IF NOT EXISTS expert_notes_parent ON expert_notes(parent_id);
"""

# Retries on top of SQLite's own 30 s busy timeout, for the rare "database is locked" that
# still gets through (e.g. a checkpoint racing a BEGIN IMMEDIATE).
WRITE_RETRIES = 8

T = TypeVar("T")


@dataclass
class Reply:
    """An answer in a note's thread; any role that may `reply` can write one."""

    note_id: str
    parent_id: str
    author: str
    author_role: str
    text: str
    created: str

    @property
    def role_label(self) -> str:
        return ROLES.get(self.author_role, self.author_role)


@dataclass
class Annotation:
    """An expert note anchored to `quote` at `[start, end)` of document `doc_id`.

    `original_quote` is what the author selected; `quote` is the passage the note points at
    now (it differs after a fuzzy re-anchoring). `text_hash` is the document text the
    anchor was last checked against; `anchor_info` says how the anchor was chosen.
    """

    note_id: str
    doc_id: str
    quote: str
    start: int
    end: int
    author: str
    author_role: str
    stance: str
    text: str
    created: str
    prefix: str = ""
    suffix: str = ""
    chunk_hash: str | None = None
    text_hash: str | None = None
    status: str = "anchored"
    original_quote: str = ""
    anchor_info: str = ""
    anchored_at: str | None = None
    replies: list[Reply] = field(default_factory=list)

    @property
    def orphaned(self) -> bool:
        return self.status == "orphaned"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def role_label(self) -> str:
        return ROLES.get(self.author_role, self.author_role)

    @property
    def anchor(self) -> TextAnchor:
        return TextAnchor(self.quote, self.start, self.end, self.prefix, self.suffix)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["status_label"] = self.status_label
        return data


@dataclass
class ReanchorReport:
    """What re-checking the notes of changed documents did, by note id."""

    kept: list[str] = field(default_factory=list)
    reanchored: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    def extend(self, other: "ReanchorReport") -> None:
        self.kept += other.kept
        self.reanchored += other.reanchored
        self.orphaned += other.orphaned

    def as_dict(self) -> dict:
        return {"kept": len(self.kept), "reanchored": len(self.reanchored), "orphaned": len(self.orphaned)}


@dataclass
class ImportReport:
    imported: int = 0
    already_present: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    def as_dict(self) -> dict:
        return {"imported": self.imported, "already_present": self.already_present,
                "problems": [{"row": n, "reason": r} for n, r in self.problems]}


def ensure_schema(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would first COMMIT a transaction a caller has open.
    for statement in filter(str.strip, _SCHEMA.split(";")):
        conn.execute(statement)


def normalise_stance(stance: str) -> str:
    """The stance as one of `STANCES`; English aliases are accepted for scripts."""
    value = (stance or "").strip()
    value = _STANCE_ALIASES.get(value.lower(), value)
    if value not in STANCES:
        raise InvalidNote(f"未知的论证立场“{stance}”", hint="立场可选：" + "、".join(STANCES))
    return value


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def _new_id(kind: str) -> str:
    # Random rather than derived from content: two processes never collide, and an
    # imported note keeps its id, which makes import idempotent.
    return kind + uuid.uuid4().hex[:12]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class Notes:
    """The expert notes of one knowledge base; reach it as `kb.notes`."""

    def __init__(self, kb: "KnowledgeBase"):
        self.kb = kb
        self.conn = kb.store.conn
        ensure_schema(self.conn)

    # -- writing ----------------------------------------------------------
    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one BEGIN IMMEDIATE transaction, retrying while another writer holds the lock."""
        delay = 0.05
        for attempt in range(WRITE_RETRIES):
            try:
                with self.kb.store.transaction() as conn:
                    return work(conn)
            except sqlite3.OperationalError as exc:
                if self.conn.in_transaction:  # a failed COMMIT leaves the transaction open
                    self.conn.execute("ROLLBACK")
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == WRITE_RETRIES - 1:
                    raise IndexLocked("知识库正忙，论证意见没有保存", hint="稍等片刻再试一次") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def add(self, doc_id: str, quote: str | None = None, *, stance: str, text: str,
            start: int | None = None, end: int | None = None, before: str = "", after: str = "") -> Annotation:
        """Anchor a new note on `quote` (or on `[start, end)`) in document `doc_id`.

        When the quote occurs several times, `before`/`after` (text just around the wanted
        occurrence) or `start` pick one; otherwise the first is taken and `anchor_info` says so.
        """
        user = self.kb.user
        user.require("annotate")
        stance = normalise_stance(stance)
        if not (text or "").strip():
            raise InvalidNote("论证意见内容为空", hint="用 --text 写明意见")

        def work(conn: sqlite3.Connection) -> Annotation:
            doc = self.kb.document(doc_id)
            anchor, info = _initial_anchor(doc.text, quote, start, end, before, after)
            now = _now()
            note = Annotation(
                note_id=_new_id("n"), doc_id=doc_id, quote=anchor.quote, start=anchor.start, end=anchor.end,
                author=user.name, author_role=user.role, stance=stance, text=text.strip(), created=now,
                prefix=anchor.prefix, suffix=anchor.suffix, chunk_hash=_chunk_hash(conn, doc_id, anchor),
                text_hash=doc.text_hash, status="anchored", original_quote=anchor.quote, anchor_info=info,
                anchored_at=now)
            _insert(conn, note)
            audit.record(conn, user, "note_add", "note", note.note_id, doc_id=doc_id, stance=stance,
                         quote=_short(note.quote), start=note.start, end=note.end)
            return note

        return self._write(work)

    def reply(self, note_id: str, text: str) -> Reply:
        """Answer note `note_id` (a reply to a reply joins the same thread)."""
        user = self.kb.user
        user.require("reply")
        if not (text or "").strip():
            raise InvalidNote("回复内容为空", hint="用 --text 写明回复")

        def work(conn: sqlite3.Connection) -> Reply:
            row = conn.execute("SELECT note_id, parent_id, doc_id FROM expert_notes WHERE note_id=?",
                               (note_id,)).fetchone()
            if row is None:
                raise NoteNotFound(f"没有编号为 {note_id} 的论证意见", hint="用 kb note list 查看编号")
            root = row["parent_id"] or row["note_id"]
            reply = Reply(_new_id("r"), root, user.name, user.role, text.strip(), _now())
            conn.execute("INSERT INTO expert_notes(note_id, parent_id, doc_id, author, author_role, text, created)"
                         " VALUES(?,?,?,?,?,?,?)", (reply.note_id, root, row["doc_id"], reply.author,
                                                   reply.author_role, reply.text, reply.created))
            audit.record(conn, user, "note_reply", "note", reply.note_id, parent_id=root, text=_short(reply.text))
            return reply

        return self._write(work)

    # -- re-anchoring -----------------------------------------------------
    def reanchor(self, doc_id: str) -> ReanchorReport:
        """Look up again every note of `doc_id` whose anchor was made on other text than the current one."""
        return self._write(lambda conn: self._reanchor_in(conn, doc_id))

    def reanchor_all(self) -> ReanchorReport:
        """Re-check the notes of every document whose text changed or which left the knowledge base."""
        rows = self.conn.execute(
            "SELECT DISTINCT n.doc_id FROM expert_notes n LEFT JOIN documents d ON d.doc_id = n.doc_id "
            "WHERE n.parent_id IS NULL AND ((d.doc_id IS NULL AND n.status != 'orphaned') "
            "OR (d.doc_id IS NOT NULL AND n.text_hash IS NOT d.text_hash))").fetchall()
        report = ReanchorReport()
        for row in rows:
            report.extend(self.reanchor(row["doc_id"]))
        return report

    def _reanchor_in(self, conn: sqlite3.Connection, doc_id: str) -> ReanchorReport:
        report = ReanchorReport()
        doc = conn.execute("SELECT text, text_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        rows = conn.execute("SELECT * FROM expert_notes WHERE doc_id=? AND parent_id IS NULL", (doc_id,)).fetchall()
        now = _now()
        for row in rows:
            note = _note_from_row(row)
            if doc is None:
                if not note.orphaned:
                    conn.execute("UPDATE expert_notes SET status='orphaned', text_hash=NULL, anchor_info=?, "
                                 "anchored_at=? WHERE note_id=?", ("文档已从知识库移除；保留原引文", now, note.note_id))
                    report.orphaned.append(note.note_id)
                continue
            if note.text_hash == doc["text_hash"]:
                continue
            found = relocate(note.anchor, doc["text"])
            if found.anchor is None:
                info = f"原文改动后找不到引文（最接近的段落相似度 {found.score:.0f}）；保留原引文"
                conn.execute("UPDATE expert_notes SET status='orphaned', text_hash=?, anchor_info=?, anchored_at=? "
                             "WHERE note_id=?", (doc["text_hash"], info, now, note.note_id))
                report.orphaned.append(note.note_id)
                continue
            new = found.anchor
            moved = found.method != "same_offset" or note.orphaned
            status = "reanchored" if moved or note.status == "reanchored" else "anchored"
            info = note.anchor_info
            if found.method == "exact":
                info = f"原文改动后引文位置由 {note.start} 移到 {new.start}"
                if found.occurrences > 1:
                    info += f"（引文出现 {found.occurrences} 次，按上下文和原位置选定）"
            elif found.method == "fuzzy":
                info = f"原文措辞有改动，按相似度 {found.score:.0f} 重新锚定"
            elif note.orphaned:
                info = "引文重新出现在原位置"
            conn.execute(
                "UPDATE expert_notes SET quote=?, prefix=?, suffix=?, start_char=?, end_char=?, chunk_hash=?, "
                "text_hash=?, status=?, anchor_info=?, anchored_at=? WHERE note_id=?",
                (new.quote, new.prefix, new.suffix, new.start, new.end, _chunk_hash(conn, doc_id, new),
                 doc["text_hash"], status, info, now, note.note_id))
            (report.reanchored if moved else report.kept).append(note.note_id)
        if report.reanchored or report.orphaned:
            audit.record(conn, self.kb.user, "note_reanchor", "document", doc_id, **report.as_dict(),
                         reanchored_ids=report.reanchored, orphaned_ids=report.orphaned)
        return report

    # -- reading ----------------------------------------------------------
    def get(self, note_id: str) -> Annotation:
        row = self.conn.execute("SELECT * FROM expert_notes WHERE note_id=? AND parent_id IS NULL",
                                (note_id,)).fetchone()
        if row is None:
            raise NoteNotFound(f"没有编号为 {note_id} 的论证意见", hint="用 kb note list 查看编号")
        return self._with_replies([_note_from_row(row)])[0]

    def find(self, *, doc_id: str | None = None, author: str | None = None, stance: str | None = None,
             topic: str | None = None, orphaned: bool | None = None) -> list[Annotation]:
        """Notes (with their replies) by document, author, stance, topic and orphaned state."""
        clauses, params = ["parent_id IS NULL"], []
        if doc_id:
            clauses.append("doc_id = ?")
            params.append(doc_id)
        if author:
            clauses.append("author = ?")
            params.append(author)
        if stance:
            clauses.append("stance = ?")
            params.append(normalise_stance(stance))
        if orphaned is not None:
            clauses.append("status = 'orphaned'" if orphaned else "status != 'orphaned'")
        rows = self.conn.execute(f"SELECT * FROM expert_notes WHERE {' AND '.join(clauses)} "
                                 "ORDER BY doc_id, start_char, created, rowid", params).fetchall()
        notes = [_note_from_row(r) for r in rows]
        if topic:
            wanted = self.topic_doc_ids(topic)
            notes = [n for n in notes if n.doc_id in wanted]
        return self._with_replies(notes)

    def for_span(self, doc_id: str, start: int, end: int) -> list[Annotation]:
        """Notes whose anchor overlaps `[start, end)` of `doc_id`: anchored ones in text order, then
        orphaned ones whose last known place overlapped it (their `status` says so)."""
        rows = self.conn.execute(
            "SELECT * FROM expert_notes WHERE doc_id=? AND parent_id IS NULL AND start_char < ? AND end_char > ? "
            "ORDER BY status = 'orphaned', start_char, created", (doc_id, end, start)).fetchall()
        return self._with_replies([_note_from_row(r) for r in rows])

    def topic_doc_ids(self, topic: str) -> set[str]:
        """Documents of a topic: those in its briefing pack when one exists, else those whose title,
        tags or text mention one of the topic's keywords (or the words of `topic` itself)."""
        packed = _pack_doc_ids(self.kb, topic)
        if packed:
            return packed
        keywords = _topic_keywords(self.kb, topic)
        found = set()
        for row in self.conn.execute("SELECT doc_id, title, tags, text FROM documents"):
            haystack = f"{row['title']} {row['tags']} {row['text']}"
            if any(k in haystack for k in keywords):
                found.add(row["doc_id"])
        return found

    def _with_replies(self, notes: list[Annotation]) -> list[Annotation]:
        by_id = {n.note_id: n for n in notes}
        ids = list(by_id)
        for i in range(0, len(ids), 500):
            batch = ids[i:i + 500]
            rows = self.conn.execute(
                f"SELECT * FROM expert_notes WHERE parent_id IN ({','.join('?' * len(batch))}) ORDER BY created, rowid",
                batch)
            for r in rows:
                by_id[r["parent_id"]].replies.append(
                    Reply(r["note_id"], r["parent_id"], r["author"], r["author_role"], r["text"], r["created"]))
        return notes

    # -- export and import --------------------------------------------
    def export(self, path: str | Path, fmt: str | None = None, notes: list[Annotation] | None = None) -> int:
        """Write notes (all by default) with their replies as JSON or CSV; returns the number of notes."""
        self.kb.user.require("read")
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "json").lower()
        notes = self.find() if notes is None else notes
        titles = {r["doc_id"]: r["title"] for r in self.conn.execute("SELECT doc_id, title FROM documents")}
        if fmt == "json":
            payload = {"kind": "expert_notes", "format_version": 1, "exported_at": _now(),
                       "exported_by": self.kb.user.name, "knowledge_base": str(self.kb.home.resolve()),
                       "count": len(notes),
                       "notes": [dict(n.as_dict(), title=titles.get(n.doc_id)) for n in notes]}
            content = json.dumps(payload, ensure_ascii=False, indent=1)
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for note in notes:
                writer.writerow(dict(asdict(note), parent_id="", title=titles.get(note.doc_id, "")))
                for reply in note.replies:
                    writer.writerow(dict(asdict(reply), doc_id=note.doc_id, title=titles.get(note.doc_id, "")))
            # A byte-order mark makes Excel read the file as UTF-8 instead of the local code page.
            content = "\ufeff" + buffer.getvalue()
        else:
            raise ExportError(f"不支持的导出格式 {fmt}", hint="可选 json 或 csv")
        try:
            atomic_write_text(path, content)
        except OSError as exc:
            raise ExportError(f"无法写入 {path}：{exc.strerror or exc}", hint="换一个可写的位置") from exc
        return len(notes)

    def import_file(self, path: str | Path) -> ImportReport:
        """Add the notes and replies of a JSON or CSV export; ids already present are skipped."""
        user = self.kb.user
        user.require("annotate")
        rows = _read_rows(Path(path))
        report = ImportReport()

        def work(conn: sqlite3.Connection) -> ImportReport:
            known = {r[0] for r in conn.execute("SELECT note_id FROM expert_notes")}
            added: list[str] = []
            # Notes before replies, so every reply finds its thread.
            for number, row in sorted(rows, key=lambda item: bool(item[1].get("parent_id"))):
                note_id = str(row.get("note_id") or "").strip()
                if note_id in known:
                    report.already_present += 1
                    continue
                try:
                    _insert_imported(conn, row, known)
                except InvalidNote as exc:
                    report.problems.append((number, exc.user_message()))
                    continue
                known.add(note_id)
                added.append(note_id)
            report.imported = len(added)
            if added:
                audit.record(conn, user, "note_import", "note", None, file=str(path), imported=len(added),
                             note_ids=added)
            return report

        self._write(work)
        self.reanchor_all()  # imported anchors may come from another version of the text
        return report


CSV_FIELDS = ["note_id", "parent_id", "doc_id", "title", "stance", "author", "author_role", "created", "text",
              "quote", "original_quote", "prefix", "suffix", "start", "end", "status", "anchor_info",
              "chunk_hash", "text_hash", "anchored_at"]


def _initial_anchor(text: str, quote: str | None, start: int | None, end: int | None,
                    before: str, after: str) -> tuple[TextAnchor, str]:
    """The anchor of a new note and a remark on how it was chosen (empty when unambiguous)."""
    if start is not None or end is not None:
        if start is None or end is None or not 0 <= start < end <= len(text):
            raise InvalidNote(f"字符位置 {start}–{end} 不在文档范围内（共 {len(text)} 字）",
                              hint="同时给出 --start 和 --end，且 start < end")
        if quote and text[start:end] != quote:
            raise InvalidNote(f"字符 {start}–{end} 处的原文是“{_short(text[start:end])}”，与引文不一致",
                              hint="去掉 --start/--end 让程序查找引文，或改正位置")
        return anchor_at(text, start, end), ""
    quote = (quote or "").strip()
    if not quote:
        raise InvalidNote("没有给出引文", hint="用 --quote 摘录文档中的原句")
    spans = [(s, s + len(quote)) for s in occurrences(text, quote)]
    remark = ""
    if not spans:
        spans = find_loose(text, quote)
        remark = "引文与原文的空白或换行不同，已按原文摘录" if spans else ""
    if not spans:
        raise InvalidNote(f"文档中找不到引文“{_short(quote)}”", hint="引文须是原文中的一段原话，可用 kb show 查看全文")
    if len(spans) == 1:
        return anchor_at(text, *spans[0]), remark
    if before or after:
        chosen = choose(text, spans, before[-CONTEXT_CHARS:], after[:CONTEXT_CHARS])
        how = f"按上下文选定第 {spans.index(chosen) + 1} 处"
    else:
        chosen = spans[0]
        how = "已取第 1 处（可用 --before/--after 给出上下文或用 --start/--end 指定位置）"
    return anchor_at(text, *chosen), "；".join(filter(None, [remark, f"引文在文中出现 {len(spans)} 次，{how}"]))


def _chunk_hash(conn: sqlite3.Connection, doc_id: str, anchor: TextAnchor) -> str | None:
    """Content hash of the chunk that overlaps the anchor most."""
    rows = conn.execute("SELECT start, end, content_hash FROM chunks WHERE doc_id=? AND start < ? AND end > ?",
                        (doc_id, max(anchor.end, anchor.start + 1), anchor.start)).fetchall()
    if not rows:
        return None
    best = max(rows, key=lambda r: min(r["end"], anchor.end) - max(r["start"], anchor.start))
    return best["content_hash"]


def _insert(conn: sqlite3.Connection, note: Annotation) -> None:
    conn.execute(
        "INSERT INTO expert_notes(note_id, parent_id, doc_id, author, author_role, stance, text, created, quote, "
        "original_quote, prefix, suffix, start_char, end_char, chunk_hash, text_hash, status, anchor_info, "
        "anchored_at) VALUES(?,NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (note.note_id, note.doc_id, note.author, note.author_role, note.stance, note.text, note.created,
         note.quote, note.original_quote or note.quote, note.prefix, note.suffix, note.start, note.end,
         note.chunk_hash, note.text_hash, note.status, note.anchor_info, note.anchored_at))


def _note_from_row(row) -> Annotation:
    return Annotation(
        note_id=row["note_id"], doc_id=row["doc_id"], quote=row["quote"], start=row["start_char"],
        end=row["end_char"], author=row["author"], author_role=row["author_role"], stance=row["stance"],
        text=row["text"], created=row["created"], prefix=row["prefix"] or "", suffix=row["suffix"] or "",
        chunk_hash=row["chunk_hash"], text_hash=row["text_hash"], status=row["status"],
        original_quote=row["original_quote"] or row["quote"], anchor_info=row["anchor_info"] or "",
        anchored_at=row["anchored_at"])


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """(row number, fields) of every note and reply in an export file; replies of JSON notes are flattened."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LoadError(path, "文件不存在") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(path, f"无法读取（{exc}）", hint="导入文件应是 kb note export 生成的 UTF-8 JSON 或 CSV") from None
    if path.suffix.lower() == ".json" or raw.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LoadError(path, f"不是有效的 JSON（第 {exc.lineno} 行）") from None
        items = data.get("notes", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise LoadError(path, "JSON 中没有 notes 列表", hint="导入文件应是 kb note export 生成的文件")
        rows: list[tuple[int, dict]] = []
        for n, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                rows.append((n, {}))
                continue
            rows.append((n, item))
            for reply in item.get("replies") or []:
                rows.append((n, dict(reply, doc_id=item.get("doc_id"), parent_id=item.get("note_id"))))
        return rows
    reader = csv.DictReader(io.StringIO(raw))
    if not reader.fieldnames or "note_id" not in reader.fieldnames:
        raise LoadError(path, "CSV 缺少 note_id 列", hint="导入文件应是 kb note export --format csv 生成的文件")
    return [(n, row) for n, row in enumerate(reader, start=2)]


def _int_or_none(value) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidNote(f"字符位置 {value} 不是整数") from None


def _insert_imported(conn: sqlite3.Connection, row: dict, known: set[str]) -> None:
    """Insert one imported note or reply after checking it; raises `InvalidNote` for a bad row."""
    def text_of(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value)

    note_id, parent_id = text_of("note_id").strip(), text_of("parent_id").strip()
    if not note_id:
        raise InvalidNote("缺少 note_id")
    if not text_of("text").strip():
        raise InvalidNote(f"{note_id}：内容为空")
    author, role = text_of("author").strip(), text_of("author_role").strip()
    if not author or role not in ROLES:
        raise InvalidNote(f"{note_id}：作者或角色不明（{author or '空'}，{role or '空'}）")
    created = text_of("created") or _now()
    if parent_id:
        if parent_id not in known:
            raise InvalidNote(f"回复 {note_id} 所属的论证意见 {parent_id} 不存在")
        doc_id = conn.execute("SELECT doc_id FROM expert_notes WHERE note_id=?", (parent_id,)).fetchone()[0]
        conn.execute("INSERT INTO expert_notes(note_id, parent_id, doc_id, author, author_role, text, created)"
                     " VALUES(?,?,?,?,?,?,?)", (note_id, parent_id, doc_id, author, role, text_of("text"), created))
        return
    start, end = _int_or_none(row.get("start")), _int_or_none(row.get("end"))
    quote = text_of("quote")
    if not text_of("doc_id") or not quote or start is None or end is None:
        raise InvalidNote(f"{note_id}：缺少文档编号、引文或字符位置")
    status = text_of("status") if text_of("status") in STATUS_LABELS else "anchored"
    _insert(conn, Annotation(
        note_id=note_id, doc_id=text_of("doc_id"), quote=quote, start=start, end=end, author=author,
        author_role=role, stance=normalise_stance(text_of("stance")), text=text_of("text"), created=created,
        prefix=text_of("prefix"), suffix=text_of("suffix"), chunk_hash=text_of("chunk_hash") or None,
        text_hash=text_of("text_hash") or None, status=status, original_quote=text_of("original_quote") or quote,
        anchor_info=text_of("anchor_info"), anchored_at=text_of("anchored_at") or None))


def note_html(note: Annotation) -> str:
    """An HTML fragment for one note and its thread; every user-written string is escaped."""
    esc = html.escape
    css = f"expert-note stance-{_STANCE_CSS.get(note.stance, 'other')} status-{esc(note.status)}"
    status = "" if note.status == "anchored" else f' <span class="status">{esc(note.status_label)}</span>'
    parts = [
        f'<article class="{css}" data-note-id="{esc(note.note_id)}">',
        f'<header><span class="stance">{esc(note.stance)}</span> '
        f'<span class="author">{esc(note.author)}（{esc(note.role_label)}）</span> '
        f'<time>{esc(note.created)}</time>{status}</header>',
        f'<blockquote class="quote">{esc(note.quote)}</blockquote>',
        f'<div class="note-text">{_paragraphs(note.text)}</div>',
    ]
    if note.replies:
        parts.append('<ol class="replies">')
        for reply in note.replies:
            parts.append(f'<li><span class="author">{esc(reply.author)}（{esc(reply.role_label)}）</span> '
                         f'<time>{esc(reply.created)}</time><div>{_paragraphs(reply.text)}</div></li>')
        parts.append("</ol>")
    parts.append("</article>")
    return "\n".join(parts)


def _paragraphs(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.splitlines())


def notes_for_span(kb: "KnowledgeBase", doc_id: str, start: int, end: int) -> list[Annotation]:
    """Same as `kb.notes.for_span`, for callers that hold only the knowledge base."""
    return kb.notes.for_span(doc_id, start, end)


def _pack_doc_ids(kb: "KnowledgeBase", topic: str) -> set[str]:
    """Documents in the latest briefing pack of `topic`, when the briefing-pack module is present."""
    try:
        packs = getattr(kb, "packs", None)  # issue 5 adds `kb.packs`; older trees have none
    except ImportError:
        return set()
    doc_ids = getattr(packs, "doc_ids", None)
    return set(doc_ids(topic)) if callable(doc_ids) else set()


def _topic_keywords(kb: "KnowledgeBase", topic: str) -> list[str]:
    """The topic's title and keywords when the topics module knows it, else the words of `topic`."""
    service = getattr(kb, "topics", None)  # issue 5 adds `kb.topics`; older trees have none
    if service is not None and hasattr(service, "get"):
        found = service.get(topic)  # raises TopicNotFound with close matches
        return [k for k in [*getattr(found, "keywords", []), getattr(found, "title", "")] if k]
    words = [w for w in topic.replace("、", " ").replace("，", " ").replace(",", " ").split() if w]
    return words or [topic]
