"""The audit log's rows: every change to documents, topics, packs and notes, with who and when.

`record` is called with the connection of the transaction that makes the change, so the
entry lands with the change or not at all.

The log is a hash chain: each row carries the SHA-256 of its own fields and of the row
before it, and the newest row's id and hash are kept as the chain's head (in `settings`).
Editing a row, deleting one in the middle or at the end breaks the chain where it happened,
and `chain_problems` (run by `kb doctor`) names the place. The database also refuses UPDATE
and DELETE on the table (a trigger in SQLite; roles and a trigger in PostgreSQL). Someone who
rewrites the whole chain with the file in hand is not caught by this alone: keep backups.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

HEAD_KEY = "audit_head"
GENESIS = "0" * 64


@dataclass
class AuditEntry:
    id: int
    at: str
    user: str
    role: str
    action: str
    target_type: str
    target_id: str | None
    detail: dict


def row_hash(prev_hash: str, at: str, user: str, role: str, action: str, target_type: str,
             target_id: str | None, detail: str) -> str:
    """The hash a row must carry: its fields (detail as stored) chained to the row before it."""
    fields = json.dumps([prev_hash, at, user, role, action, target_type, target_id, detail], ensure_ascii=False)
    return hashlib.sha256(fields.encode("utf-8")).hexdigest()


def _head(conn) -> str:
    row = conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    return (row["hash"] if row else None) or GENESIS


def _set_head(conn, row_id: int, digest: str) -> None:
    conn.execute("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (HEAD_KEY, f"{row_id}:{digest}"))


def record(conn, user, action: str, target_type: str, target_id: str | None = None, **detail) -> None:
    """Append one entry inside the caller's (write) transaction, chained to the one before."""
    at = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = json.dumps(detail, ensure_ascii=False, default=str)
    prev = _head(conn)
    digest = row_hash(prev, at, user.name, user.role, action, target_type, target_id, text)
    row = conn.execute(
        "INSERT INTO audit_log(at, user, role, action, target_type, target_id, detail, prev_hash, hash) "
        "VALUES(?,?,?,?,?,?,?,?,?) RETURNING id",
        (at, user.name, user.role, action, target_type, target_id, text, prev, digest)).fetchone()
    _set_head(conn, row["id"], digest)


def seal_existing(conn) -> int:
    """Chain the rows written before the chain existed (migration): returns how many."""
    prev, count, last = GENESIS, 0, None
    rows = conn.execute("SELECT id, at, user, role, action, target_type, target_id, detail FROM audit_log "
                        "ORDER BY id").fetchall()
    for r in rows:
        digest = row_hash(prev, r["at"], r["user"], r["role"], r["action"], r["target_type"], r["target_id"],
                          r["detail"])
        conn.execute("UPDATE audit_log SET prev_hash=?, hash=? WHERE id=?", (prev, digest, r["id"]))
        prev, count, last = digest, count + 1, r["id"]
    if last is not None:
        _set_head(conn, last, prev)
    return count


def chain_problems(conn) -> list[str]:
    """Where the audit chain is broken (an edited, inserted or deleted row), first break first."""
    problems: list[str] = []
    prev, last_id = GENESIS, None
    for r in conn.execute("SELECT * FROM audit_log ORDER BY id"):
        if r["prev_hash"] != prev:
            problems.append(f"操作记录第 {r['id']} 条之前的记录被删除或改动（链条在此断开）")
        digest = row_hash(r["prev_hash"] or "", r["at"], r["user"], r["role"], r["action"], r["target_type"],
                          r["target_id"], r["detail"])
        if digest != r["hash"]:
            problems.append(f"操作记录第 {r['id']} 条（{r['at']} {r['user']} {r['action']}）的内容被改动")
        prev, last_id = r["hash"] or "", r["id"]
        if len(problems) >= 5:
            return problems
    head = conn.execute("SELECT value FROM settings WHERE key=?", (HEAD_KEY,)).fetchone()
    if head is not None and head["value"] != f"{last_id}:{prev}":
        problems.append(f"最新的操作记录（第 {head['value'].split(':')[0]} 条）不见了：记录末尾被删除")
    elif head is None and last_id is not None:
        problems.append("操作记录的链头不见了：记录可能被改动")
    return problems


def entries(conn, *, target_type: str | None = None, target_id: str | None = None, user: str | None = None,
            action: str | None = None, limit: int | None = 200) -> list[AuditEntry]:
    """Newest first."""
    clauses, params = [], []
    for column, value in (("target_type", target_type), ("target_id", target_id), ("user", user),
                          ("action", action)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = " AND ".join(clauses) or "TRUE"
    if limit is not None:
        params.append(int(limit))
    rows = conn.execute(f"SELECT * FROM audit_log WHERE {where} ORDER BY id DESC"
                        + ("" if limit is None else " LIMIT ?"), params)
    return [AuditEntry(r["id"], r["at"], r["user"], r["role"], r["action"], r["target_type"], r["target_id"],
                       json.loads(r["detail"])) for r in rows]
