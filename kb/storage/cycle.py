"""The rows of the consultation cycle (协商全流程): each topic's eight steps as a plan, its research
tasks and 履职菜单 sign-ups, the meeting's speeches, every version of the minutes (协商纪要), the
proposals of the minutes, leaders' instructions (批示), the departments' handling of each proposal
and the 回头看 reviews.

Plain functions on a connection; writers run inside `Database.write`. The SQL is portable (a
PostgreSQL backend runs the same statements): `?` placeholders, TEXT ids made by the caller,
JSON kept as TEXT and decoded here, upserts as INSERT … ON CONFLICT … DO UPDATE.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .database import Connection


def now() -> str:
    """Local time to the second, as every other table stores it (2025-07-02T09:30:00)."""
    return dt.datetime.now().isoformat(timespec="seconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _decoded(row, *columns: str) -> dict:
    data = dict(row)
    for column in columns:
        data[column] = json.loads(data[column] or "null")
    return data


# -- the eight steps -------------------------------------------------------------------
def step_rows(conn: Connection, topic_id: str) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT * FROM cycle_steps WHERE topic_id=? ORDER BY step", (topic_id,))]


def all_step_rows(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT * FROM cycle_steps ORDER BY topic_id, step")]


def upsert_step(conn: Connection, topic_id: str, step: int, values: dict, *, user: str) -> None:
    """Set owner, due, done and note of one step (all four: the caller merges with what is stored)."""
    conn.execute(
        "INSERT INTO cycle_steps(topic_id, step, owner, due, done, note, updated_at, updated_by)"
        " VALUES(?,?,?,?,?,?,?,?) ON CONFLICT (topic_id, step) DO UPDATE SET owner = excluded.owner,"
        " due = excluded.due, done = excluded.done, note = excluded.note, updated_at = excluded.updated_at,"
        " updated_by = excluded.updated_by",
        (topic_id, step, values.get("owner"), values.get("due"), values.get("done"), values.get("note") or "",
         now(), user))


# -- research tasks ----------------------------------------------------------------------
_TASK_COLUMNS = ("topic_id", "kind", "title", "place", "date", "members", "material", "assignee", "status", "report")


def task_rows(conn: Connection, topic_id: str | None = None) -> list[dict]:
    sql = "SELECT * FROM cycle_tasks" + (" WHERE topic_id=?" if topic_id else "") + " ORDER BY date, title"
    return [_decoded(r, "members") for r in conn.execute(sql, (topic_id,) if topic_id else ())]


def task_row(conn: Connection, task_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM cycle_tasks WHERE task_id=?", (task_id,)).fetchone()
    return _decoded(row, "members") if row else None


def insert_task(conn: Connection, task_id: str, values: dict, *, user: str) -> bool:
    """False when a task with this id is there already (imports run twice change nothing)."""
    at = now()
    cursor = conn.execute(
        f"INSERT INTO cycle_tasks(task_id, {', '.join(_TASK_COLUMNS)}, created_at, created_by, updated_at, updated_by)"
        f" VALUES(?, {', '.join('?' * len(_TASK_COLUMNS))}, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
        (task_id, *(_json(values[c]) if c == "members" else values.get(c) for c in _TASK_COLUMNS), at, user, at, user))
    return cursor.rowcount > 0


def update_task(conn: Connection, task_id: str, changes: dict, *, user: str) -> None:
    allowed = set(_TASK_COLUMNS) - {"topic_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    sets = "".join(f"{c}=?, " for c in changes)
    conn.execute(f"UPDATE cycle_tasks SET {sets}updated_at=?, updated_by=? WHERE task_id=?",
                 (*(_json(v) if c == "members" else v for c, v in changes.items()), now(), user, task_id))


# -- 履职菜单 sign-ups ----------------------------------------------------------------------
def signup_rows(conn: Connection, topic_id: str | None = None) -> list[dict]:
    sql = "SELECT * FROM cycle_signups" + (" WHERE topic_id=?" if topic_id else "") + " ORDER BY created_at, member"
    return [dict(r) for r in conn.execute(sql, (topic_id,) if topic_id else ())]


def upsert_signup(conn: Connection, topic_id: str, member: str, status: str, *, confirmed_by: str | None = None) -> None:
    conn.execute(
        "INSERT INTO cycle_signups(topic_id, member, status, created_at, confirmed_by, confirmed_at)"
        " VALUES(?,?,?,?,?,?) ON CONFLICT (topic_id, member) DO UPDATE SET status = excluded.status,"
        " confirmed_by = excluded.confirmed_by, confirmed_at = excluded.confirmed_at",
        (topic_id, member, status, now(), confirmed_by, now() if confirmed_by else None))


# -- speeches ----------------------------------------------------------------------------
def speech_rows(conn: Connection, topic_id: str) -> list[dict]:
    return [_decoded(r, "proposals") for r in
            conn.execute("SELECT * FROM cycle_speeches WHERE topic_id=? ORDER BY ordinal, speech_id", (topic_id,))]


def insert_speech(conn: Connection, speech_id: str, topic_id: str, values: dict, *, user: str) -> bool:
    """Appended after the topic's other speeches; False when it is there already."""
    ordinal = conn.execute("SELECT COALESCE(MAX(ordinal), 0) + 1 FROM cycle_speeches WHERE topic_id=?",
                           (topic_id,)).fetchone()[0]
    cursor = conn.execute(
        "INSERT INTO cycle_speeches(speech_id, topic_id, ordinal, speaker, speaker_role, affiliation, theme, text,"
        " proposals, created_at, created_by) VALUES(?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (speech_id) DO NOTHING",
        (speech_id, topic_id, ordinal, values["speaker"], values["speaker_role"], values.get("affiliation") or "",
         values.get("theme") or "", values["text"], _json(values.get("proposals") or []), now(), user))
    return cursor.rowcount > 0


def delete_speech(conn: Connection, topic_id: str, speech_id: str) -> bool:
    return conn.execute("DELETE FROM cycle_speeches WHERE speech_id=? AND topic_id=?",
                        (speech_id, topic_id)).rowcount > 0


# -- minutes (every version kept) ---------------------------------------------------------
def minutes_row(conn: Connection, topic_id: str, version: int | None = None) -> dict | None:
    if version is None:
        row = conn.execute("SELECT * FROM cycle_minutes WHERE topic_id=? ORDER BY version DESC LIMIT 1",
                           (topic_id,)).fetchone()
    else:
        row = conn.execute("SELECT * FROM cycle_minutes WHERE topic_id=? AND version=?", (topic_id, version)).fetchone()
    return _decoded(row, "content") if row else None


def minutes_versions(conn: Connection, topic_id: str) -> list[dict]:
    return [dict(r) for r in conn.execute(
        "SELECT topic_id, version, change, created_at, created_by FROM cycle_minutes WHERE topic_id=? ORDER BY version",
        (topic_id,))]


def insert_minutes(conn: Connection, topic_id: str, content: dict, change: str, *, user: str) -> int:
    """The new version's number (one more than the newest)."""
    version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM cycle_minutes WHERE topic_id=?",
                           (topic_id,)).fetchone()[0]
    conn.execute("INSERT INTO cycle_minutes(topic_id, version, content, change, created_at, created_by)"
                 " VALUES(?,?,?,?,?,?)", (topic_id, version, _json(content), change, now(), user))
    return version


# -- proposals -----------------------------------------------------------------------------
def proposal_rows(conn: Connection, topic_id: str | None = None) -> list[dict]:
    sql = "SELECT * FROM cycle_proposals" + (" WHERE topic_id=?" if topic_id else "") + " ORDER BY topic_id, ordinal"
    return [_decoded(r, "source", "citation") for r in conn.execute(sql, (topic_id,) if topic_id else ())]


def proposal_row(conn: Connection, proposal_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM cycle_proposals WHERE proposal_id=?", (proposal_id,)).fetchone()
    return _decoded(row, "source", "citation") if row else None


def upsert_proposal(conn: Connection, proposal_id: str, topic_id: str, ordinal: int, theme: str, text: str,
                    source: dict, citation: dict, *, user: str) -> None:
    """A proposal keeps its id (and so its instructions and handling) when the minutes are redrafted."""
    conn.execute(
        "INSERT INTO cycle_proposals(proposal_id, topic_id, ordinal, theme, text, source, citation, created_at,"
        " created_by) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT (proposal_id) DO UPDATE SET ordinal = excluded.ordinal,"
        " theme = excluded.theme, source = excluded.source, citation = excluded.citation",
        (proposal_id, topic_id, ordinal, theme, text, _json(source), _json(citation), now(), user))


def delete_unused_proposals(conn: Connection, topic_id: str, keep: list[str]) -> int:
    """Drop the topic's proposals that left the minutes and have no instruction or handling yet."""
    placeholders = ", ".join("?" * len(keep)) or "''"
    return conn.execute(
        f"DELETE FROM cycle_proposals WHERE topic_id=? AND proposal_id NOT IN ({placeholders})"
        " AND NOT EXISTS (SELECT 1 FROM cycle_handling h WHERE h.proposal_id = cycle_proposals.proposal_id)"
        " AND NOT EXISTS (SELECT 1 FROM cycle_instructions i WHERE i.proposal_id = cycle_proposals.proposal_id)",
        (topic_id, *keep)).rowcount


# -- instructions, handling, reviews ---------------------------------------------------------
def instruction_rows(conn: Connection, topic_id: str | None = None) -> list[dict]:
    sql = "SELECT * FROM cycle_instructions" + (" WHERE topic_id=?" if topic_id else "") + " ORDER BY date, created_at"
    return [dict(r) for r in conn.execute(sql, (topic_id,) if topic_id else ())]


def insert_instruction(conn: Connection, instruction_id: str, topic_id: str, proposal_id: str | None, leader: str,
                       date: str | None, text: str, *, user: str) -> bool:
    cursor = conn.execute(
        "INSERT INTO cycle_instructions(instruction_id, topic_id, proposal_id, leader, date, text, created_at,"
        " created_by) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT (instruction_id) DO NOTHING",
        (instruction_id, topic_id, proposal_id, leader, date, text, now(), user))
    return cursor.rowcount > 0


def handling_rows(conn: Connection, proposal_ids: list[str] | None = None) -> list[dict]:
    """Every handling entry, per proposal and department in the order they were made."""
    if proposal_ids is not None and not proposal_ids:
        return []
    where = f" WHERE proposal_id IN ({', '.join('?' * len(proposal_ids))})" if proposal_ids else ""
    return [dict(r) for r in conn.execute(
        "SELECT * FROM cycle_handling" + where + " ORDER BY proposal_id, department, seq", tuple(proposal_ids or ()))]


def insert_handling(conn: Connection, entry_id: str, proposal_id: str, department: str, status: str,
                    date: str | None, reply: str, *, user: str) -> None:
    seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM cycle_handling WHERE proposal_id=? AND department=?",
                       (proposal_id, department)).fetchone()[0]
    conn.execute("INSERT INTO cycle_handling(entry_id, proposal_id, department, seq, status, date, reply, created_at,"
                 " created_by) VALUES(?,?,?,?,?,?,?,?,?)",
                 (entry_id, proposal_id, department, seq, status, date, reply, now(), user))


def review_rows(conn: Connection, topic_id: str | None = None) -> list[dict]:
    sql = "SELECT * FROM cycle_reviews" + (" WHERE topic_id=?" if topic_id else "") + " ORDER BY date, created_at"
    return [dict(r) for r in conn.execute(sql, (topic_id,) if topic_id else ())]


def insert_review(conn: Connection, review_id: str, topic_id: str, values: dict, *, user: str) -> bool:
    cursor = conn.execute(
        "INSERT INTO cycle_reviews(review_id, topic_id, date, reviewer, findings, rating, followup, next_topic_id,"
        " created_at, created_by) VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT (review_id) DO NOTHING",
        (review_id, topic_id, values.get("date"), values.get("reviewer") or "", values["findings"],
         values.get("rating") or "", values.get("followup") or "", values.get("next_topic_id"), now(), user))
    return cursor.rowcount > 0
