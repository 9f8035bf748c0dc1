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

import base64
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from app.opencode.schema import SECRET_COLUMNS, SECRET_TABLES, Schema, quote, read_schema, schema_version

SESSION_FORMAT = "opencode-session-backup/1"
_BATCH = 500  # SQLite host parameters per IN (...) list
# Sessions updated within this window get a deep fingerprint (message and part counts and times):
# a reply that streams after the session row was last touched must still be noticed.
HOT_WINDOW_MS = 24 * 3600 * 1000
_ROWS_PER_CHUNK = 64  # rows encoded per call while streaming a table
_FLUSH_CHARS = 1 << 20  # text gathered before it is encoded, hashed and written
_MAX_DEPTH = 8  # below the session; foreign keys form a tree here, this only stops a malformed cycle


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
            self.schema: Schema = read_schema(self.conn)
            self.schema_version = schema_version(self.conn)
            self._streamable = _children_form_a_tree(self.schema)
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
        if depth > _MAX_DEPTH:
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
        sink = _Sink(out)
        sink.put(_ENCODER.encode(doc)[:-1] + ',"rows":{')
        self._write_closure(info.id, _Tables(sink))
        sink.put("}}")
        sink.flush()
        return sink.size, sink.hash.hexdigest()

    def _write_closure(self, session_id: str, tables: _Tables) -> None:
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
        self._write_children("session", _keys(self.schema, "session", session_rows), tables, 0)

    def _write_children(self, table: str, keys: dict[str, set[Any]], tables: _Tables, depth: int) -> None:
        """Stream the tables below ``table`` (depth first, as :meth:`_add_children` merges them), given the
        values its rows hold in the columns they point at."""
        if depth > _MAX_DEPTH:
            return
        for fk in self.schema.children_of(table):
            wanted = sorted(keys.get(fk.parent_column, ()))
            below: dict[str, set[Any]] = {c: set() for c in _pointed_at(self.schema, fk.table)}
            rows = _collect(self._rows(fk.table, fk.column, wanted), below)
            if tables.write(fk.table, rows, self.schema.primary_keys.get(fk.table, ())):
                self._write_children(fk.table, below, tables, depth + 1)


class _Sink:
    """Text into a binary file as UTF-8, hashed and counted on the way."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self._parts: list[str] = []
        self._pending = 0

    def put(self, text: str) -> None:
        self._parts.append(text)
        self._pending += len(text)
        if self._pending >= _FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        data = "".join(self._parts).encode()
        self._parts, self._pending = [], 0
        self.out.write(data)
        self.hash.update(data)
        self.size += len(data)


class _Tables:
    """The ``rows`` object of a session file, one table at a time: ``"table":[row,...]``, a table with no
    rows left out, duplicates dropped (by primary key, or whole row without one) as ``_merge`` does."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._first = True

    def write(self, table: str, rows: Iterable[dict[str, Any]], pk: tuple[str, ...]) -> bool:
        """Write ``table``'s rows; returns whether it had any."""
        seen: set[tuple[Any, ...]] = set()
        chunk: list[dict[str, Any]] = []
        wrote = False
        for row in rows:
            key = tuple(row[c] for c in pk) if pk else tuple(row.values())
            if key in seen:
                continue
            seen.add(key)
            chunk.append(row)
            if len(chunk) >= _ROWS_PER_CHUNK:
                wrote = self._put(table, chunk, wrote)
                chunk = []
        if chunk:
            wrote = self._put(table, chunk, wrote)
        if wrote:
            self._sink.put("]")
        return wrote

    def _put(self, table: str, chunk: list[dict[str, Any]], started: bool) -> bool:
        if started:
            self._sink.put(",")
        else:
            self._sink.put(("" if self._first else ",") + _ENCODER.encode(table) + ":[")
            self._first = False
        self._sink.put(_ENCODER.encode(chunk)[1:-1])
        return True


def _collect(rows: Iterator[dict[str, Any]], into: dict[str, set[Any]]) -> Iterator[dict[str, Any]]:
    """Pass ``rows`` on, keeping the values of the columns ``into`` names (not None)."""
    for row in rows:
        for column, values in into.items():
            value = row.get(column)
            if value is not None:
                values.add(value)
        yield row


def _pointed_at(schema: Schema, table: str) -> set[str]:
    """The columns of ``table`` that the tables below it point at."""
    return {fk.parent_column for fk in schema.children_of(table)}


def _keys(schema: Schema, table: str, rows: list[dict[str, Any]]) -> dict[str, set[Any]]:
    return {c: {r[c] for r in rows if r.get(c) is not None} for c in _pointed_at(schema, table)}


def _children_form_a_tree(schema: Schema) -> bool:
    """True when every table below the session is reached by one foreign key only, within the depth
    :meth:`Reader._add_children` goes to, and none of them is the session's or a parent's table: then
    each one's rows come from one query and can be written as they are read."""
    seen: set[str] = set()
    stack = [("session", 0)]
    while stack:
        table, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        for fk in schema.children_of(table):
            if fk.table in seen or fk.table == "session":
                return False
            seen.add(fk.table)
            stack.append((fk.table, depth + 1))
    above: set[str] = set()
    stack_up = ["session"]
    while stack_up:
        table = stack_up.pop()
        for fk in schema.foreign_keys:
            if fk.table == table and fk.parent not in (*SECRET_TABLES, table, *above):
                above.add(fk.parent)
                stack_up.append(fk.parent)
    return not (seen & above) and "session" not in above


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


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot store {type(value).__name__} in a session file")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)
