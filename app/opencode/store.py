"""Where opencode keeps a session: the interface of a store, and opencode 1.x's.

opencode 1.2 … 1.18 keep a session in ``session`` with its ``message`` and ``part`` rows. opencode 2.0 keeps
the same ``opencode.db`` but writes every session to ``session_v2`` and its own tables
(:mod:`app.opencode.store_v2`); the 1.x tables stay, frozen, and 2.0's one-shot importer copies the 1.x
sessions across at its first start. A database holds one store or both (an upgraded one);
:mod:`app.opencode.stores` says which, and where each session lives.

A store says which table roots a session, which columns hold a session id without a declared foreign key,
which tables change while a session is in use (its fingerprint), which shared rows its sessions name by
value, and what a restore must fix after the rows are in. The closure of a session is still found from the
foreign keys, so tables a later opencode adds come along without a code change. Everything that depends on
the store lives in this package; the engine above only passes along the tag a session file carries.
Methods run on the caller's thread, on the caller's connection.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from app.opencode.schema import ForeignKey, Schema, quote

BATCH = 500  # SQLite host parameters per IN (...) list


@dataclass(frozen=True)
class Named:
    """Shared rows a session names by value: ``table.column`` holds a value found in the JSON objects of
    ``sources`` (table, column) among the session's own rows (2.0's instruction blobs, by their hash)."""

    table: str
    column: str
    sources: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Store:
    """One of opencode's ways of keeping sessions; this base is opencode 1.x's behaviour."""

    tag: str  # in session files and manifest entries
    root: str  # one row per session, its id in column ``id``
    format: str  # the session file format
    soft_links: tuple[tuple[str, str], ...]  # (table, column) = the session id, where no foreign key says so
    activity: tuple[str, ...]  # tables (session_id, time_updated) a live session keeps changing
    needs: str  # the opencode a database must be to take such a session, for the user
    named: tuple[Named, ...] = ()

    def present(self, schema: Schema) -> bool:
        return self.root in schema.columns

    def links(self, schema: Schema) -> tuple[tuple[str, str], ...]:
        """The soft links this schema needs: present columns that no declared foreign key covers."""
        declared = {(fk.table, fk.column) for fk in schema.foreign_keys}
        return tuple(
            (t, c) for t, c in self.soft_links if c in schema.columns.get(t, ()) and (t, c) not in declared
        )

    def children_of(self, schema: Schema, table: str) -> tuple[ForeignKey, ...]:
        """The foreign keys that point at ``table``, and at the session row the soft links too."""
        fks = schema.children_of(table)
        if table == self.root:
            fks += tuple(ForeignKey(t, c, self.root, "id") for t, c in self.links(schema))
        return fks

    def marks_sql(self, schema: Schema) -> str:
        """SELECT (id, mark) of every session: the mark is the cheap part of the fingerprint, and changes
        whenever the session row is updated."""
        return f"SELECT id, CAST(time_updated AS TEXT) FROM {quote(self.root)}"

    def deep(self, conn: sqlite3.Connection, schema: Schema, ids: list[str]) -> dict[str, str]:
        """For the sessions in use: the count and latest ``time_updated`` of their rows in each activity
        table (a reply streams into rows after the session row was last touched), one grouped query per
        table and batch of ids. Sessions with no rows are left out (their stats are all zero)."""
        found: dict[str, list[str]] = {}
        tables = [
            t for t in self.activity if {"session_id", "time_updated"} <= set(schema.columns.get(t, ()))
        ]
        for i, table in enumerate(tables):
            for start in range(0, len(ids), BATCH):
                batch = ids[start : start + BATCH]
                sql = (
                    f"SELECT session_id, count(*), max(time_updated) FROM {quote(table)} "
                    f"WHERE session_id IN ({', '.join('?' * len(batch))}) GROUP BY session_id"
                )
                for sid, count, latest in conn.execute(sql, batch):
                    found.setdefault(sid, ["0:0"] * len(tables))[i] = f"{count}:{latest or 0}"
        zero = "/".join(["0:0"] * len(tables))
        return {sid: "/".join(found[sid]) if sid in found else zero for sid in ids}

    def after_restore(self, conn: sqlite3.Connection, session_id: str, watermark: int | None) -> None:
        """Make the restored rows usable by opencode (inside the restore's transaction); ``watermark`` is
        what :meth:`watermark` said before a replace deleted the session's rows. 1.x: nothing to do."""

    def watermark(self, conn: sqlite3.Connection, session_id: str) -> int | None:
        """The session's event watermark now, where the store keeps one (a replace never lowers it)."""
        return None


def named_values(named: Named, rows: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The values of ``named.column`` the session's own rows name (see :class:`Named`)."""
    import json  # noqa: PLC0415 - only 2.0 sessions name shared rows

    out: set[str] = set()
    for table, column in named.sources:
        for row in rows.get(table, ()):
            text = row.get(column)
            if not isinstance(text, str):
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if isinstance(value, dict):
                out.update(v for v in value.values() if isinstance(v, str))
    return out


V1 = Store(
    tag="v1",
    root="session",
    format="opencode-session-backup/1",
    soft_links=(("event_sequence", "aggregate_id"),),
    activity=("message", "part"),
    needs="opencode 1.2 or newer",
)
