"""The database schema, as numbered migrations. `PRAGMA user_version` holds the last one applied
(on PostgreSQL, the table `kb_schema`; `kb.storage.pg` translates the SQL below).

Add a migration at the end; never edit one that has shipped. Each runs in its own
transaction together with the version bump, after `Database` has copied the file.
Version 0 is a knowledge base from before migrations existed: its tables were made
with CREATE TABLE IF NOT EXISTS by several modules, so migration 1 is written the same way.
"""
from __future__ import annotations

import sqlite3
from typing import Callable

# "XSKB" in the file header: tells our database from another program's.
APPLICATION_ID = 0x58534B42

_BASELINE = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    file_hash TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    issuer TEXT, doc_number TEXT, date TEXT, level TEXT, region TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    validity TEXT NOT NULL DEFAULT 'in_force',
    replaced_by TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    text TEXT NOT NULL,
    pages TEXT NOT NULL DEFAULT '[]',
    encoding TEXT,
    indexed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    label TEXT NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    tokens TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topics (
    topic_id TEXT PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL,
    year INTEGER,
    lead TEXT,
    sectors TEXT NOT NULL DEFAULT '[]',
    keywords TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 1,
    step_dates TEXT NOT NULL DEFAULT '{}',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS topic_links (
    link_id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic_id TEXT NOT NULL REFERENCES topics(topic_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    doc_id TEXT,
    title TEXT NOT NULL DEFAULT '',
    date TEXT,
    author TEXT,
    text TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS topic_links_topic ON topic_links(topic_id);
CREATE TABLE IF NOT EXISTS pack_versions (
    topic_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    change TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    content TEXT NOT NULL,
    PRIMARY KEY (topic_id, version)
);
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


def _statements(script: str) -> list[str]:
    # Statement by statement: executescript() would COMMIT the migration's transaction.
    return [s for s in (part.strip() for part in script.split(";")) if s]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    if hasattr(conn, "table_columns"):  # PostgreSQL (kb.storage.pg): from information_schema
        return conn.table_columns(table)
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    present = _columns(conn, table)
    for name, kind in columns.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _m1_baseline(conn: sqlite3.Connection) -> None:
    for statement in _statements(_BASELINE):
        conn.execute(statement)
    # sentence vectors came after the first knowledge bases
    _add_columns(conn, "chunks", {"sentences": "TEXT", "sentence_vectors": "BLOB"})


def _m2_generations_and_versions(conn: sqlite3.Connection) -> None:
    # Chunks are retired, not deleted, until a published generation no longer points at them;
    # a retired chunk whose document text changed keeps its passage.
    _add_columns(conn, "chunks", {"retired": "INTEGER NOT NULL DEFAULT 0", "passage": "TEXT"})
    conn.execute("CREATE INDEX IF NOT EXISTS chunks_retired ON chunks(retired) WHERE retired <> 0")
    # A document being (re)built: the file hash it is being built from, the rebuild it belongs to,
    # and whether it waits for the next publish to be removed.
    _add_columns(conn, "documents", {"building_hash": "TEXT", "build_token": "TEXT",
                                     "removed": "INTEGER NOT NULL DEFAULT 0"})
    # Topics carry the version an edit was made on, and who made the last one.
    _add_columns(conn, "topics", {"version": "INTEGER NOT NULL DEFAULT 1", "updated_by": "TEXT"})
    conn.execute("UPDATE topics SET updated_by = created_by WHERE updated_by IS NULL")
    conn.execute("CREATE INDEX IF NOT EXISTS audit_at ON audit_log(at)")


# Audit actions from before every action was named `target.verb` (see `kb.audit.ACTION_LABELS`).
_OLD_ACTION_NAMES = {"index": "document.index", "note_add": "note.add", "note_reply": "note.reply",
                     "note_import": "note.import", "note_reanchor": "note.reanchor"}


def _m3_audit_action_names(conn: sqlite3.Connection) -> None:
    for old, new in _OLD_ACTION_NAMES.items():
        conn.execute("UPDATE audit_log SET action=? WHERE action=?", (new, old))


def _m4_note_review(conn: sqlite3.Connection) -> None:
    # Staff review every note before it reaches members: pending (待审), accepted (采纳入汇编) or
    # internal (仅内部参考). Notes written before review existed wait for a decision like new ones.
    _add_columns(conn, "expert_notes", {"review": "TEXT NOT NULL DEFAULT 'pending'", "reviewed_by": "TEXT",
                                        "reviewed_at": "TEXT", "review_reason": "TEXT NOT NULL DEFAULT ''"})


def _m5_audit_chain(conn: sqlite3.Connection) -> None:
    # Each audit row carries the hash of its fields chained to the row before (kb.storage.audit);
    # rows already there are sealed now. The table only ever grows: SQLite refuses UPDATE and DELETE.
    from .audit import seal_existing

    _add_columns(conn, "audit_log", {"prev_hash": "TEXT", "hash": "TEXT"})
    sqlite = isinstance(conn, sqlite3.Connection)  # PostgreSQL gets its own trigger and grants
    verbs = ("update", "delete")
    if sqlite:  # sealing is the one update the log ever gets (a file migrated again has the guard already)
        for verb in verbs:
            conn.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{verb}")
    seal_existing(conn)
    if sqlite:
        for verb in verbs:
            conn.execute(f"CREATE TRIGGER audit_log_no_{verb} BEFORE {verb.upper()} ON audit_log "
                         "BEGIN SELECT RAISE(ABORT, '操作记录只能追加，不能修改或删除'); END")


# The consultation cycle (协商全流程): the eight steps as a plan, research tasks, the 履职菜单 sign-ups,
# speeches, the minutes (every version), proposals and what became of them (批示、交办、办理、回头看).
# Portable SQL only (a PostgreSQL backend runs the same statements): TEXT ids made in Python, JSON as TEXT.
_CYCLE = """
CREATE TABLE IF NOT EXISTS cycle_steps (
    topic_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    owner TEXT,
    due TEXT,
    done TEXT,
    note TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (topic_id, step)
);
CREATE TABLE IF NOT EXISTS cycle_tasks (
    task_id TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    place TEXT,
    date TEXT,
    members TEXT NOT NULL DEFAULT '[]',
    material TEXT NOT NULL DEFAULT '',
    assignee TEXT,
    status TEXT NOT NULL,
    report TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cycle_tasks_topic ON cycle_tasks(topic_id);
CREATE TABLE IF NOT EXISTS cycle_signups (
    topic_id TEXT NOT NULL,
    member TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    confirmed_by TEXT,
    confirmed_at TEXT,
    PRIMARY KEY (topic_id, member)
);
CREATE TABLE IF NOT EXISTS cycle_speeches (
    speech_id TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    speaker TEXT NOT NULL,
    speaker_role TEXT NOT NULL,
    affiliation TEXT NOT NULL DEFAULT '',
    theme TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    proposals TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cycle_speeches_topic ON cycle_speeches(topic_id, ordinal);
CREATE TABLE IF NOT EXISTS cycle_minutes (
    topic_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    content TEXT NOT NULL,
    change TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (topic_id, version)
);
CREATE TABLE IF NOT EXISTS cycle_proposals (
    proposal_id TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    theme TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '{}',
    citation TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cycle_proposals_topic ON cycle_proposals(topic_id, ordinal);
CREATE TABLE IF NOT EXISTS cycle_instructions (
    instruction_id TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL,
    proposal_id TEXT,
    leader TEXT NOT NULL,
    date TEXT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cycle_instructions_topic ON cycle_instructions(topic_id);
CREATE TABLE IF NOT EXISTS cycle_handling (
    entry_id TEXT PRIMARY KEY,
    proposal_id TEXT NOT NULL,
    department TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    date TEXT,
    reply TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cycle_handling_proposal ON cycle_handling(proposal_id, department, seq);
CREATE TABLE IF NOT EXISTS cycle_reviews (
    review_id TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL,
    date TEXT,
    reviewer TEXT NOT NULL DEFAULT '',
    findings TEXT NOT NULL,
    rating TEXT NOT NULL DEFAULT '',
    followup TEXT NOT NULL DEFAULT '',
    next_topic_id TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cycle_reviews_topic ON cycle_reviews(topic_id)
"""


def _m6_consultation_cycle(conn: sqlite3.Connection) -> None:
    for statement in _statements(_CYCLE):
        conn.execute(statement)


def _m7_compact_chunks(conn: sqlite3.Connection) -> None:
    # A chunk's keyword words, deflated (`tokens` stays '' for rows written from now on; rows
    # written before keep their words there and are read as they are). See kb.storage.documents.
    _add_columns(conn, "chunks", {"words": "BLOB"})


Migration = tuple[int, str, Callable[[sqlite3.Connection], None]]
MIGRATIONS: list[Migration] = [
    (1, "documents, chunks, topics, packs, notes, audit (the schema before migrations)", _m1_baseline),
    (2, "chunk generations, resumable documents, topic versions", _m2_generations_and_versions),
    (3, "audit actions named target.verb", _m3_audit_action_names),
    (4, "staff review of expert notes", _m4_note_review),
    (5, "audit log as a hash chain, append-only", _m5_audit_chain),
    (6, "the consultation cycle: plan, tasks, speeches, minutes, proposals and outcomes", _m6_consultation_cycle),
    (7, "compact chunks: keyword words deflated", _m7_compact_chunks),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
