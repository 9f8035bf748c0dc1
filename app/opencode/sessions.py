"""Read sessions out of a live opencode database and export each one's closure of rows.

A ``Reader`` holds one read-only connection inside one read transaction: in WAL mode that is a
consistent view of a database opencode keeps writing, without copying it. Runs on the worker thread.

A session file is written as its rows are read, a few rows at a time: memory holds the keys that lead to
the next table, never the session. Building the whole document first took 58 MB of Python objects for
the bench's largest session (an 8.3 MB file: rows, the encoded text, its UTF-8 copy), and real sessions
reach 60 MB. Where opencode's foreign keys do not form a tree below the session (a table reached twice),
the rows are gathered first as before; the file is the same either way.
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from app.opencode.schema import SECRET_COLUMNS, SECRET_TABLES, Schema, quote, read_schema, schema_version
from app.opencode.session_file import (
    ENCODER,
    MAX_DEPTH,
    RowTextCache,
    Sink,
    Tables,
    children_form_a_tree,
    collect,
    keys_of,
    pointed_at,
)

SESSION_FORMAT = "opencode-session-backup/1"
_BATCH = 500  # SQLite host parameters per IN (...) list
# Sessions updated within this window get a deep fingerprint (message and part counts and times):
# a reply that streams after the session row was last touched must still be noticed.
HOT_WINDOW_MS = 24 * 3600 * 1000
# the row texts of the hot sessions exported last (this process's): ~4 MB of text, and the values
ROW_TEXTS = RowTextCache(4 << 20)


@dataclass(frozen=True)
class SessionInfo:
    """One row of the session table, as much as listing and change detection need."""

    id: str
    project_id: str
    title: str
    directory: str
    time_updated: int


def open_readonly(db: Path, *, busy_timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open ``db`` read-only (never creates it, never writes, tolerates a live writer)."""
    uri = db.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA query_only=ON")
    return conn


class Reader:
    """A consistent read view of one opencode database; use as a context manager."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn = open_readonly(db)
        try:
            self.conn.execute("BEGIN")
            # The first read fixes the snapshot for the rest of the transaction.
            self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            self.schema: Schema
            self.schema, self._streamable = _schema_of(db, self.conn)
            self.schema_version = schema_version(self.conn)
        except BaseException:
            self.conn.close()
            raise

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        finally:
            self.conn.close()

    def sessions(self) -> dict[str, SessionInfo]:
        """Every session, from the session table alone (a few ms even on multi-GB databases)."""
        if "session" not in self.schema.columns:
            return {}
        rows = self.conn.execute("SELECT id, project_id, title, directory, time_updated FROM session")
        return {r[0]: SessionInfo(r[0], r[1], r[2] or "", r[3] or "", int(r[4] or 0)) for r in rows}

    def session_times(self) -> dict[str, int]:
        """Session id -> time_updated for every session: all change detection needs to start."""
        if "session" not in self.schema.columns:
            return {}
        times = dict(self.conn.execute("SELECT id, time_updated FROM session"))  # 0.5 ms for 1,800, not 1.2
        for sid, value in times.items():
            if type(value) is not int:
                times[sid] = int(value or 0)
        return times

    def info(self, session_id: str) -> SessionInfo | None:
        """One session's listing fields, or None if it no longer exists in this view."""
        r = self.conn.execute(
            "SELECT id, project_id, title, directory, time_updated FROM session WHERE id = ?", (session_id,)
        ).fetchone()
        return SessionInfo(r[0], r[1], r[2] or "", r[3] or "", int(r[4] or 0)) if r else None

    def deep_fingerprint(self, session_id: str, time_updated: int) -> str:
        """``time_updated`` plus message and part counts and latest updates (indexed by session_id)."""
        parts = [str(time_updated)]
        for table in ("message", "part"):
            if "session_id" in self.schema.columns.get(table, ()):
                count, latest = self.conn.execute(
                    f"SELECT count(*), max(time_updated) FROM {quote(table)} WHERE session_id = ?",
                    (session_id,),
                ).fetchone()
                parts.append(f"{count}:{latest or 0}")
        return "/".join(parts)

    def fingerprint(self, session_id: str, time_updated: int, now_ms: int) -> str:
        """Cheap for cold sessions, deep for those updated within ``HOT_WINDOW_MS`` of ``now_ms``."""
        if now_ms - time_updated <= HOT_WINDOW_MS:
            return self.deep_fingerprint(session_id, time_updated)
        return str(time_updated)

    def fingerprints(self, sessions: Iterable[tuple[str, int]], now_ms: int) -> dict[str, str]:
        """:meth:`fingerprint` of each (session id, time_updated), the deep ones with one grouped query per
        table and batch of ids instead of two queries per session (a warm sync has a dozen hot sessions)."""
        out: dict[str, str] = {}
        hot: dict[str, int] = {}
        for sid, time_updated in sessions:
            if now_ms - time_updated <= HOT_WINDOW_MS:
                hot[sid] = time_updated
            else:
                out[sid] = str(time_updated)
        ids = list(hot)
        stats: list[dict[str, tuple[int, Any]]] = []
        for table in ("message", "part"):
            if "session_id" not in self.schema.columns.get(table, ()):
                continue
            found: dict[str, tuple[int, Any]] = {}
            for start in range(0, len(ids), _BATCH):
                batch = ids[start : start + _BATCH]
                sql = (
                    f"SELECT session_id, count(*), max(time_updated) FROM {quote(table)} "
                    f"WHERE session_id IN ({', '.join('?' * len(batch))}) GROUP BY session_id"
                )
                found.update((sid, (count, latest)) for sid, count, latest in self.conn.execute(sql, batch))
            stats.append(found)
        for sid, time_updated in hot.items():
            parts = [str(time_updated)]
            for found in stats:
                count, latest = found.get(sid, (0, None))
                parts.append(f"{count}:{latest or 0}")
            out[sid] = "/".join(parts)
        return out

    def closure(self, session_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row a session needs: its project, itself, and all rows referencing it (recursively)."""
        rows: dict[str, list[dict[str, Any]]] = {}
        session_rows = self._select("session", "id", [session_id])
        if not session_rows:
            return rows
        self._add_parents("session", session_rows, rows)
        rows["session"] = session_rows
        self._add_children("session", session_rows, rows, depth=0)
        return rows

    def _add_parents(
        self, table: str, child_rows: list[dict[str, Any]], out: dict[str, list[dict[str, Any]]]
    ) -> None:
        for fk in self.schema.foreign_keys:
            if fk.table != table or fk.parent in SECRET_TABLES or fk.parent == table:
                continue
            keys = sorted({r[fk.column] for r in child_rows if r.get(fk.column) is not None})
            parent_rows = self._select(fk.parent, fk.parent_column, keys)
            if parent_rows:
                self._add_parents(fk.parent, parent_rows, out)
                _merge(out, fk.parent, parent_rows, self.schema.primary_keys.get(fk.parent, ()))

    def _add_children(
        self, table: str, parent_rows: list[dict[str, Any]], out: dict[str, list[dict[str, Any]]], depth: int
    ) -> None:
        if depth > MAX_DEPTH:
            return
        for fk in self.schema.children_of(table):
            keys = sorted({r[fk.parent_column] for r in parent_rows if r.get(fk.parent_column) is not None})
            child_rows = self._select(fk.table, fk.column, keys)
            if child_rows:
                _merge(out, fk.table, child_rows, self.schema.primary_keys.get(fk.table, ()))
                self._add_children(fk.table, child_rows, out, depth + 1)

    def _select(self, table: str, column: str, keys: list[Any]) -> list[dict[str, Any]]:
        return list(self._rows(table, column, keys))

    def _rows(self, table: str, column: str, keys: list[Any]) -> Iterator[dict[str, Any]]:
        """The rows of ``table`` whose ``column`` is one of ``keys`` (secrets blanked), in batches of keys,
        each batch in primary key order; read from the cursor as they are used."""
        if table in SECRET_TABLES or table not in self.schema.columns or not keys:
            return
        cols = self.schema.columns[table]
        secret = any(t == table for t, _c in SECRET_COLUMNS)
        head = f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(table)} WHERE {quote(column)} IN ("
        tail = f") ORDER BY {self.schema.order_by(table)}"
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            for r in self.conn.execute(head + ", ".join("?" * len(batch)) + tail, batch):
                row = dict(zip(cols, r, strict=True))
                yield _scrub(table, row) if secret else row

    def export(self, info: SessionInfo, fingerprint: str) -> bytes:
        """The session file: metadata plus its closure, as compact UTF-8 JSON."""
        out = io.BytesIO()
        self.write_export(info, fingerprint, out)
        return out.getvalue()

    def write_export(self, info: SessionInfo, fingerprint: str, out: BinaryIO) -> tuple[int, str]:
        """Write the session file to ``out`` as it is read; returns its size and sha256 (hex). The bytes
        are those of ``json.dumps`` of the whole document (compact, ``ensure_ascii=False``)."""
        doc = {
            "format": SESSION_FORMAT,
            "session_id": info.id,
            "title": info.title,
            "project_id": info.project_id,
            "directory": info.directory,
            "time_updated": info.time_updated,
            "fingerprint": fingerprint,
            "database": self.db.name,
            "opencode_schema": self.schema_version,
        }
        sink = Sink(out)
        sink.put(ENCODER.encode(doc)[:-1] + ',"rows":{')
        key = (str(self.db), info.id)
        # the sessions a chat keeps changing are exported again and again: their rows' texts are kept
        hot = info.time_updated >= time.time() * 1000 - HOT_WINDOW_MS
        texts = ROW_TEXTS.take(key, self.schema) if hot else None
        self._write_closure(info.id, Tables(sink, texts))
        sink.put("}}")
        sink.flush()
        if texts is not None:
            ROW_TEXTS.keep(key, self.schema, texts)
        return sink.size, sink.hash.hexdigest()

    def _write_closure(self, session_id: str, tables: Tables) -> None:
        """What :meth:`closure` returns, table by table, in the same order."""
        session_rows = self._select("session", "id", [session_id])
        if not session_rows:
            return
        if not self._streamable:
            for table, rows in self.closure(session_id).items():
                tables.write(table, rows, self.schema.primary_keys.get(table, ()))
            return
        parents: dict[str, list[dict[str, Any]]] = {}
        self._add_parents("session", session_rows, parents)
        for table, rows in parents.items():
            tables.write(table, rows, self.schema.primary_keys.get(table, ()))
        tables.write("session", session_rows, ())
        self._write_children("session", keys_of(self.schema, "session", session_rows), tables, 0)

    def _write_children(self, table: str, keys: dict[str, set[Any]], tables: Tables, depth: int) -> None:
        """Stream the tables below ``table`` (depth first, as :meth:`_add_children` merges them), given the
        values its rows hold in the columns they point at."""
        if depth > MAX_DEPTH:
            return
        for fk in self.schema.children_of(table):
            wanted = sorted(keys.get(fk.parent_column, ()))
            below: dict[str, set[Any]] = {c: set() for c in pointed_at(self.schema, fk.table)}
            rows = collect(self._rows(fk.table, fk.column, wanted), below)
            if tables.write(fk.table, rows, self.schema.primary_keys.get(fk.table, ())):
                self._write_children(fk.table, below, tables, depth + 1)


# database path -> ((st_dev, st_ino, schema cookie), its schema, whether it streams): read again only when
# the file was replaced or its schema changed (SQLite bumps the cookie with every change of the schema).
# Introspecting ~20 tables took 0.5 ms of every warm sync
_SCHEMAS: dict[str, tuple[tuple[int, int, int], Schema, bool]] = {}


def _schema_of(db: Path, conn: sqlite3.Connection) -> tuple[Schema, bool]:
    """The schema of ``conn``'s database (in its read transaction) and whether its rows can stream."""
    st = os.stat(db)
    key = (st.st_dev, st.st_ino, int(conn.execute("PRAGMA schema_version").fetchone()[0]))
    hit = _SCHEMAS.get(str(db))
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    schema = read_schema(conn)
    streamable = children_form_a_tree(schema)
    _SCHEMAS[str(db)] = (key, schema, streamable)
    return schema, streamable


def _scrub(table: str, row: dict[str, Any]) -> dict[str, Any]:
    for (t, column), replacement in SECRET_COLUMNS.items():
        if t == table and column in row:
            row[column] = replacement
    return row


def _merge(
    out: dict[str, list[dict[str, Any]]], table: str, new: list[dict[str, Any]], pk: tuple[str, ...]
) -> None:
    existing = out.setdefault(table, [])
    if not pk:
        existing.extend(r for r in new if r not in existing)
        return
    seen = {tuple(r[c] for c in pk) for r in existing}
    existing.extend(r for r in new if tuple(r[c] for c in pk) not in seen)
