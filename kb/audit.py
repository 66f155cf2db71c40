"""The audit log: every change to documents, topics, packs and notes, with who and when."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_target ON audit_log(target_type, target_id);
"""


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


def ensure_schema(conn) -> None:
    conn.executescript(_SCHEMA)


def record(conn, user, action: str, target_type: str, target_id: str | None = None, **detail) -> None:
    """Append one entry; call inside the transaction that makes the change, so both land or neither."""
    conn.execute(
        "INSERT INTO audit_log(at, user, role, action, target_type, target_id, detail) VALUES(?,?,?,?,?,?,?)",
        (time.strftime("%Y-%m-%dT%H:%M:%S"), user.name, user.role, action, target_type, target_id,
         json.dumps(detail, ensure_ascii=False, default=str)))


def entries(conn, *, target_type: str | None = None, target_id: str | None = None, user: str | None = None,
            limit: int = 200) -> list[AuditEntry]:
    clauses, params = [], []
    for column, value in (("target_type", target_type), ("target_id", target_id), ("user", user)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = " AND ".join(clauses) or "1"
    rows = conn.execute(f"SELECT * FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit))
    return [AuditEntry(r["id"], r["at"], r["user"], r["role"], r["action"], r["target_type"], r["target_id"],
                       json.loads(r["detail"])) for r in rows]
