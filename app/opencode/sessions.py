"""Read sessions out of a live opencode database and export each one's closure of rows.

A ``Reader`` holds one read-only connection inside one read transaction: in WAL mode that is a
consistent view of a database opencode keeps writing, without copying it. Runs on the worker thread.
Sessions live in opencode 1.x's tables or 2.0's (:mod:`app.opencode.stores` says which); a session is read
from the store it lives in and its file says which that is.

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
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from app.opencode import stores
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
from app.opencode.store import BATCH, V1, Store, named_values

# Sessions updated within this window get a deep fingerprint (message and part counts and times):
# a reply that streams after the session row was last touched must still be noticed.
HOT_WINDOW_MS = 24 * 3600 * 1000
SESSION_FORMAT = V1.format  # a 1.x session's file; a 2.0 one's is stores.V2.format
ROW_TEXT_CHARS = 4 << 20  # the row texts kept for the hot sessions' next exports: ~4 MB of text


@dataclass(frozen=True)
class SessionInfo:
    """One session's row, as much as listing and change detection need, and the store it lives in."""

    id: str
    project_id: str
    title: str
    directory: str
    time_updated: int
    store: str = V1.tag


def open_readonly(db: Path, *, busy_timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open ``db`` read-only (never creates it, never writes, tolerates a live writer)."""
    uri = db.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA query_only=ON")
    return conn


@dataclass
class ExportCache:
    """What the exporter keeps between the syncs of one sync context (a warm service): the row texts of
    the hot sessions' last exports (only new and changed rows are encoded again), and each database's
    schema, introspected again only when the file was replaced or its schema changed (SQLite bumps the
    schema cookie with every change of it; introspecting ~20 tables took 0.5 ms of every warm sync)."""

    row_texts: RowTextCache = field(default_factory=lambda: RowTextCache(ROW_TEXT_CHARS))
    # database path -> ((st_dev, st_ino, schema cookie), its schema, per store root whether it streams)
    schemas: dict[str, tuple[tuple[int, int, int], Schema, dict[str, bool]]] = field(default_factory=dict)


class Reader:
    """A consistent read view of one opencode database; use as a context manager. ``cache``: what the
    sync context keeps between exports (None: nothing is kept)."""

    def __init__(self, db: Path, cache: ExportCache | None = None) -> None:
        self.db = db
        self.cache = cache
        self.conn = open_readonly(db)
        try:
            self.conn.execute("BEGIN")
            # The first read fixes the snapshot for the rest of the transaction.
            self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            self.schema: Schema
            self.schema, self._streamable = _schema_of(db, self.conn, cache)
            self.schema_version = schema_version(self.conn)
            self.stores = stores.stores_in(self.schema)
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

    def live(self, backed_up: Callable[[str], str | None] | None = None) -> stores.Live:
        """Every session opencode shows, with its mark and store (a few ms even on multi-GB databases).
        ``backed_up``: the tag of the store the backup holds a session from (2.0 deleted the 2.0
        sessions that only 1.x rows are left of)."""
        return stores.live(self.conn, self.schema, backed_up or _nothing)

    def hot(self, current: stores.Live, since_ms: int) -> set[str]:
        """The sessions of ``current`` updated since ``since_ms`` (in the store each lives in)."""
        out: set[str] = set()
        for store in self.stores:
            sql = f"SELECT id FROM {quote(store.root)} WHERE time_updated >= ?"
            out.update(
                sid
                for (sid,) in self.conn.execute(sql, (since_ms,))
                if sid in current.marks and current.store_of(sid) is store
            )
        return out

    def sessions(self, backed_up: Callable[[str], str | None] | None = None) -> dict[str, SessionInfo]:
        """Every session opencode shows, with its listing fields."""
        current = self.live(backed_up)
        out: dict[str, SessionInfo] = {}
        for store in self.stores:
            sql = f"SELECT id, project_id, title, directory, time_updated FROM {quote(store.root)}"
            for r in self.conn.execute(sql):
                if r[0] in current.marks and current.store_of(r[0]) is store:
                    out[r[0]] = _info(r, store)
        return out

    def info(self, session_id: str, store: Store = V1) -> SessionInfo | None:
        """One session's listing fields from ``store``, or None if it is not there in this view."""
        if not store.present(self.schema):
            return None
        r = self.conn.execute(
            f"SELECT id, project_id, title, directory, time_updated FROM {quote(store.root)} WHERE id = ?",
            (session_id,),
        ).fetchone()
        return _info(r, store) if r else None

    def fingerprints(self, current: stores.Live, ids: Iterable[str], hot: Collection[str]) -> dict[str, str]:
        """The fingerprint of each session of ``ids``: its mark, and for the ``hot`` ones (in use) the
        counts and latest updates of the rows a reply streams into (see :meth:`Store.deep`), one grouped
        query per table and batch of ids instead of two queries per session."""
        out: dict[str, str] = {}
        deep: dict[Store, list[str]] = {}
        for sid in ids:
            mark = current.marks[sid]
            if sid in hot:
                deep.setdefault(current.store_of(sid), []).append(sid)
            out[sid] = mark
        for store, wanted in deep.items():
            for sid, stats in store.deep(self.conn, self.schema, wanted).items():
                out[sid] = f"{out[sid]}/{stats}" if stats else out[sid]
        return out

    def closure(self, session_id: str, store: Store = V1) -> dict[str, list[dict[str, Any]]]:
        """Every row a session needs: its project, itself, all rows referencing it (recursively), and the
        shared rows it names."""
        rows: dict[str, list[dict[str, Any]]] = {}
        root_rows = self._select(store.root, "id", [session_id])
        if not root_rows:
            return rows
        self._add_parents(store.root, root_rows, rows)
        rows[store.root] = root_rows
        self._add_children(store, store.root, root_rows, rows, depth=0)
        for named in store.named:
            found = self._select(named.table, named.column, sorted(named_values(named, rows)))
            if found:
                _merge(rows, named.table, found, self.schema.primary_keys.get(named.table, ()))
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
        self,
        store: Store,
        table: str,
        parent_rows: list[dict[str, Any]],
        out: dict[str, list[dict[str, Any]]],
        depth: int,
    ) -> None:
        if depth > MAX_DEPTH:
            return
        for fk in store.children_of(self.schema, table):
            keys = sorted({r[fk.parent_column] for r in parent_rows if r.get(fk.parent_column) is not None})
            child_rows = self._select(fk.table, fk.column, keys)
            if child_rows:
                _merge(out, fk.table, child_rows, self.schema.primary_keys.get(fk.table, ()))
                self._add_children(store, fk.table, child_rows, out, depth + 1)

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
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            for r in self.conn.execute(head + ", ".join("?" * len(batch)) + tail, batch):
                row = dict(zip(cols, r, strict=True))
                yield _scrub(table, row) if secret else row

    def export(self, info: SessionInfo, fingerprint: str, hot: bool = False) -> bytes:
        """The session file: metadata plus its closure, as compact UTF-8 JSON."""
        out = io.BytesIO()
        self.write_export(info, fingerprint, out, hot=hot)
        return out.getvalue()

    def write_export(
        self, info: SessionInfo, fingerprint: str, out: BinaryIO, hot: bool = False
    ) -> tuple[int, str]:
        """Write the session file to ``out`` as it is read; returns its size and sha256 (hex). The bytes
        are those of ``json.dumps`` of the whole document (compact, ``ensure_ascii=False``). ``hot``: the
        session is in use, keep its row texts for its next export."""
        store = stores.BY_TAG[info.store]
        doc = {
            "format": store.format,
            "session_id": info.id,
            "title": info.title,
            "project_id": info.project_id,
            "directory": info.directory,
            "time_updated": info.time_updated,
            "fingerprint": fingerprint,
            "database": self.db.name,
            "opencode_schema": self.schema_version,
            "store": store.tag,
        }
        sink = Sink(out)
        sink.put(ENCODER.encode(doc)[:-1] + ',"rows":{')
        key = (str(self.db), info.id)
        # the sessions a chat keeps changing are exported again and again: their rows' texts are kept
        cache = self.cache.row_texts if hot and self.cache is not None else None
        texts = cache.take(key, self.schema) if cache is not None else None
        self._write_closure(store, info.id, Tables(sink, texts))
        sink.put("}}")
        sink.flush()
        if cache is not None and texts is not None:
            cache.keep(key, self.schema, texts)
        return sink.size, sink.hash.hexdigest()

    def _write_closure(self, store: Store, session_id: str, tables: Tables) -> None:
        """What :meth:`closure` returns, table by table, in the same order."""
        root_rows = self._select(store.root, "id", [session_id])
        if not root_rows:
            return
        if not self._streamable.get(store.root, False):
            for table, rows in self.closure(session_id, store).items():
                tables.write(table, rows, self.schema.primary_keys.get(table, ()))
            return
        parents: dict[str, list[dict[str, Any]]] = {}
        self._add_parents(store.root, root_rows, parents)
        for table, rows in parents.items():
            tables.write(table, rows, self.schema.primary_keys.get(table, ()))
        tables.write(store.root, root_rows, ())
        named = [(n, set[Any]()) for n in store.named]
        keys = keys_of(self.schema, store, store.root, root_rows)
        self._write_children(store, store.root, keys, tables, 0, named=named)
        for spec, values in named:
            found = self._rows(spec.table, spec.column, sorted(values))
            tables.write(spec.table, found, self.schema.primary_keys.get(spec.table, ()))

    def _write_children(
        self,
        store: Store,
        table: str,
        keys: dict[str, set[Any]],
        tables: Tables,
        depth: int,
        *,
        named: list[tuple[Any, set[Any]]],
    ) -> None:
        """Stream the tables below ``table`` (depth first, as :meth:`_add_children` merges them), given the
        values its rows hold in the columns they point at; note the values of the shared rows they name."""
        if depth > MAX_DEPTH:
            return
        for fk in store.children_of(self.schema, table):
            wanted = sorted(keys.get(fk.parent_column, ()))
            below: dict[str, set[Any]] = {c: set() for c in pointed_at(self.schema, store, fk.table)}
            rows = collect(self._rows(fk.table, fk.column, wanted), below)
            sources = [
                (spec, values) for spec, values in named if any(t == fk.table for t, _c in spec.sources)
            ]
            if sources:
                rows = _noting(rows, fk.table, sources)
            if tables.write(fk.table, rows, self.schema.primary_keys.get(fk.table, ())):
                self._write_children(store, fk.table, below, tables, depth + 1, named=named)


def _nothing(session_id: str) -> str | None:
    return None


def _noting(
    rows: Iterator[dict[str, Any]], table: str, sources: list[tuple[Any, set[Any]]]
) -> Iterator[dict[str, Any]]:
    """Pass ``rows`` on, adding the values they name (see :class:`app.opencode.store.Named`)."""
    for row in rows:
        for spec, values in sources:
            values.update(named_values(spec, {table: [row]}))
        yield row


def _info(r: tuple[Any, ...], store: Store) -> SessionInfo:
    return SessionInfo(r[0], r[1], r[2] or "", r[3] or "", int(r[4] or 0), store.tag)


def _schema_of(
    db: Path, conn: sqlite3.Connection, cache: ExportCache | None
) -> tuple[Schema, dict[str, bool]]:
    """The schema of ``conn``'s database (in its read transaction) and, per store, whether its rows can
    stream; from ``cache`` while the file and its schema cookie are the same."""
    st = os.stat(db)
    key = (st.st_dev, st.st_ino, int(conn.execute("PRAGMA schema_version").fetchone()[0]))
    hit = cache.schemas.get(str(db)) if cache is not None else None
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    schema = read_schema(conn)
    streamable = {s.root: children_form_a_tree(schema, s) for s in stores.stores_in(schema)}
    if cache is not None:
        cache.schemas[str(db)] = (key, schema, streamable)
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
