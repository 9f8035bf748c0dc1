"""The stores opencode keeps sessions in, and which one each session of a database lives in now.

Per database: 1.x only, 2.0 only (a fresh 2.0 install), or both (upgraded: 2.0's importer copied the 1.x
sessions into its tables at its first start and left the 1.x tables frozen). A session with a ``session_v2``
row lives in 2.0, its 1.x rows are a stale copy. A session only in the 1.x tables lives in 1.x (written by a
1.x client after the import, or not imported yet) — unless 2.0 deleted it: the backup holds it as a 2.0
session, or it existed when the import started (the importer copies every session there is) and the import
completed. Then its leftover 1.x rows do not bring it back to life. One session, one store, one count.
Runs on the caller's thread and connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from app.opencode.schema import Schema
from app.opencode.store import V1, Store
from app.opencode.store_v2 import V2

STORES = (V2, V1)  # where a session is in both, it lives in 2.0
BY_TAG = {s.tag: s for s in STORES}
BY_FORMAT = {s.format: s for s in STORES}
ROOTS = frozenset(s.root for s in STORES)
# 2.0's one-shot importer keeps its progress in kv under this key; its last phase is "completed"
IMPORT_MARKER = "migration.v1-v2"


@dataclass(frozen=True)
class Live:
    """The sessions opencode shows now: id -> mark (the cheap part of its fingerprint), and which of them
    live in 2.0's tables (the others in 1.x's)."""

    marks: dict[str, str]
    in_v2: frozenset[str]

    def store_of(self, session_id: str) -> Store:
        return V2 if session_id in self.in_v2 else V1


def stores_in(schema: Schema) -> tuple[Store, ...]:
    """The stores ``schema`` has tables for, 2.0 first."""
    return tuple(s for s in STORES if s.present(schema))


def live(conn: sqlite3.Connection, schema: Schema, backed_up: Callable[[str], str | None]) -> Live:
    """Every session opencode shows, each in the store it lives in (see the module's docstring).
    ``backed_up``: the tag of the store the backup holds a session from (None: it does not)."""
    marks: dict[str, str] = {}
    in_v2: frozenset[str] = frozenset()
    if V2.present(schema):
        marks = dict(conn.execute(V2.marks_sql(schema)))
        in_v2 = frozenset(marks)
    if V1.present(schema):
        sql, params = V1.marks_sql(schema), tuple[int, ...]()
        if in_v2 or V2.present(schema):
            # 0.2 ms with the primary key index, where a set difference in Python over 1,800 took more
            sql += f" WHERE id NOT IN (SELECT id FROM {V2.root})"
            started = import_started(conn, schema)
            if started is not None and "time_created" in schema.columns[V1.root]:
                sql += " AND time_created >= ?"
                params = (started,)
        only_v1 = dict(conn.execute(sql, params))
        if V2.present(schema):  # asked of the few sessions only the 1.x tables hold, not of all 1,800
            for sid in [sid for sid in only_v1 if backed_up(sid) == V2.tag]:
                del only_v1[sid]
        marks.update(only_v1)
    return Live(marks, in_v2)


def import_started(conn: sqlite3.Connection, schema: Schema) -> int | None:
    """When 2.0's importer started (ms), if it has completed: every 1.x session older than that was
    copied into 2.0. None when it has not run or not finished."""
    if "kv" not in schema.columns:
        return None
    row = conn.execute("SELECT value, time_created FROM kv WHERE key = ?", (IMPORT_MARKER,)).fetchone()
    if row is None or not isinstance(row[1], int):
        return None
    try:
        state = json.loads(row[0]) if isinstance(row[0], str) else None
    except ValueError:
        return None
    return row[1] if isinstance(state, dict) and state.get("phase") == "completed" else None
