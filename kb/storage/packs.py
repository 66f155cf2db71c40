"""The rows of briefing packs (调研资料汇编): one row per saved version, each a full snapshot.

A version is never changed once written; an edit adds the next one. The caller reads the
latest version and inserts the next inside one `Database.write` transaction, so two
editors' changes are applied one after the other and the primary key (topic, version)
refuses a second row with the same number."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .database import Connection


@dataclass
class PackRow:
    """One stored version: who saved it, when, what changed, and (unless listed only) its content."""

    topic_id: str
    version: int
    created_at: str
    user: str
    role: str
    change: str
    detail: dict
    content: str | None = None


_HEADER = "topic_id, version, created_at, user, role, change, detail"


def _row(r, with_content: bool = True) -> PackRow:
    return PackRow(r["topic_id"], r["version"], r["created_at"], r["user"], r["role"], r["change"],
                   json.loads(r["detail"]), r["content"] if with_content else None)


def latest(conn: Connection, topic_id: str) -> PackRow | None:
    """The newest version of the topic's pack, None when it has none."""
    r = conn.execute(f"SELECT {_HEADER}, content FROM pack_versions WHERE topic_id=? ORDER BY version DESC LIMIT 1",
                     (topic_id,)).fetchone()
    return _row(r) if r else None


def version(conn: Connection, topic_id: str, number: int) -> PackRow | None:
    r = conn.execute(f"SELECT {_HEADER}, content FROM pack_versions WHERE topic_id=? AND version=?",
                     (topic_id, int(number))).fetchone()
    return _row(r) if r else None


def exists(conn: Connection, topic_id: str) -> bool:
    return conn.execute("SELECT 1 FROM pack_versions WHERE topic_id=? LIMIT 1", (topic_id,)).fetchone() is not None


def history(conn: Connection, topic_id: str) -> list[PackRow]:
    """Every version without its content, newest first."""
    rows = conn.execute(f"SELECT {_HEADER} FROM pack_versions WHERE topic_id=? ORDER BY version DESC", (topic_id,))
    return [_row(r, with_content=False) for r in rows]


def insert(conn: Connection, row: PackRow) -> None:
    """Store a new version; call inside the transaction that read the version before it."""
    conn.execute("INSERT INTO pack_versions(topic_id, version, created_at, user, role, change, detail, content)"
                 " VALUES(?,?,?,?,?,?,?,?)",
                 (row.topic_id, row.version, row.created_at, row.user, row.role, row.change,
                  json.dumps(row.detail, ensure_ascii=False), row.content))
