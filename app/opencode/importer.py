"""Put a session's rows back into a live opencode database, mapped by column name onto its schema.

Parents before children (the order comes from the live schema's foreign keys), one transaction
per session, foreign keys on. Rows already present are left alone unless the session is being
replaced, in which case its own rows are deleted first inside the same transaction.
Runs on the caller's thread; the connection is the caller's.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.opencode.schema import SECRET_TABLES, SOFT_SESSION_LINKS, Schema, quote, read_schema

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # opencode serve may hold the write lock for a moment (WAL: one writer at a time)


class SessionNotMappable(Exception):
    """A session's rows cannot be put into this database's schema; ``str(e)`` is one line."""


@dataclass(frozen=True)
class LiveSchema:
    """The live database's tables with what mapping needs: insert order and required columns."""

    schema: Schema
    order: tuple[str, ...]
    required: dict[str, frozenset[str]]  # NOT NULL columns without a default (and not an integer pk)


@dataclass
class Mapped:
    """One session's rows mapped onto the live schema, in insert order, plus notes for the user."""

    session_id: str
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def open_writable(db: Path) -> sqlite3.Connection:
    """A connection for restoring into ``db``: autocommit mode (we BEGIN ourselves), busy timeout, FKs on."""
    conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def live_schema(conn: sqlite3.Connection) -> LiveSchema:
    """Read the live schema and derive the parent-first table order from its foreign keys."""
    schema = read_schema(conn)
    required: dict[str, frozenset[str]] = {}
    for table in schema.columns:
        info = conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        required[table] = frozenset(
            r[1] for r in info if r[3] and r[4] is None and not (r[5] and str(r[2]).upper() == "INTEGER")
        )
    return LiveSchema(schema, table_order(schema), required)


def table_order(schema: Schema) -> tuple[str, ...]:
    """Tables sorted so every parent (foreign key or known soft link) comes before its children."""
    parents: dict[str, set[str]] = {t: set() for t in schema.columns}
    for fk in schema.foreign_keys:
        if fk.table in parents and fk.parent in parents and fk.parent != fk.table:
            parents[fk.table].add(fk.parent)
    for table, _column in SOFT_SESSION_LINKS:
        if table in parents and "session" in parents:
            parents[table].add("session")
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(parents):
        ready = sorted(t for t, ps in parents.items() if t not in done and ps <= done)
        if not ready:  # a cycle: take the rest alphabetically rather than loop forever
            ready = sorted(t for t in parents if t not in done)
        order.extend(ready)
        done.update(ready)
    return tuple(order)


def map_session(live: LiveSchema, session_id: str, rows: dict[str, list[dict[str, Any]]]) -> Mapped:
    """Map a session's rows by column name; raise SessionNotMappable when a required column is missing."""
    out = Mapped(session_id)
    for table, given in rows.items():
        if table not in live.schema.columns and given:
            out.notes.append(f"table {table} is not in this opencode's database; its rows were left out")
    for table in live.order:
        table_rows = rows.get(table)
        if not table_rows or table in SECRET_TABLES:
            continue
        live_cols = live.schema.columns[table]
        present = sorted({c for r in table_rows for c in r})
        dropped = [c for c in present if c not in live_cols]
        if dropped:
            out.notes.append(f"{table}: column(s) {', '.join(dropped)} not in this opencode; dropped")
        cols = tuple(c for c in live_cols if c in present)
        for row in table_rows:
            missing = sorted(c for c in live.required[table] if row.get(c) is None)
            if missing:
                raise SessionNotMappable(
                    f"session {session_id}: {table} needs column(s) {', '.join(missing)} "
                    "that the backup does not have (opencode's schema changed too much)"
                )
        out.tables.append((table, cols, [tuple(r.get(c) for c in cols) for r in table_rows]))
    return out


def owned_tables(live: LiveSchema) -> list[tuple[str, str]]:
    """(table, column) pairs whose rows belong to one session, children first (for deleting)."""
    pairs: list[tuple[str, str]] = []
    for table in reversed(live.order):
        cols = live.schema.columns[table]
        if table == "session":
            pairs.append((table, "id"))
        elif "session_id" in cols and table not in SECRET_TABLES:
            pairs.append((table, "session_id"))
        elif (table, "aggregate_id") in SOFT_SESSION_LINKS or (table == "event" and "aggregate_id" in cols):
            pairs.append((table, "aggregate_id"))
    return pairs


def apply_session(conn: sqlite3.Connection, live: LiveSchema, mapped: Mapped, *, replace: bool) -> int:
    """Insert one session's rows in one transaction (``replace``: delete its rows first). Returns rows added.

    Foreign keys are on, so a row whose parent is missing fails its INSERT immediately.
    Raises sqlite3.Error (the transaction is rolled back) when the rows do not fit.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if replace:
            for table, column in owned_tables(live):
                conn.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} = ?", (mapped.session_id,))
        added = 0
        for table, cols, values in mapped.tables:
            sql = (
                f"INSERT OR IGNORE INTO {quote(table)} ({', '.join(quote(c) for c in cols)}) "
                f"VALUES ({', '.join('?' * len(cols))})"
            )
            before = conn.total_changes
            conn.executemany(sql, values)
            added += conn.total_changes - before
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("restored session %s: %d row(s) added", mapped.session_id, added)
    return added
