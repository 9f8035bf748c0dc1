"""What a full replace (``restore --all --replace``) needs to know of the stores a snapshot holds.

A snapshot of a 1.x database restored into opencode 2.0 (the new laptop runs 2.0) is rebuilt with its 1.x rows
where the database still has 1.x tables, and every session is then converted into 2.0's tables the way 2.0's
own importer converts it (:mod:`app.opencode.convert`): never a "restored" database in which 2.0 shows none of
the sessions. A snapshot of a 2.0 database cannot go into a 1.x-only one: refused in one line. Runs on the
caller's thread and connection.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from app.opencode.schema import Schema, quote
from app.opencode.store import V1
from app.opencode.store_v2 import V2, converted_rows
from app.opencode.stores import BY_TAG, STORES


def refusal(snapshot: Schema, live: Schema, name: str) -> str | None:
    """Why the live database cannot be rebuilt from this snapshot (None: it can)."""
    if not any(s.present(snapshot) for s in STORES):
        return f"refusing snapshot {name}: it holds no opencode sessions"
    if V2.present(snapshot) and not V2.present(live):
        return (
            f"snapshot {name} is of an opencode 2.0 database; this opencode's database is 1.x: "
            f"it needs {V2.needs}, then run the restore again"
        )
    return None


def converts(snapshot: Schema, live: Schema) -> bool:
    """Whether the rebuilt database must get 2.0 rows for the snapshot's 1.x sessions."""
    return V1.present(snapshot) and not V2.present(snapshot) and V2.present(live)


def sessions_in(conn: sqlite3.Connection, schema: Schema, where: str = "main") -> dict[str, int]:
    """Session id -> time_updated of every session of the (attached) database ``where``, 2.0's first."""
    out: dict[str, int] = {}
    for store in reversed([s for s in STORES if s.present(schema)]):  # 2.0's last, so they win
        out |= dict(conn.execute(f"SELECT id, time_updated FROM {quote(where)}.{quote(store.root)}"))
    return out


def same_in(conn: sqlite3.Connection, schema: Schema, store_tag: str, session_id: str,
            rows: dict[str, list[dict[str, Any]]]) -> bool:  # fmt: skip
    """True when the database already holds the rows of the store's activity tables a session file holds
    (their count and latest ``time_updated``: a reply streams in without bumping the session row)."""
    store = BY_TAG[store_tag]
    if not store.present(schema):
        return False
    for table in store.activity:
        if not {"session_id", "time_updated"} <= set(schema.columns.get(table, ())):
            return False
        given = rows.get(table, [])
        latest = max((r.get("time_updated") or 0 for r in given), default=None)
        sql = f"SELECT count(*), max(time_updated) FROM {quote(table)} WHERE session_id = ?"
        count, have = conn.execute(sql, (session_id,)).fetchone()
        if count != len(given) or (have if count else None) != latest:
            return False
    return True


def convert_all(conn: sqlite3.Connection, source: str, live: Schema, source_schema: Schema) -> int:
    """Give every 1.x session of the attached database ``source`` its 2.0 rows in ``main`` (those 2.0 does not
    have already); returns how many. As 2.0's importer, the 1.x event log (copied from ``source``) is
    deleted first: 2.0 numbers its own. In the caller's transaction, foreign keys off (checked at the end)."""
    if "event" in live.columns:
        conn.execute("DELETE FROM main.event")
    projects = {r[0] for r in conn.execute("SELECT id FROM main.project")}
    have = {r[0] for r in conn.execute(f"SELECT id FROM main.{quote(V2.root)}")}
    done = 0
    for (sid,) in conn.execute(
        f"SELECT id FROM {quote(source)}.{quote(V1.root)} ORDER BY id DESC"
    ).fetchall():
        if sid in have:
            continue
        rows = {t: _rows(conn, source, source_schema, t, sid) for t in (V1.root, "message", "part")}
        for table, table_rows in converted_rows(rows, projects).items():
            _insert(conn, live, table, table_rows)
            projects |= {r["id"] for r in table_rows if table == "project"}
        done += 1
    return done


def _rows(conn: sqlite3.Connection, where: str, schema: Schema, table: str, sid: str) -> list[dict[str, Any]]:
    if table not in schema.columns:
        return []
    cols = schema.columns[table]
    key = "id" if table == V1.root else "session_id"
    names = ", ".join(quote(c) for c in cols)
    sql = f"SELECT {names} FROM {quote(where)}.{quote(table)} WHERE {quote(key)} = ?"
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(sql, (sid,))]


def _insert(conn: sqlite3.Connection, live: Schema, table: str, rows: list[dict[str, Any]]) -> None:
    cols = [c for c in live.columns.get(table, ()) if any(c in r for r in rows)]
    if not rows or not cols:
        return
    verb = "INSERT OR IGNORE" if table == "project" else "INSERT"  # a session's own rows must all go in
    sql = (
        f"{verb} INTO main.{quote(table)} ({', '.join(quote(c) for c in cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})"
    )
    if table == "event_sequence":  # the 1.x watermark copied with the snapshot's rows: 2.0's replaces it
        sql += " ON CONFLICT (aggregate_id) DO UPDATE SET seq = excluded.seq, owner_id = NULL"
    conn.executemany(sql, [tuple(r.get(c) for c in cols) for r in rows])
