"""What we know about opencode's tables, read from the live schema rather than hard-coded.

The closure of a session is found from the foreign keys, so tables that a newer opencode adds
come along without a code change (:mod:`app.opencode.store` adds the links opencode keeps without one).
Secret-holding tables and columns are listed here, once.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

# Tables whose rows never leave the machine: tokens and credentials (1.x and 2.0: ``credential`` holds API
# keys, OAuth tokens and 2.0's ``external`` credentials), and 2.0's ``kv``, the machine's own state (its
# importer's progress, well-known auth sources): none of it is session content.
SECRET_TABLES = frozenset({"account", "control_account", "credential", "kv"})
# Columns blanked wherever they appear: (table, column) -> replacement value.
SECRET_COLUMNS = {("session_share", "secret"): ""}


@dataclass(frozen=True)
class ForeignKey:
    """``table.column`` references ``parent.parent_column``."""

    table: str
    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True)
class Schema:
    """Tables, their columns (in order), primary keys and foreign keys of one database."""

    columns: dict[str, tuple[str, ...]]
    primary_keys: dict[str, tuple[str, ...]]
    foreign_keys: tuple[ForeignKey, ...]

    def children_of(self, parent: str) -> tuple[ForeignKey, ...]:
        """Foreign keys that point at ``parent`` (a store adds the links it knows without one)."""
        return tuple(
            fk
            for fk in self.foreign_keys
            # a self-reference (a sub-session's parent) must not pull other sessions in
            if fk.parent == parent and fk.table != parent and fk.table not in SECRET_TABLES
        )

    def order_by(self, table: str) -> str:
        pk = self.primary_keys.get(table) or ("rowid",)
        return ", ".join(quote(c) for c in pk)


def quote(identifier: str) -> str:
    """Quote an SQL identifier taken from the schema."""
    return '"' + identifier.replace('"', '""') + '"'


def read_schema(conn: sqlite3.Connection) -> Schema:
    """Introspect ``conn``'s main database (cheap: sqlite_master and PRAGMAs only)."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    columns: dict[str, tuple[str, ...]] = {}
    pks: dict[str, tuple[str, ...]] = {}
    fks: list[ForeignKey] = []
    for t in tables:
        info = conn.execute(f"PRAGMA table_info({quote(t)})").fetchall()
        columns[t] = tuple(r[1] for r in info)
        pks[t] = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: int(r[5])))
        for r in conn.execute(f"PRAGMA foreign_key_list({quote(t)})").fetchall():
            if r[4] is not None:
                fks.append(ForeignKey(table=t, column=r[3], parent=r[2], parent_column=r[4]))
    return Schema(columns=columns, primary_keys=pks, foreign_keys=tuple(fks))


def schema_version(conn: sqlite3.Connection) -> str | None:
    """The last drizzle migration applied (opencode's schema version), or None."""
    try:
        row = conn.execute(
            "SELECT id FROM migration ORDER BY time_completed DESC, id DESC LIMIT 1"
        ).fetchone()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row else None
