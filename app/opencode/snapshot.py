"""Full database snapshots: SQLite's online backup API in one step, secrets scrubbed, zstd-compressed.

One step (``pages=-1``) because stepping in small chunks restarts on every writer commit and never
finishes under a live opencode. The copy is scrubbed in place, then rewritten by ``VACUUM INTO`` into a
second private file: that one holds only live rows, so nothing deleted (by the scrub, or by opencode long
ago) survives in its free space, and it is what gets compressed. Runs on the worker thread (or a helper
thread of its sync); needs up to twice the database's size of temporary local disk while it runs (the raw
copy and the clean one, never three), all of it removed before it returns.

Measured on the bench database (808 MB, 2 cores): the in-place ``VACUUM`` this replaces took 9.7 s (it
rebuilds the database in a temp file, then writes it back through a rollback journal); ``VACUUM INTO``
takes 3.2 s. zstd runs on one thread: with ``threads=-1`` it took 1.2 s instead of 2.2 s but added 50 MB
to the process's peak, and the sync runs the snapshot beside the session export, which uses the other core.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.fsutil import atomic_writer
from app.opencode.schema import SECRET_COLUMNS, SECRET_TABLES, quote, schema_version
from app.opencode.sessions import open_readonly

logger = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".db.zst"
_NAME = re.compile(r"^(?P<label>.+)-(?P<stamp>\d{4}-\d{2}-\d{2}T\d{6}\.\d{3}Z)\.db\.zst$")
_POLL_STEPS = 100_000  # SQLite VM steps between two looks at ``cancelled``: ~0.1 s of VACUUM INTO here
ZSTD_LEVEL = 3  # bench/compression.py: ratio and speed measured side by side with gzip


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file written to ``path`` (compressed), and what it holds."""

    path: Path
    size: int
    sha256: str
    raw_size: int
    sessions: int
    opencode_schema: str | None


class SnapshotCancelled(Exception):
    """``cancelled()`` turned true while a snapshot was being taken; its temporary files are gone."""


def take_snapshot(
    db: Path, out: Path, work_dir: Path, cancelled: Callable[[], bool] = lambda: False
) -> Snapshot:
    """Copy ``db`` consistently, remove every secret from the copy, compress it to ``out`` atomically.

    ``cancelled`` is polled between steps, inside the SQLite ones and between compressed chunks (the
    backup API's single step cannot be interrupted: a second or two); when it turns true this raises
    SnapshotCancelled. Any thread; the sync runs it beside the session export."""
    work_dir.mkdir(parents=True, exist_ok=True)
    raw = work_dir / f".{out.name}.raw-{os.getpid()}"
    clean = work_dir / f".{out.name}.clean-{os.getpid()}"
    temps = [p.with_name(p.name + suffix) for p in (raw, clean) for suffix in ("", "-journal", "-wal")]
    _remove(temps)
    try:
        src = open_readonly(db)
        try:
            dst = sqlite3.connect(raw, isolation_level=None)
            try:
                src.backup(dst, pages=-1)
            finally:
                dst.close()
        finally:
            src.close()
        scrub(raw, clean, cancelled)
        _remove(temps[:3])  # the raw copy: half the temporary disk, no longer needed
        sessions, version = check(clean, cancelled)
        raw_size = clean.stat().st_size
        size, digest = _compress(clean, out, cancelled)
    except sqlite3.OperationalError:
        if cancelled():  # the progress handler stopped SQLite
            raise SnapshotCancelled from None
        raise
    finally:
        _remove(temps)
    logger.info("snapshot of %s: %d bytes -> %d bytes (%s)", db.name, raw_size, size, out.name)
    return Snapshot(out, size, digest, raw_size, sessions, version)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def snapshot_name(label: str, stamp: str) -> str:
    """``<database label>-<UTC stamp>.db.zst``, e.g. ``opencode-2026-11-29T223000.123Z.db.zst``."""
    return f"{label}-{stamp}{SNAPSHOT_SUFFIX}"


def parse_snapshot_name(name: str) -> tuple[str, str] | None:
    """(label, stamp) of a snapshot file name, or None for anything else."""
    m = _NAME.match(name)
    return (m["label"], m["stamp"]) if m else None


def scrub(path: Path, out: Path, cancelled: Callable[[], bool] = lambda: False) -> None:
    """Delete secret rows and columns from the private copy ``path``, then write its live rows to ``out``
    (``VACUUM INTO``): a fresh file with no free pages, so nothing deleted survives in it."""
    _check_cancel(cancelled)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.set_progress_handler(lambda: int(cancelled()), _POLL_STEPS)
    try:
        # a throwaway copy: no journal, no fsync (it is removed if anything fails)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA secure_delete=ON")  # zeroes what the scrub deletes in the copy too
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        conn.execute("BEGIN")
        for table in sorted(SECRET_TABLES & tables):
            conn.execute(f"DELETE FROM {quote(table)}")
        for (table, column), value in SECRET_COLUMNS.items():
            if table in tables:
                cols = {r[1] for r in conn.execute(f"PRAGMA table_info({quote(table)})")}
                if column in cols:
                    conn.execute(f"UPDATE {quote(table)} SET {quote(column)} = ?", (value,))
        conn.execute("COMMIT")
        conn.execute("VACUUM INTO ?", (str(out),))  # copies rows, never free space
    finally:
        conn.close()


def check(path: Path, cancelled: Callable[[], bool] = lambda: False) -> tuple[int, str | None]:
    """``quick_check`` the clean copy (raises sqlite3.DatabaseError when it fails); returns its number of
    sessions and schema version."""
    _check_cancel(cancelled)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.set_progress_handler(lambda: int(cancelled()), _POLL_STEPS)
    try:
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(f"snapshot copy failed quick_check: {ok}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        sessions = conn.execute("SELECT count(*) FROM session").fetchone()[0] if "session" in tables else 0
        return int(sessions), schema_version(conn)
    finally:
        conn.close()


def _check_cancel(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise SnapshotCancelled


def _compress(raw: Path, out: Path, cancelled: Callable[[], bool]) -> tuple[int, str]:
    import zstandard  # noqa: PLC0415 - only snapshots need it (start-up time)

    digest = hashlib.sha256()
    size = 0
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)  # one thread: see above
    with open(raw, "rb") as src, atomic_writer(out) as dst:
        for chunk in cctx.read_to_iter(src, read_size=1 << 20, write_size=1 << 20):
            _check_cancel(cancelled)
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    return size, digest.hexdigest()


def decompress(path: Path, out: Path) -> None:
    """Write the database inside a snapshot file to ``out``, uncapped: only for files we just wrote.

    Backups read back from a destination go through ``backup_reader.checked_snapshot`` instead.
    """
    import zstandard  # noqa: PLC0415 - only snapshots need it

    dctx = zstandard.ZstdDecompressor()
    with open(path, "rb") as src, atomic_writer(out, fsync=False) as dst:
        dctx.copy_stream(src, dst, read_size=1 << 20, write_size=1 << 20)
