"""The rows of expert notes (论证意见) and their replies: one table, `expert_notes`.

A reply is a row with a `parent_id` and no anchor; it carries the `doc_id` of its thread.
Plain functions on a connection. Writers are called inside `Database.write`, so an edit
and its audit entry land together. Rows come back as dicts keyed like the fields of
`kb.annotations.Annotation` and `Reply` (`start`, `end` for the columns `start_char`,
`end_char`).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from .database import Connection

NOTE_FIELDS = ("note_id", "doc_id", "quote", "start", "end", "author", "author_role", "stance", "text", "created",
               "prefix", "suffix", "chunk_hash", "text_hash", "status", "original_quote", "anchor_info",
               "anchored_at", "review", "reviewed_by", "reviewed_at", "review_reason")
REPLY_FIELDS = ("note_id", "parent_id", "author", "author_role", "text", "created")
_COLUMN = {"start": "start_char", "end": "end_char"}
_NOTE_COLUMNS = ", ".join(_COLUMN.get(f, f) for f in NOTE_FIELDS)
_ORDER = "ORDER BY doc_id, start_char, created, rowid"
# Parameters per IN (…) list, well under SQLite's limit.
_BATCH = 500


def _note(row) -> dict:
    data = {f: row[_COLUMN.get(f, f)] for f in NOTE_FIELDS}
    data["prefix"], data["suffix"] = data["prefix"] or "", data["suffix"] or ""
    data["original_quote"] = data["original_quote"] or data["quote"]
    data["anchor_info"] = data["anchor_info"] or ""
    data["review"], data["review_reason"] = data["review"] or "pending", data["review_reason"] or ""
    return data


def _review_clause(reviews: Iterable[str] | None, params: list) -> str:
    """` AND review IN (…)` for the review states wanted; empty when every state is."""
    if reviews is None:
        return ""
    wanted = list(reviews)
    params += wanted
    return f" AND review IN ({','.join('?' * len(wanted))})" if wanted else " AND FALSE"


# -- reading -------------------------------------------------------------------------
def note(conn: Connection, note_id: str) -> dict | None:
    """The note (not a reply) with this id."""
    row = conn.execute("SELECT * FROM expert_notes WHERE note_id=? AND parent_id IS NULL", (note_id,)).fetchone()
    return _note(row) if row else None


def thread_of(conn: Connection, note_id: str) -> tuple[str, str] | None:
    """(id of the thread's note, its doc_id) for a note or a reply; None when there is no such row."""
    row = conn.execute("SELECT note_id, parent_id, doc_id FROM expert_notes WHERE note_id=?", (note_id,)).fetchone()
    return (row["parent_id"] or row["note_id"], row["doc_id"]) if row else None


def note_ids(conn: Connection) -> set[str]:
    """Ids of every note and reply."""
    return {r[0] for r in conn.execute("SELECT note_id FROM expert_notes")}


def notes(conn: Connection, *, doc_id: str | None = None, author: str | None = None, stance: str | None = None,
          orphaned: bool | None = None, reviews: Iterable[str] | None = None) -> list[dict]:
    """Notes (not replies) matching every filter given, by document and place in it; `reviews`
    keeps those in one of these review states."""
    clauses, params = ["parent_id IS NULL"], []
    for column, value in (("doc_id", doc_id), ("author", author), ("stance", stance)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if orphaned is not None:
        clauses.append("status = 'orphaned'" if orphaned else "status != 'orphaned'")
    where = " AND ".join(clauses) + _review_clause(reviews, params)
    rows = conn.execute(f"SELECT * FROM expert_notes WHERE {where} {_ORDER}", params)
    return [_note(r) for r in rows]


def overlapping(conn: Connection, doc_id: str, start: int, end: int, *,
                reviews: Iterable[str] | None = None) -> list[dict]:
    """Notes of `doc_id` whose span overlaps `[start, end)`: anchored ones in text order, then orphaned ones;
    `reviews` keeps those in one of these review states."""
    params: list = [doc_id, end, start]
    review = _review_clause(reviews, params)
    rows = conn.execute(
        "SELECT * FROM expert_notes WHERE doc_id=? AND parent_id IS NULL AND start_char < ? AND end_char > ?"
        f"{review} ORDER BY status = 'orphaned', start_char, created", params)
    return [_note(r) for r in rows]


def replies(conn: Connection, note_ids: Iterable[str]) -> list[dict]:
    """Replies in the threads of these notes, oldest first."""
    ids, out = list(note_ids), []
    for i in range(0, len(ids), _BATCH):
        batch = ids[i:i + _BATCH]
        rows = conn.execute(f"SELECT {', '.join(REPLY_FIELDS)} FROM expert_notes "
                            f"WHERE parent_id IN ({','.join('?' * len(batch))}) ORDER BY created, rowid", batch)
        out += [dict(r) for r in rows]
    return out


def docs_to_recheck(conn: Connection) -> list[str]:
    """Documents with notes anchored on other text than the document's current one, or on a
    document that has left the knowledge base (unless those notes are orphaned already)."""
    rows = conn.execute(
        "SELECT DISTINCT n.doc_id FROM expert_notes n LEFT JOIN documents d ON d.doc_id = n.doc_id "
        "WHERE n.parent_id IS NULL AND ((d.doc_id IS NULL AND n.status != 'orphaned') "
        "OR (d.doc_id IS NOT NULL AND n.text_hash IS NOT d.text_hash)) ORDER BY n.doc_id")
    return [r[0] for r in rows]


# -- writing -------------------------------------------------------------------------
def insert_note(conn: Connection, values: Mapping) -> None:
    """A new note; `values` holds every one of `NOTE_FIELDS`."""
    conn.execute(f"INSERT INTO expert_notes(parent_id, {_NOTE_COLUMNS}) "
                 f"VALUES(NULL, {','.join('?' * len(NOTE_FIELDS))})", [values[f] for f in NOTE_FIELDS])


def insert_reply(conn: Connection, values: Mapping, doc_id: str) -> None:
    """A reply in the thread `values["parent_id"]` on document `doc_id`; `values` holds `REPLY_FIELDS`."""
    conn.execute(f"INSERT INTO expert_notes({', '.join(REPLY_FIELDS)}, doc_id) "
                 f"VALUES({','.join('?' * len(REPLY_FIELDS))}, ?)", [*(values[f] for f in REPLY_FIELDS), doc_id])


def set_orphaned(conn: Connection, note_id: str, *, text_hash: str | None, info: str, at: str) -> None:
    """The note's passage is gone; its last quote and offsets stay as they were."""
    conn.execute("UPDATE expert_notes SET status='orphaned', text_hash=?, anchor_info=?, anchored_at=? WHERE note_id=?",
                 (text_hash, info, at, note_id))


def set_anchor(conn: Connection, note_id: str, *, quote: str, prefix: str, suffix: str, start: int, end: int,
               chunk_hash: str | None, text_hash: str, status: str, info: str, at: str) -> None:
    """Where the note points now, found again in the text whose hash is `text_hash`."""
    conn.execute(
        "UPDATE expert_notes SET quote=?, prefix=?, suffix=?, start_char=?, end_char=?, chunk_hash=?, text_hash=?, "
        "status=?, anchor_info=?, anchored_at=? WHERE note_id=?",
        (quote, prefix, suffix, start, end, chunk_hash, text_hash, status, info, at, note_id))


def set_review(conn: Connection, note_id: str, *, review: str, by: str, at: str, reason: str) -> None:
    """Staff's decision on a note: pending, accepted or internal, who made it and when."""
    conn.execute("UPDATE expert_notes SET review=?, reviewed_by=?, reviewed_at=?, review_reason=? "
                 "WHERE note_id=? AND parent_id IS NULL", (review, by, at, reason, note_id))


def move_document(conn: Connection, old_doc_id: str, new_doc_id: str) -> dict[str, int]:
    """Point the notes, replies and topic links of `old_doc_id` at `new_doc_id` (the same text
    under a new file name); returns how many rows of each moved."""
    moved_notes = conn.execute("UPDATE expert_notes SET doc_id=? WHERE doc_id=?", (new_doc_id, old_doc_id)).rowcount
    # Topic links hold a doc_id too; they move in the same transaction so nothing points at the old id.
    moved_links = conn.execute("UPDATE topic_links SET doc_id=? WHERE doc_id=?", (new_doc_id, old_doc_id)).rowcount
    return {"notes": moved_notes, "topic_links": moved_links}
