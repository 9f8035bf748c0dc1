"""Put a session's rows back into a live opencode database, mapped by column name onto its schema.

Parents before children (the order comes from the live schema's foreign keys), one transaction
per session, foreign keys on. Rows already present are left alone unless the session is being
replaced, in which case its own rows are deleted first inside the same transaction.
Runs on the caller's thread; the connection is the caller's.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.opencode.schema import (
    SECRET_COLUMNS,
    SECRET_TABLES,
    SOFT_SESSION_LINKS,
    ForeignKey,
    Schema,
    quote,
    read_schema,
)

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # opencode serve may hold the write lock for a moment (WAL: one writer at a time)


class SessionNotMappable(Exception):
    """A session's rows cannot be put into this database's schema; ``str(e)`` is one line."""


class SessionRefused(SessionNotMappable):
    """A session file reaches outside its own session (rows of other tables or sessions); never applied."""


@dataclass(frozen=True)
class LiveSchema:
    """The live database's tables with what mapping needs: insert order, required columns, and the
    tables a session file may hold: ``children`` (rows that belong to a session, found from the foreign
    keys) and ``parents`` (the rows a session needs, such as its project)."""

    schema: Schema
    order: tuple[str, ...]
    required: dict[str, frozenset[str]]  # NOT NULL columns without a default (and not an integer pk)
    children: frozenset[str] = frozenset()
    parents: frozenset[str] = frozenset()


@dataclass
class Mapped:
    """One session's rows mapped onto the live schema, in insert order, plus notes for the user."""

    session_id: str
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def open_writable(db: Path, *, uri: bool = False) -> sqlite3.Connection:
    """A connection for restoring into ``db``: autocommit mode (we BEGIN ourselves), busy timeout, FKs on.
    ``uri``: opened by URI, so that ATTACH of ``file:...?mode=ro`` URIs works on it."""
    target = db.resolve().as_uri() if uri else db
    conn = sqlite3.connect(
        target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, uri=uri
    )
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
    children, parents = session_closure(schema)
    return LiveSchema(schema, table_order(schema), required, children, parents)


def session_closure(schema: Schema) -> tuple[frozenset[str], frozenset[str]]:
    """(tables whose rows belong to a session, tables a session's rows point at), from the foreign keys."""
    children: set[str] = set()
    stack = ["session"]
    while stack:
        for fk in schema.children_of(stack.pop()):
            if fk.table not in children and fk.table != "session":
                children.add(fk.table)
                stack.append(fk.table)
    parents: set[str] = set()
    stack = ["session"]
    while stack:
        table = stack.pop()
        for fk in schema.foreign_keys:
            if fk.table == table and fk.parent not in (table, "session", *SECRET_TABLES, *parents):
                parents.add(fk.parent)
                stack.append(fk.parent)
    return frozenset(children), frozenset(parents)


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
    """Map a session's rows by column name; raise SessionNotMappable when a required column is missing,
    SessionRefused when a row is not part of this session (see :func:`check_closure`)."""
    check_closure(live, session_id, rows)
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
        required = tuple(live.required[table])
        for row in table_rows:
            if None in map(row.get, required):  # values are str, int, float, bytes or None
                missing = sorted(c for c in required if row.get(c) is None)
                raise SessionNotMappable(
                    f"session {session_id}: {table} needs column(s) {', '.join(missing)} "
                    "that the backup does not have (opencode's schema changed too much)"
                )
        out.tables.append((table, cols, _values(table_rows, cols)))
    return out


def _values(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Each row's values of ``cols`` (None where a row lacks one), by itemgetter where a row has them all."""
    if not cols:
        return [() for _ in rows]
    get = operator.itemgetter(*cols)
    out: list[tuple[Any, ...]] = []
    for r in rows:
        try:
            value = get(r)
        except KeyError:
            out.append(tuple(r.get(c) for c in cols))
            continue
        out.append(value if len(cols) > 1 else (value,))
    return out


def check_closure(live: LiveSchema, session_id: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse rows outside the session's closure: a table that is neither a session table nor one a
    session points at (saved permissions, migrations, workspaces...), a row whose foreign keys lead to
    another session (a part attached to another session's message), a parent row the session does not
    point at. Checked against the file's own rows; :func:`check_live_owners` adds the live database."""
    schema = live.schema
    for table in rows:
        if table in schema.columns and table != "session" and table not in live.children | live.parents:
            raise SessionRefused(
                f"session {session_id}: it holds rows of {table}, which is not part of a session"
            )
    sessions = rows.get("session", [])
    if len(sessions) != 1 or sessions[0].get("id") != session_id:
        raise SessionRefused(f"session {session_id}: it must hold exactly its own session row")
    keys = _keys(schema, rows)
    keys["session"] = {(c, v) for c, v in keys.get("session", set()) if c != "id"} | {("id", session_id)}
    for table in live.order:
        if table not in live.children or not rows.get(table):
            continue
        # the links that lead into the session's closure, looked up once per table, not once per row
        links = [
            (fk.column, fk.parent, fk.parent_column, keys.get(fk.parent, set()))
            for fk in _links(schema, table)
            if fk.parent in live.children or fk.parent == "session"
        ]
        for row in rows[table]:
            linked = False
            for column, parent, parent_column, parent_keys in links:
                value = row.get(column)
                if value is None:
                    continue
                if (parent_column, value) not in parent_keys:
                    raise SessionRefused(
                        f"session {session_id}: a row of {table} points at {parent} {value!r}, "
                        "which is not part of this session"
                    )
                linked = True
            if not linked:
                raise SessionRefused(f"session {session_id}: a row of {table} is not linked to the session")
    session_row = sessions[0]
    for fk in schema.foreign_keys:
        if fk.table == "session" and fk.parent in live.parents:
            wanted = session_row.get(fk.column)
            if any(r.get(fk.parent_column) != wanted for r in rows.get(fk.parent, [])):
                raise SessionRefused(f"session {session_id}: it holds a {fk.parent} row that is not its own")
    for table in live.parents:
        direct = any(fk.table == "session" and fk.parent == table for fk in schema.foreign_keys)
        if rows.get(table) and not direct:
            raise SessionRefused(f"session {session_id}: it holds {table} rows a session never needs")


def _links(schema: Schema, table: str) -> list[ForeignKey]:
    """The foreign keys (and soft links to session) that leave ``table``."""
    links = [fk for fk in schema.foreign_keys if fk.table == table]
    links += [ForeignKey(t, c, "session", "id") for t, c in SOFT_SESSION_LINKS if t == table]
    return links


def _keys(schema: Schema, rows: dict[str, list[dict[str, Any]]]) -> dict[str, set[tuple[str, Any]]]:
    """(column, value) pairs of every column another table's foreign key points at, per table."""
    pointed: dict[str, set[str]] = {}
    for fk in schema.foreign_keys:
        pointed.setdefault(fk.parent, set()).add(fk.parent_column)
    out: dict[str, set[tuple[str, Any]]] = {}
    for table, columns in pointed.items():
        out[table] = {(c, r.get(c)) for r in rows.get(table, []) for c in columns if r.get(c) is not None}
    return out


def check_live_owners(conn: sqlite3.Connection, live: LiveSchema, mapped: Mapped) -> None:
    """Refuse a session whose rows share a primary key with rows of *another* session in the live
    database (they would be skipped, and the file's rows that point at them would join that session)."""
    for table, cols, values in mapped.tables:
        if table not in live.children:
            continue
        pk = live.schema.primary_keys.get(table) or ()
        owner = next((c for c in ("session_id", "aggregate_id") if c in live.schema.columns[table]), None)
        if not pk or owner is None or not all(c in cols for c in pk):
            continue
        index = [cols.index(c) for c in pk]
        for found in _owners(conn, table, pk, owner, [[row[i] for i in index] for row in values]):
            if found != mapped.session_id:
                raise SessionRefused(
                    f"session {mapped.session_id}: a row of {table} already belongs to session {found!r}"
                )


_KEYS_PER_QUERY = 500  # SQLite host parameters per IN (...) list


def _owners(
    conn: sqlite3.Connection, table: str, pk: tuple[str, ...], owner: str, keys: list[list[Any]]
) -> list[Any]:
    """The owner column of the live rows of ``table`` whose primary key is one of ``keys``: one query per
    500 keys (a single-column key, which opencode's session tables have) instead of one per row, which
    was 240,000 queries and 5 s for a new laptop's restore (twice: plan and apply)."""
    if len(pk) != 1:
        where = " AND ".join(f"{quote(c)} = ?" for c in pk)
        sql = f"SELECT {quote(owner)} FROM {quote(table)} WHERE {where}"
        return [r[0] for key in keys for r in conn.execute(sql, key).fetchall()[:1]]
    found: list[Any] = []
    flat = [key[0] for key in keys]
    for start in range(0, len(flat), _KEYS_PER_QUERY):
        batch = flat[start : start + _KEYS_PER_QUERY]
        sql = (
            f"SELECT {quote(owner)} FROM {quote(table)} "
            f"WHERE {quote(pk[0])} IN ({', '.join('?' * len(batch))})"
        )
        found += [r[0] for r in conn.execute(sql, batch)]
    return found


def _secrets(conn: sqlite3.Connection, live: LiveSchema, session_id: str) -> list[tuple[str, str, Any]]:
    """The secret columns of a session's rows as they are now (the backup holds them blanked)."""
    out = []
    for (table, column), _blank in SECRET_COLUMNS.items():
        if {"session_id", column} <= set(live.schema.columns.get(table, ())):
            sql = f"SELECT {quote(column)} FROM {quote(table)} WHERE session_id = ?"
            out += [(table, column, v) for (v,) in conn.execute(sql, (session_id,)).fetchall()]
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
        check_live_owners(conn, live, mapped)
        kept: list[tuple[str, str, Any]] = []
        if replace:
            kept = _secrets(conn, live, mapped.session_id)
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
        for table, column, value in kept:  # a share's secret never came from the backup: keep the current one
            conn.execute(
                f"UPDATE {quote(table)} SET {quote(column)} = ? WHERE session_id = ?",
                (value, mapped.session_id),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("restored session %s: %d row(s) added", mapped.session_id, added)
    return added
