"""Writing a session file as its rows are read (see :meth:`app.opencode.sessions.Reader.write_export`):
the JSON text of the rows, a few at a time, hashed and written on the way, and which schemas allow it.
The bytes are those ``json.dumps`` gives for the whole document (compact, ``ensure_ascii=False``)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from app.opencode.schema import SECRET_TABLES, Schema
from app.opencode.store import Store

ROWS_PER_CHUNK = 64  # rows encoded per call while streaming a table
FLUSH_CHARS = 1 << 20  # text gathered before it is encoded, hashed and written
MAX_DEPTH = 8  # below the session; foreign keys form a tree here, this only stops a malformed cycle


class Sink:
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
        if self._pending >= FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        data = "".join(self._parts).encode()
        self._parts, self._pending = [], 0
        self.out.write(data)
        self.hash.update(data)
        self.size += len(data)


class RowTexts:
    """The JSON text of each row of a session's last export, by (table, its values), for its next
    export: a session exported again (a new message in a long chat) re-encodes only its new and changed
    rows (~1 ms of a 10 ms warm sync for a 156 KB session). A row's text is a function of its table's
    columns (texts kept under another schema are not used) and its values; a row holding a float is
    always encoded (``1 == 1.0``, but they encode differently). Collects at most ``limit`` characters."""

    def __init__(self, before: dict[tuple[str, tuple[Any, ...]], str], limit: int) -> None:
        self._before = before
        self._limit = limit
        self.now: dict[tuple[str, tuple[Any, ...]], str] | None = {}
        self.chars = 0

    def text(self, table: str, row: dict[str, Any]) -> str:
        values = tuple(row.values())
        if float in map(type, values):
            return ENCODER.encode(row)
        key = (table, values)
        text = self._before.get(key)
        if text is None:
            text = ENCODER.encode(row)
        if self.now is not None:
            self.chars += len(text)
            self.now[key] = text
            if self.chars > self._limit:
                self.now = None  # too big to keep: memory holds a few rows of it, as without this
        return text


class RowTextCache:
    """The :class:`RowTexts` of the sessions exported last, by (database, session id), within ``chars``
    characters of text (the oldest dropped first; one session gets a quarter at most)."""

    def __init__(self, chars: int) -> None:
        self._chars = chars
        self._kept: dict[tuple[str, str], tuple[object, dict[tuple[str, tuple[Any, ...]], str], int]] = {}
        self._total = 0

    def take(self, key: tuple[str, str], schema: object) -> RowTexts:
        """A RowTexts for the next export of ``key`` (its last texts, if any, under this very schema)."""
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._total -= kept[2]
        before = kept[1] if kept is not None and kept[0] is schema else {}
        return RowTexts(before, self._chars // 4)

    def keep(self, key: tuple[str, str], schema: object, texts: RowTexts) -> None:
        if texts.now is None:
            return
        self._kept[key] = (schema, texts.now, texts.chars)
        self._total += texts.chars
        while self._total > self._chars:
            self._total -= self._kept.pop(next(iter(self._kept)))[2]


class Tables:
    """The ``rows`` object of a session file, one table at a time: ``"table":[row,...]``, a table with no
    rows left out, duplicates dropped (by primary key, or whole row without one) as ``_merge`` does."""

    def __init__(self, sink: Sink, texts: RowTexts | None = None) -> None:
        self._sink = sink
        self._first = True
        self._texts = texts

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
            if len(chunk) >= ROWS_PER_CHUNK:
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
            self._sink.put(("" if self._first else ",") + ENCODER.encode(table) + ":[")
            self._first = False
        if self._texts is None:
            self._sink.put(ENCODER.encode(chunk)[1:-1])
        else:
            self._sink.put(",".join([self._texts.text(table, row) for row in chunk]))
        return True


def collect(rows: Iterator[dict[str, Any]], into: dict[str, set[Any]]) -> Iterator[dict[str, Any]]:
    """Pass ``rows`` on, keeping the values of the columns ``into`` names (not None)."""
    for row in rows:
        for column, values in into.items():
            value = row.get(column)
            if value is not None:
                values.add(value)
        yield row


def pointed_at(schema: Schema, store: Store, table: str) -> set[str]:
    """The columns of ``table`` that the tables below it point at."""
    return {fk.parent_column for fk in store.children_of(schema, table)}


def keys_of(schema: Schema, store: Store, table: str, rows: list[dict[str, Any]]) -> dict[str, set[Any]]:
    return {c: {r[c] for r in rows if r.get(c) is not None} for c in pointed_at(schema, store, table)}


def children_form_a_tree(schema: Schema, store: Store) -> bool:
    """True when every table below the session row is reached by one foreign key only, within the depth
    the gathering of rows (``Reader._add_children``) goes to, and none of them is the session's or a
    parent's table, nor a table of the shared rows the session names: then each one's rows come from one
    query and can be written as they are read."""
    root = store.root
    seen: set[str] = set()
    stack = [(root, 0)]
    while stack:
        table, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        for fk in store.children_of(schema, table):
            if fk.table in seen or fk.table == root:
                return False
            seen.add(fk.table)
            stack.append((fk.table, depth + 1))
    above: set[str] = set()
    stack_up = [root]
    while stack_up:
        table = stack_up.pop()
        for fk in schema.foreign_keys:
            if fk.table == table and fk.parent not in (*SECRET_TABLES, table, *above):
                above.add(fk.parent)
                stack_up.append(fk.parent)
    shared = {n.table for n in store.named}
    return not (seen & above) and root not in above and not (shared & (seen | above))


def json_default(value: object) -> object:
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot store {type(value).__name__} in a session file")


ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=json_default)
