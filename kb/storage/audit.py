"""The audit log's rows: every change to documents, topics, packs and notes, with who and when.

`record` is called with the connection of the transaction that makes the change, so the
entry lands with the change or not at all."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass


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


def record(conn, user, action: str, target_type: str, target_id: str | None = None, **detail) -> None:
    """Append one entry inside the caller's transaction."""
    conn.execute(
        "INSERT INTO audit_log(at, user, role, action, target_type, target_id, detail) VALUES(?,?,?,?,?,?,?)",
        (time.strftime("%Y-%m-%dT%H:%M:%S"), user.name, user.role, action, target_type, target_id,
         json.dumps(detail, ensure_ascii=False, default=str)))


def entries(conn, *, target_type: str | None = None, target_id: str | None = None, user: str | None = None,
            action: str | None = None, limit: int | None = 200) -> list[AuditEntry]:
    """Newest first."""
    clauses, params = [], []
    for column, value in (("target_type", target_type), ("target_id", target_id), ("user", user),
                          ("action", action)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = " AND ".join(clauses) or "1"
    rows = conn.execute(f"SELECT * FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ?",
                        (*params, -1 if limit is None else int(limit)))
    return [AuditEntry(r["id"], r["at"], r["user"], r["role"], r["action"], r["target_type"], r["target_id"],
                       json.loads(r["detail"])) for r in rows]
