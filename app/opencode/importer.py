"""Put a session's rows back into a live opencode database, mapped by column name onto its schema.

Parents before children (the order comes from the live schema's foreign keys), one transaction
per session, foreign keys on. Rows already present are left alone unless the session is being
replaced, in which case its own rows are deleted first inside the same transaction.

A session goes back into the store it was backed up from. A 1.x session restored into an opencode 2.0
database (the lost laptop now runs 2.0) is also converted the way 2.0's own importer converts it
(:mod:`app.opencode.convert`), so 2.0 shows it; its 1.x rows go into the 1.x tables where the database still
has them. A 2.0 session cannot go into a 1.x-only database: refused in one line naming the opencode it needs.
Runs on the caller's thread; the connection is the caller's.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.opencode.closure_check import SessionNotMappable, SessionRefused, check_closure
from app.opencode.closure_check import check_live_owners as _check_owners
from app.opencode.schema import SECRET_COLUMNS, SECRET_TABLES, Schema, quote, read_schema
from app.opencode.store import V1, Store
from app.opencode.store_v2 import V2, converted_rows
from app.opencode.stores import BY_TAG, stores_in

logger = logging.getLogger(__name__)

__all__ = ["LiveSchema", "Mapped", "SessionNotMappable", "SessionRefused", "apply_session", "live_schema",
           "map_session", "open_writable", "table_order"]  # fmt: skip

BUSY_TIMEOUT_S = 30.0  # opencode serve may hold the write lock for a moment (WAL: one writer at a time)
# the rows of a 1.x session that 2.0's importer does not carry across: its event log is 2.0's own
NOT_CONVERTED = frozenset({"event", "event_sequence"})


@dataclass(frozen=True)
class LiveSchema:
    """The live database's tables with what mapping needs: insert order, required columns, its stores, and
    per store the tables a session file may hold: ``children`` (rows that belong to a session, found from
    the foreign keys and the store's soft links) and ``parents`` (the rows a session needs: its project)."""

    schema: Schema
    order: tuple[str, ...]
    required: dict[str, frozenset[str]]  # NOT NULL columns without a default (and not an integer pk)
    stores: tuple[Store, ...] = ()
    closures: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)

    def children(self, store: Store) -> frozenset[str]:
        return self.closures.get(store.root, (frozenset(), frozenset()))[0]

    def parents(self, store: Store) -> frozenset[str]:
        return self.closures.get(store.root, (frozenset(), frozenset()))[1]


@dataclass
class Mapped:
    """One session's rows mapped onto the live schema, in insert order, plus notes for the user;
    ``stores``: the stores the rows go into (two when a 1.x session is converted)."""

    session_id: str
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stores: tuple[Store, ...] = (V1,)


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
    present = stores_in(schema)
    closures = {s.root: session_closure(schema, s) for s in present}
    return LiveSchema(schema, table_order(schema), required, present, closures)


def session_closure(schema: Schema, store: Store) -> tuple[frozenset[str], frozenset[str]]:
    """(tables whose rows belong to a session, tables a session's rows point at), from the foreign keys."""
    children: set[str] = set()
    stack = [store.root]
    while stack:
        for fk in store.children_of(schema, stack.pop()):
            if fk.table not in children and fk.table != store.root:
                children.add(fk.table)
                stack.append(fk.table)
    parents: set[str] = set()
    stack = [store.root]
    while stack:
        table = stack.pop()
        for fk in schema.foreign_keys:
            if fk.table == table and fk.parent not in (table, store.root, *SECRET_TABLES, *parents):
                parents.add(fk.parent)
                stack.append(fk.parent)
    return frozenset(children), frozenset(parents)


def table_order(schema: Schema) -> tuple[str, ...]:
    """Tables sorted so every parent (foreign key or known soft link) comes before its children."""
    parents: dict[str, set[str]] = {t: set() for t in schema.columns}
    for fk in schema.foreign_keys:
        if fk.table in parents and fk.parent in parents and fk.parent != fk.table:
            parents[fk.table].add(fk.parent)
    for store in stores_in(schema):
        for table, _column in store.links(schema):
            parents[table].add(store.root)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(parents):
        ready = sorted(t for t, ps in parents.items() if t not in done and ps <= done)
        if not ready:  # a cycle: take the rest alphabetically rather than loop forever
            ready = sorted(t for t in parents if t not in done)
        order.extend(ready)
        done.update(ready)
    return tuple(order)


def map_session(
    live: LiveSchema, session_id: str, rows: dict[str, list[dict[str, Any]]], store: str = V1.tag
) -> Mapped:
    """Map a session's rows (backed up from store ``store``) by column name; raise SessionNotMappable when
    the database cannot take them (a required column missing, a 2.0 session into 1.x), SessionRefused when
    a row is not part of this session (see :func:`check_closure`)."""
    source = BY_TAG[store]
    if source.present(live.schema):
        check_closure(live, source, session_id, rows)
    elif source is not V1 or V2 not in live.stores:
        raise SessionNotMappable(
            f"session {session_id} was backed up from {source.needs.removesuffix(' or newer')}; this "
            f"opencode's database cannot hold it: it needs {source.needs}"
        )
    targets: tuple[Store, ...] = (source,) if source.present(live.schema) else ()
    if source is V1 and V2 in live.stores:  # a 1.x session into 2.0: converted, as 2.0's importer does
        rows = _with_conversion(live, session_id, rows)
        targets = (*targets, V2)
    return _mapped(live, session_id, rows, targets)


def _with_conversion(
    live: LiveSchema, session_id: str, rows: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """The 1.x rows the database has tables for (its event log left out) and the session's 2.0 rows."""
    if len(rows.get(V1.root, [])) != 1 or rows[V1.root][0].get("id") != session_id:
        raise SessionRefused(f"session {session_id}: it must hold exactly its own session row")
    projects = {r.get("id") for r in rows.get("project", [])}
    keep = (lambda t: t not in NOT_CONVERTED) if V1.present(live.schema) else live.parents(V2).__contains__
    out = {t: r for t, r in rows.items() if keep(t)}
    try:
        converted = converted_rows(rows, {p for p in projects if isinstance(p, str)})
    except (TypeError, ValueError, KeyError) as exc:
        raise SessionNotMappable(
            f"session {session_id}: cannot be converted for opencode 2.0 ({exc})"
        ) from None
    for table, table_rows in converted.items():
        out[table] = out.get(table, []) + table_rows if table == "project" else table_rows
    return out


def _mapped(
    live: LiveSchema, session_id: str, rows: dict[str, list[dict[str, Any]]], targets: tuple[Store, ...]
) -> Mapped:
    out = Mapped(session_id, stores=targets)
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


def check_live_owners(conn: sqlite3.Connection, live: LiveSchema, mapped: Mapped) -> None:
    """Refuse a session whose rows share a primary key with rows of *another* session in the live
    database (they would be skipped, and the file's rows that point at them would join that session)."""
    owned = frozenset().union(*(live.children(s) for s in mapped.stores))
    _check_owners(conn, live.schema, owned, mapped.session_id, mapped.tables)


def _secrets(conn: sqlite3.Connection, live: LiveSchema, session_id: str) -> list[tuple[str, str, Any]]:
    """The secret columns of a session's rows as they are now (the backup holds them blanked)."""
    out = []
    for (table, column), _blank in SECRET_COLUMNS.items():
        if {"session_id", column} <= set(live.schema.columns.get(table, ())):
            sql = f"SELECT {quote(column)} FROM {quote(table)} WHERE session_id = ?"
            out += [(table, column, v) for (v,) in conn.execute(sql, (session_id,)).fetchall()]
    return out


def owned_tables(live: LiveSchema, store: Store = V1) -> list[tuple[str, str]]:
    """(table, column) pairs whose rows belong to one session of ``store``, children first (for deleting)."""
    pairs: list[tuple[str, str]] = []
    children = live.children(store)
    for table in reversed(live.order):
        cols = live.schema.columns[table]
        if table == store.root:
            pairs.append((table, "id"))
        elif table in children and "session_id" in cols:
            pairs.append((table, "session_id"))
        elif table in children and "aggregate_id" in cols:
            pairs.append((table, "aggregate_id"))
    return pairs


def apply_session(conn: sqlite3.Connection, live: LiveSchema, mapped: Mapped, *, replace: bool) -> int:
    """Insert one session's rows in one transaction (``replace``: delete its rows first). Returns rows added.

    Foreign keys are on, so a row whose parent is missing fails its INSERT immediately. A replace never
    lowers a 2.0 session's event watermark. Raises sqlite3.Error (the transaction is rolled back) when the
    rows do not fit.
    """
    sid = mapped.session_id
    conn.execute("BEGIN IMMEDIATE")
    try:
        check_live_owners(conn, live, mapped)
        kept: list[tuple[str, str, Any]] = []
        watermarks = {s.tag: s.watermark(conn, sid) for s in mapped.stores}
        if replace:
            kept = _secrets(conn, live, sid)
            for store in mapped.stores:
                for table, column in owned_tables(live, store):
                    conn.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} = ?", (sid,))
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
            conn.execute(f"UPDATE {quote(table)} SET {quote(column)} = ? WHERE session_id = ?", (value, sid))
        for store in mapped.stores:
            store.after_restore(conn, sid, watermarks[store.tag])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("restored session %s: %d row(s) added", sid, added)
    return added
