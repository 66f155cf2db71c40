"""The rows of consultation topics (协商议题) and their links (往期纪要、批示、回头看).

Plain functions on a connection. Writers are called inside `Database.write`, so a
read-modify-write of a topic sees no other change between its read and its write.
List and dict columns are stored as JSON; rows come back as dicts with them decoded.
"""
from __future__ import annotations

import json
import time
from typing import Any

from .database import Connection

_JSON_COLUMNS = {"sectors": "[]", "keywords": "[]", "step_dates": "{}", "extra": "{}"}
# The columns an edit may set; anything else is refused before it reaches SQL.
EDITABLE_COLUMNS = ("title", "format", "year", "lead", "sectors", "keywords", "description", "step",
                    "step_dates")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _encode(column: str, value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if column in _JSON_COLUMNS else value


def _decoded(row) -> dict:
    data = dict(row)
    for column, empty in _JSON_COLUMNS.items():
        if column in data:
            data[column] = json.loads(data[column] or empty)
    return data


# -- reading -------------------------------------------------------------------------
def topic_row(conn: Connection, key: str) -> dict | None:
    """The topic whose id is `key`, else whose title is `key`."""
    row = conn.execute("SELECT * FROM topics WHERE topic_id=? OR title=? ORDER BY topic_id=? DESC LIMIT 1",
                       (key, key, key)).fetchone()
    return _decoded(row) if row else None


def topic_rows(conn: Connection, year: int | None = None) -> list[dict]:
    """Newest year first, then in the order they were added."""
    sql = "SELECT * FROM topics" + (" WHERE year=?" if year else "") + " ORDER BY year DESC NULLS LAST, rowid"
    return [_decoded(r) for r in conn.execute(sql, (year,) if year else ())]


def id_titles(conn: Connection) -> list[tuple[str, str]]:
    """(topic_id, title) of every topic, oldest first."""
    return [(r["topic_id"], r["title"]) for r in conn.execute("SELECT topic_id, title FROM topics ORDER BY created_at")]


def clashing(conn: Connection, topic_id: str, title: str) -> tuple[str, str] | None:
    """(topic_id, title) of a topic that already has this id or this title."""
    row = conn.execute("SELECT topic_id, title FROM topics WHERE topic_id=? OR title=?", (topic_id, title)).fetchone()
    return (row["topic_id"], row["title"]) if row else None


def title_taken(conn: Connection, title: str, other_than: str) -> bool:
    return conn.execute("SELECT 1 FROM topics WHERE title=? AND topic_id<>?", (title, other_than)).fetchone() is not None


def link_rows(conn: Connection, topic_id: str) -> list[dict]:
    """The topic's links by date, then in the order they were made."""
    return [dict(r) for r in conn.execute(
        "SELECT * FROM topic_links WHERE topic_id=? ORDER BY date NULLS FIRST, link_id", (topic_id,))]


# -- writing -------------------------------------------------------------------------
def insert(conn: Connection, topic_id: str, values: dict, *, user: str, extra: dict | None = None) -> None:
    """A new topic at version 1; `values` holds every editable column."""
    now = _now()
    columns = {**{c: values[c] for c in EDITABLE_COLUMNS}, "extra": extra or {}}
    conn.execute(
        f"INSERT INTO topics(topic_id, {', '.join(columns)}, created_at, created_by, updated_at, updated_by, version)"
        f" VALUES(?, {', '.join('?' * len(columns))}, ?, ?, ?, ?, 1)",
        (topic_id, *(_encode(c, v) for c, v in columns.items()), now, user, now, user))


def update(conn: Connection, topic_id: str, changes: dict, *, user: str) -> None:
    """Set only the `changes` columns, bump the version and say who changed it when."""
    unknown = set(changes) - set(EDITABLE_COLUMNS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    assignments = "".join(f"{column}=?, " for column in changes)
    conn.execute(f"UPDATE topics SET {assignments}version=version+1, updated_at=?, updated_by=? WHERE topic_id=?",
                 (*(_encode(c, v) for c, v in changes.items()), _now(), user, topic_id))


def insert_link(conn: Connection, topic_id: str, kind: str, *, doc_id: str | None, title: str, date: str | None,
                author: str | None, text: str, user: str) -> int:
    """The new link's id."""
    row = conn.execute(
        "INSERT INTO topic_links(topic_id, kind, doc_id, title, date, author, text, created_at, created_by)"
        " VALUES(?,?,?,?,?,?,?,?,?) RETURNING link_id",
        (topic_id, kind, doc_id, title, date, author, text, _now(), user)).fetchone()
    return row["link_id"]


def delete_link(conn: Connection, topic_id: str, link_id: int) -> bool:
    """Whether the topic had that link."""
    return conn.execute("DELETE FROM topic_links WHERE link_id=? AND topic_id=?", (link_id, topic_id)).rowcount > 0
