"""What a session file may put into opencode's database: only rows of its own session's closure.

The backup is untrusted. A session file may hold its session row, the rows that belong to it (found from the
live schema's foreign keys and the store's soft links, each one linked to the session through them), the
parent rows its session row points at (its project), and the shared rows its own rows name (2.0's
instruction blobs, by hash). Anything else — saved permissions, migrations, another session's rows, a row
that already belongs to another session in the live database — refuses the session. Runs on the caller's
thread and connection.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from app.opencode.schema import ForeignKey, Schema, quote
from app.opencode.store import Store, named_values

_KEYS_PER_QUERY = 500  # SQLite host parameters per IN (...) list


class SessionNotMappable(Exception):
    """A session's rows cannot be put into this database's schema; ``str(e)`` is one line."""


class SessionRefused(SessionNotMappable):
    """A session file reaches outside its own session (rows of other tables or sessions); never applied."""


class Closures(Protocol):
    """What the checks need of the live schema (``importer.LiveSchema``)."""

    @property
    def schema(self) -> Schema: ...

    @property
    def order(self) -> tuple[str, ...]: ...

    def children(self, store: Store) -> frozenset[str]: ...

    def parents(self, store: Store) -> frozenset[str]: ...


def check_closure(
    live: Closures, store: Store, session_id: str, rows: dict[str, list[dict[str, Any]]]
) -> None:
    """Refuse rows outside the session's closure: a table that is neither a session table nor one a
    session points at, a row whose foreign keys lead to another session (a part attached to another
    session's message), a parent row the session does not point at, a shared row its rows do not name.
    Checked against the file's own rows; :func:`check_live_owners` adds the live database."""
    schema, root = live.schema, store.root
    children, parents = live.children(store), live.parents(store)
    named = {n.table: n for n in store.named}
    for table in rows:
        if table in schema.columns and table != root and table not in children | parents | named.keys():
            raise SessionRefused(
                f"session {session_id}: it holds rows of {table}, which is not part of a session"
            )
    sessions = rows.get(root, [])
    if len(sessions) != 1 or sessions[0].get("id") != session_id:
        raise SessionRefused(f"session {session_id}: it must hold exactly its own session row")
    keys = _keys(schema, rows)
    keys[root] = {(c, v) for c, v in keys.get(root, set()) if c != "id"} | {("id", session_id)}
    links_of = {t: [fk for fk in schema.foreign_keys if fk.table == t] for t in children}
    for t, c in store.links(schema):
        links_of.setdefault(t, []).append(ForeignKey(t, c, root, "id"))
    for table in live.order:
        if table not in children or not rows.get(table):
            continue
        # the links that lead into the session's closure, looked up once per table, not once per row
        links = [
            (fk.column, fk.parent, fk.parent_column, keys.get(fk.parent, set()))
            for fk in links_of.get(table, ())
            if fk.parent in children or fk.parent == root
        ]
        for row in rows[table]:
            _check_linked(session_id, table, row, links)
    session_row = sessions[0]
    for fk in schema.foreign_keys:
        if fk.table == root and fk.parent in parents:
            wanted = session_row.get(fk.column)
            if any(r.get(fk.parent_column) != wanted for r in rows.get(fk.parent, [])):
                raise SessionRefused(f"session {session_id}: it holds a {fk.parent} row that is not its own")
    for table in parents:
        direct = any(fk.table == root and fk.parent == table for fk in schema.foreign_keys)
        if rows.get(table) and not direct:
            raise SessionRefused(f"session {session_id}: it holds {table} rows a session never needs")
    for table, spec in named.items():
        if rows.get(table):
            wanted = named_values(spec, rows)
            if any(r.get(spec.column) not in wanted for r in rows[table]):
                raise SessionRefused(f"session {session_id}: it holds {table} rows its session does not name")


def _check_linked(
    session_id: str, table: str, row: dict[str, Any], links: list[tuple[str, str, str, set[tuple[str, Any]]]]
) -> None:
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


def _keys(schema: Schema, rows: dict[str, list[dict[str, Any]]]) -> dict[str, set[tuple[str, Any]]]:
    """(column, value) pairs of every column another table's foreign key points at, per table."""
    pointed: dict[str, set[str]] = {}
    for fk in schema.foreign_keys:
        pointed.setdefault(fk.parent, set()).add(fk.parent_column)
    out: dict[str, set[tuple[str, Any]]] = {}
    for table, columns in pointed.items():
        out[table] = {(c, r.get(c)) for r in rows.get(table, []) for c in columns if r.get(c) is not None}
    return out


def check_live_owners(
    conn: sqlite3.Connection,
    schema: Schema,
    owned: frozenset[str],
    session_id: str,
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]],
) -> None:
    """Refuse a session whose rows share a primary key with rows of *another* session in the live
    database (they would be skipped, and the file's rows that point at them would join that session).
    ``owned``: the tables whose rows belong to one session."""
    for table, cols, values in tables:
        if table not in owned:
            continue
        pk = schema.primary_keys.get(table) or ()
        owner = next((c for c in ("session_id", "aggregate_id") if c in schema.columns[table]), None)
        if not pk or owner is None or not all(c in cols for c in pk):
            continue
        index = [cols.index(c) for c in pk]
        for found in _owners(conn, table, pk, owner, [[row[i] for i in index] for row in values]):
            if found != session_id:
                raise SessionRefused(
                    f"session {session_id}: a row of {table} already belongs to session {found!r}"
                )


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
