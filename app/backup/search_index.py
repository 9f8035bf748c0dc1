"""Full-text search over every session of a backup folder: an SQLite FTS5 index in this user's cache.

It covers every machine folder, the sessions in ``sessions/`` and the last copy (in ``versions/``) of each
session deleted since, from either opencode store: the title, and the words of every message (no reasoning,
no tool output: :func:`app.backup.transcript.words`). It lives in this user's private cache folder
(``<cache>/search/<sha256 of the backup path, 16 hex>.sqlite3``, folder 0700, file 0600), never in the
backup folder, which other machines and programs write; a lost or damaged index is built again from the
backup. What it reads from the backup folder is untrusted: each file through
:func:`app.backup.backup_reader.read_session`; one that fails is skipped and named, never indexed.

    meta(key, value)                                  format, backup folder
    docs(machine, session_id, rel, dir, size,         one row per session and machine folder; ``rel`` is its
         mtime_ns, in_backup, title, directory,       file, relative to the machine folder (in_backup 0: in
         time_updated, store, ino)                    versions/), ``dir`` its folder; size, mtime, inode
    words(title, body)                                FTS5, rowid = docs.rowid
    dirs(machine, rel, mtime_ns, seen_ns)             each sessions/<project> folder as last looked at
    skipped(machine, rel, size, mtime_ns, why)        files that could not be read, and why

Keeping up (:mod:`.search_refresh`) costs a ``stat`` per project folder: a file renamed in or out changes
its folder's mtime, so only changed folders are listed again. Runs on the caller's thread; several
processes may use one index (WAL; one writer at a time).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from app import paths
from app.backup.transcript import moment
from app.errors import UsageError
from app.fsutil import make_private_dirs
from app.safe_text import clean

logger = logging.getLogger(__name__)

FORMAT = "2"  # 2: docs.ino
FOLDER = "search"
SHOWN_MARK = "**"  # around a word found, in a snippet (Markdown's bold)
SNIPPET_BEFORE, SNIPPET_CHARS = 60, 200  # a snippet starts this far before the first word found
TITLE_WEIGHT = 4.0  # bm25: a word in the title counts as much as four in the conversation
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    rowid INTEGER PRIMARY KEY, machine TEXT NOT NULL, session_id TEXT NOT NULL, rel TEXT NOT NULL,
    dir TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, in_backup INTEGER NOT NULL,
    title TEXT NOT NULL, directory TEXT NOT NULL, time_updated INTEGER NOT NULL, store TEXT NOT NULL,
    ino INTEGER NOT NULL DEFAULT 0,
    UNIQUE (machine, session_id));
CREATE INDEX IF NOT EXISTS docs_dir ON docs (machine, dir);
CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5 (title, body, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS dirs (
    machine TEXT NOT NULL, rel TEXT NOT NULL, mtime_ns INTEGER NOT NULL, seen_ns INTEGER NOT NULL,
    PRIMARY KEY (machine, rel));
CREATE TABLE IF NOT EXISTS skipped (
    machine TEXT NOT NULL, rel TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    why TEXT NOT NULL, PRIMARY KEY (machine, rel));
"""


class NoWords(UsageError):
    """The query holds no word to look for (only punctuation, or nothing)."""


class NoFullTextSearch(UsageError):
    """This Python's SQLite was built without FTS5."""


@dataclass(frozen=True)
class Hit:
    """A session that holds every word searched for. ``snippet``: a piece of it with the words found
    between ``**`` and ``**``, on one line, made inert; ``in_backup`` False: only its last copy in
    ``versions/`` is left (deleted); ``in_opencode``: this computer's opencode has it (set by the caller,
    which reads opencode's database). Title and directory are as the backup holds them (not yet made
    inert: a face does that)."""

    session_id: str
    title: str
    machine: str
    directory: str
    time_updated: datetime | None
    in_backup: bool
    snippet: str
    store: str = "v1"
    in_opencode: bool = False


def index_path(backup_path: Path, folder: Path | None = None) -> Path:
    """Where the index of ``backup_path`` lives (whether or not it exists)."""
    digest = hashlib.sha256(str(backup_path.absolute()).encode("utf-8", "surrogateescape")).hexdigest()
    return (folder or paths.app_cache_dir() / FOLDER) / f"{digest[:16]}.sqlite3"


def match_expression(query: str, *, prefix: bool = False) -> str:
    """The FTS5 query for plain words: each word of ``query`` quoted (so quotes, operators and punctuation
    are words or nothing, never syntax), all of them required; ``prefix``: the last may be the start of a
    word (as you type). Raises NoWords when no word has a letter or digit. Pure."""
    # control characters are no word's (SQLite ends a string at a NUL): spaces, as the tokenizer takes them
    plain = "".join(" " if unicodedata.category(c) == "Cc" else c for c in query)
    words = [w for w in plain.split() if any(c.isalnum() for c in w)]
    if not words:
        raise NoWords("nothing to search for: give a word (letters or digits)")
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    if prefix:
        quoted[-1] += "*"
    return " AND ".join(quoted)


class Index:
    """One backup folder's search index, open. Not shared between threads (each opens its own)."""

    def __init__(self, backup_path: Path, conn: sqlite3.Connection, path: Path) -> None:
        self.backup_path = backup_path
        self.conn = conn
        self.path = path

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def empty(self) -> bool:
        """Nothing has been indexed yet (a new or rebuilt index)."""
        return self.conn.execute("SELECT 1 FROM dirs LIMIT 1").fetchone() is None

    def search(self, query: str, limit: int = 20, *, prefix: bool = False) -> list[Hit]:
        """The sessions holding every word of ``query``, best first (bm25, the title weighing more)."""
        expression = match_expression(query, prefix=prefix)
        rows = self.conn.execute(
            "SELECT d.session_id, d.title, d.machine, d.directory, d.time_updated, d.in_backup, d.store, "
            "words.body FROM words JOIN docs d ON d.rowid = words.rowid "
            f"WHERE words MATCH ? ORDER BY bm25(words, {TITLE_WEIGHT}, 1.0) LIMIT ?",
            (expression, max(1, limit)),
        ).fetchall()
        found = _marker(query)
        return [
            Hit(sid, title, machine, directory, moment(updated), bool(in_backup), snippet(body, found), store)
            for sid, title, machine, directory, updated, in_backup, store, body in rows
        ]

    def recent(self, limit: int) -> list[Hit]:
        """The sessions updated last (what a search with no word yet shows), newest first."""
        rows = self.conn.execute(
            "SELECT session_id, title, machine, directory, time_updated, in_backup, store FROM docs "
            "ORDER BY time_updated DESC LIMIT ?",
            (max(1, limit),),
        ).fetchall()
        return [Hit(sid, t, m, d, moment(u), bool(b), "", s) for sid, t, m, d, u, b, s in rows]

    def skipped(self) -> list[tuple[str, str, str]]:
        """(machine, file, why) of every file that could not be read when last looked at."""
        return list(self.conn.execute("SELECT machine, rel, why FROM skipped ORDER BY machine, rel"))


def _marker(query: str) -> re.Pattern[str]:
    """A pattern finding the words of ``query`` (their letters and digits, any case) in a text."""
    plain = "".join(" " if unicodedata.category(c) == "Cc" else c for c in query)
    words = [w.strip("".join(c for c in w if not c.isalnum())) for w in plain.split()]
    return re.compile(
        "|".join(r"\b" + re.escape(w) for w in sorted(set(words) - {""}, key=len, reverse=True)), re.I
    )


def snippet(body: str, found: re.Pattern[str]) -> str:
    """A piece of ``body`` around the first word ``found`` matches (its start when none does: a word in the
    title, or matched by FTS5 alone, without its accents), on one line, made inert, the words between
    ``**``. FTS5's own snippet() re-reads every hit's whole text: 25-77 ms for 20 hits of the bench's
    backup, against 3-10 ms this way. Pure."""
    first = found.search(body)
    start = max(0, first.start() - SNIPPET_BEFORE) if first else 0
    piece = body[start : start + SNIPPET_CHARS]
    if start > 0:
        piece = "…" + piece.split(maxsplit=1)[-1] if " " in piece[:20] else "…" + piece
    if start + SNIPPET_CHARS < len(body):
        piece = piece.rsplit(maxsplit=1)[0] + "…"
    line = " ".join(piece.split())
    pieces = found.split(line) if found.pattern else [line]
    marks = found.findall(line) if found.pattern else []
    out = [clean(pieces[0], 10_000)]
    for mark, rest in zip(marks, pieces[1:], strict=True):
        out.append(f"{SHOWN_MARK}{clean(mark)}{SHOWN_MARK}{clean(rest, 10_000)}")
    return "".join(out)


def with_opencode(hits: list[Hit], live: set[str]) -> list[Hit]:
    """``hits`` with ``in_opencode`` set from ``live`` (the ids opencode shows now). Pure."""
    return [replace(h, in_opencode=h.session_id in live) for h in hits]


def fts5_available() -> bool:
    """Whether this Python's SQLite has FTS5 (CPython's own builds do; a distribution's may not)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    return True


def open_index(backup_path: Path, folder: Path | None = None, *, timeout: float = 10.0) -> Index:
    """The index of ``backup_path``, created empty when missing, and again (empty) when it is damaged,
    of another format or of another folder. ``timeout``: how long a write waits for another writer."""
    if not fts5_available():
        raise NoFullTextSearch("search needs SQLite's full-text search (FTS5), which this Python lacks")
    path = index_path(backup_path, folder)
    make_private_dirs(path.parent)
    try:
        return _open(backup_path, path, timeout)
    except (sqlite3.DatabaseError, _Stale) as exc:
        logger.warning("the search index %s cannot be used (%s); building it again", path, exc)
        remove(path)
        return _open(backup_path, path, timeout)


def remove(path: Path) -> None:
    """Delete an index and its journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


class _Stale(Exception):
    """The index file is of another format, or of another backup folder."""


def _open(backup_path: Path, path: Path, timeout: float) -> Index:
    with contextlib.suppress(
        FileExistsError
    ):  # private from its creation; SQLite gives its WAL the same mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a power cut may lose the last update, not more
        meta = _meta(conn)
        if not meta:
            conn.executescript(_SCHEMA)
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (("format", FORMAT), ("backup_path", str(backup_path))),
            )
        elif meta.get("format") != FORMAT or meta.get("backup_path") != str(backup_path):
            raise _Stale(f"format {meta.get('format')!r}")
        conn.execute("SELECT count(*) FROM docs").fetchone()
    except BaseException:
        conn.close()
        raise
    return Index(backup_path, conn, path)


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return {}
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
