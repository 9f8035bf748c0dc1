"""opencode 2.0's store: ``session_v2`` and its event-sourced tables (2.0.3 … 2.0.26 and on).

A session is its ``session_v2`` row (project by foreign key), its ``session_message`` rows (a message with its
parts folded into ``data``, numbered by ``seq``, updated in place while a reply streams), its event log
(``event``) and watermark (``event_sequence``, keyed by the session id with no declared foreign key), its
queued prompts (``session_pending``, ``session_inbox``) and instructions (``instruction_entry``,
``instruction_state``, and the shared ``instruction_blob`` rows those name by hash).

Change detection: every change 2.0 makes is an event, and each event raises the session's watermark, so the
mark of a session is its ``time_updated`` and watermark; a session in use also gets the count and latest
``time_updated`` of its messages (a reply streaming into a row changes those, not the count).

A restore (checked on an OpenCode 2 preview build): the rows alone show the history, but the next prompt is
numbered from the watermark, collides with ``UNIQUE(session_id, seq)`` and the turn fails; so the watermark is
raised to at least the highest seq the session uses, owned by no process, never lowered; and the fields that
say a process is running or resuming the session are cleared. Runs on the caller's thread and connection.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from app.opencode import convert
from app.opencode.schema import Schema, quote
from app.opencode.store import Named, Store

# (table, owner column, seq column): every place a session uses a sequence number
SEQUENCES = (
    ("session_message", "session_id", "seq"),
    ("event", "aggregate_id", "seq"),
    ("session_pending", "session_id", "admitted_seq"),
    ("session_inbox", "session_id", "enqueued_seq"),
)
# session_v2 columns that say a process is running or resuming the session, and their idle values
CLAIMS = (("time_suspended", None), ("resume_attempts", 0), ("time_compacting", None))
# session_v2 columns the importer copies from a 1.x ``session`` row (v1-migration.bun.ts, 2.0.26)
IMPORTED = (
    "id", "project_id", "workspace_id", "parent_id", "slug", "directory", "path", "title", "version",
    "share_url", "summary_additions", "summary_deletions", "summary_files", "summary_diffs", "metadata",
    "cost", "tokens_input", "tokens_output", "tokens_reasoning", "tokens_cache_read", "tokens_cache_write",
    "revert", "permission", "agent", "model", "time_created", "time_updated", "time_compacting",
    "time_archived",
)  # fmt: skip
GLOBAL_PROJECT = "global"  # where the importer puts a session whose project is gone


@dataclass(frozen=True)
class V2Store(Store):
    """opencode 2.0's sessions (see the module's docstring)."""

    def marks_sql(self, schema: Schema) -> str:
        if "seq" not in schema.columns.get("event_sequence", ()):
            return super().marks_sql(schema)
        return (
            "SELECT s.id, s.time_updated || '@' || coalesce(e.seq, -1) "
            f"FROM {quote(self.root)} s LEFT JOIN event_sequence e ON e.aggregate_id = s.id"
        )

    def watermark(self, conn: sqlite3.Connection, session_id: str) -> int | None:
        try:
            row = conn.execute(
                "SELECT seq FROM event_sequence WHERE aggregate_id = ?", (session_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: nothing to keep
            return None
        return row[0] if row and isinstance(row[0], int) else None

    def after_restore(self, conn: sqlite3.Connection, session_id: str, watermark: int | None) -> None:
        """Raise the watermark to the highest seq the session uses (and ``watermark``, what it was before a
        replace), owner none; clear the running and resuming fields of the session row."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "event_sequence" not in tables:
            return
        highest = [watermark] if watermark is not None else []
        for table, owner, seq in SEQUENCES:
            if table in tables:
                sql = f"SELECT max({quote(seq)}) FROM {quote(table)} WHERE {quote(owner)} = ?"
                highest.append(conn.execute(sql, (session_id,)).fetchone()[0])
        top = max((h for h in highest if isinstance(h, int)), default=None)
        if top is not None:
            conn.execute(
                "INSERT INTO event_sequence (aggregate_id, seq, owner_id) VALUES (?, ?, NULL) "
                "ON CONFLICT (aggregate_id) DO UPDATE SET seq = max(event_sequence.seq, excluded.seq), "
                "owner_id = NULL",
                (session_id, top),
            )
        else:
            conn.execute("UPDATE event_sequence SET owner_id = NULL WHERE aggregate_id = ?", (session_id,))
        columns = {r[1] for r in conn.execute(f"PRAGMA table_info({quote(self.root)})")}
        idle = [(c, v) for c, v in CLAIMS if c in columns]
        if idle:
            sets = ", ".join(f"{quote(c)} = ?" for c, _v in idle)
            values = (*(v for _c, v in idle), session_id)
            conn.execute(f"UPDATE {quote(self.root)} SET {sets} WHERE id = ?", values)


def converted_rows(
    v1_rows: dict[str, list[dict[str, Any]]], projects: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """A 1.x session's rows (its ``session``, ``message``, ``part`` rows) as 2.0 rows: its ``session_v2``
    row, ``session_message`` rows and watermark, as 2.0's importer writes them; ``projects`` are the project
    ids the target has or gets from the file (else the session goes to the ``global`` project, as there)."""
    session = v1_rows["session"][0]
    done = convert.convert_session(session, v1_rows.get("message", []), v1_rows.get("part", []))
    row = {c: session.get(c) for c in IMPORTED}
    row |= done.session | {"revert": None, "permission": None, "time_compacting": None}
    out: dict[str, list[dict[str, Any]]] = {}
    if row["project_id"] not in projects:
        row["project_id"] = GLOBAL_PROJECT
        if GLOBAL_PROJECT not in projects:
            now = int(time.time() * 1000)
            out["project"] = [
                {"id": GLOBAL_PROJECT, "worktree": "/", "time_created": now, "time_updated": now,
                 "time_active": now, "sandboxes": "[]"}
            ]  # fmt: skip
    out["session_v2"] = [row]
    out["session_message"] = done.messages
    if done.watermark >= 0:
        out["event_sequence"] = [{"aggregate_id": session.get("id"), "seq": done.watermark, "owner_id": None}]
    return out


V2 = V2Store(
    tag="v2",
    root="session_v2",
    format="opencode-session-backup/2",
    # the watermark and the log carry the session id; ``event`` is reached through its foreign key on
    # event_sequence where it has one (2.0.26 does), directly where a later schema drops that key
    soft_links=(("event_sequence", "aggregate_id"), ("event", "aggregate_id")),
    activity=("session_message",),
    needs="opencode 2.0 or newer",
    named=(
        Named(
            "instruction_blob",
            "hash",
            (("instruction_state", "initial_values"), ("instruction_state", "current_values")),
        ),
    ),
)
