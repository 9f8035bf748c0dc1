"""Keeping the search index (:mod:`.search_index`) up with the backup folder (:mod:`.search` runs it).

A project folder ``sessions/<project>`` whose mtime is the one last seen (and was seen more than
``SETTLE_NS`` after it, for file systems with coarse times) has the files it had: renaming a file in or out
changes it. So a refresh costs a ``stat`` per project folder, and lists and ``stat``s only the folders that
changed; a file whose size or mtime changed is read again. A session gone from ``sessions/`` (deleted in
opencode, then synced away) is looked for in ``versions/``, newest first, and keeps its place in the index
with its last copy. A machine folder seen for the first time is walked whole, ``versions/`` included.

In a folder only this install's syncs write (``ours``: the service's and the sync command's own), a file
still at the inode indexed is taken as unchanged without a ``stat``: every new copy is put in place by a
rename or a link. Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import scan
from app.backup.progress import Report, Step, unreported
from app.backup.search_index import Index
from app.backup.transcript import words
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupError

logger = logging.getLogger(__name__)

SETTLE_NS = 2_000_000_000  # FAT keeps mtimes to 2 s: a folder seen within that of its mtime is listed again
COMMIT_EVERY = 0.5  # seconds of indexing per transaction: another process's update waits at most this


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did: files (re)read into the index, sessions dropped from it, files it could not
    read this time (machine, file, why)."""

    read: int = 0
    dropped: int = 0
    skipped: tuple[tuple[str, str, str], ...] = ()


def refresh(
    index: Index,
    machines: Sequence[str] | None = None,
    *,
    report: Report = unreported,
    ours: bool = False,
    seal: Seal = PLAIN,
) -> Refreshed:
    """Bring ``index`` up to date with the machine folders ``machines`` (None: every one there is, and
    those gone are dropped). Reports INDEXING progress over the files it reads. ``ours``: the folders are
    written by this install's syncs alone (a file still at its inode is unchanged, no ``stat`` needed).
    ``seal``: this install's keys (an encrypted file it cannot open is skipped, as a damaged one is)."""
    conn = index.conn
    names = scan.machine_folders(index.backup_path) if machines is None else list(machines)
    if machines is None:
        for (gone,) in conn.execute("SELECT DISTINCT machine FROM docs").fetchall():
            if gone not in names:
                with _transaction(conn):
                    _forget_machine(conn, gone)
    plans = [(name, _plan(conn, index.backup_path / name, name, ours)) for name in names]
    total = sum(len(plan.read) for _name, plan in plans)
    done = _Done(report, total, seal=seal)
    for name, plan in plans:
        _apply(conn, index.backup_path / name, name, plan, done)
    if total:
        report(Step.INDEXING, total, total, done.nbytes)
    return Refreshed(done.count, done.dropped, tuple(done.skipped))


@dataclass
class _Plan:
    read: list[scan.Found]  # files to read into the index
    drop: set[str]  # session ids no longer anywhere
    dirs: dict[str, int]  # project folders as seen now, by mtime
    seen_ns: int  # when they were looked at
    forget: set[str]  # skipped files gone from folders listed again


@dataclass
class _Done:
    report: Report
    total: int
    seal: Seal = PLAIN
    count: int = 0
    nbytes: int = 0
    dropped: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)


def _plan(conn: sqlite3.Connection, machine_dir: Path, machine: str, ours: bool) -> _Plan:
    now_ns = time.time_ns()
    seen_dirs = {
        rel: (m, s)
        for rel, m, s in conn.execute("SELECT rel, mtime_ns, seen_ns FROM dirs WHERE machine = ?", (machine,))
    }
    new_machine = not seen_dirs
    dirs = scan.project_dirs(machine_dir)
    listed = {
        rel
        for rel, mtime in dirs.items()
        if rel not in seen_dirs or seen_dirs[rel][0] != mtime or seen_dirs[rel][1] - mtime < SETTLE_NS
    }
    listed |= seen_dirs.keys() - dirs.keys()  # gone: whatever they held is gone from there
    # only the sessions of the folders listed again, and the deleted ones (their last copy is looked at)
    inodes: dict[str, scan.Found] = {}  # a file of a listed folder by its path, as indexed
    known: dict[str, tuple[str, int, int, bool]] = {}
    for sid, rel, size, mtime, in_backup, ino in conn.execute(
        "SELECT session_id, rel, size, mtime_ns, in_backup, ino FROM docs WHERE machine = ? "
        "AND (in_backup = 0 OR dir IN (SELECT value FROM json_each(?)))",
        (machine, json.dumps(sorted(listed))),
    ):
        known[sid] = (rel, size, mtime, bool(in_backup))
        if in_backup:
            inodes[rel] = scan.Found(sid, rel, size, mtime, True, ino)

    def same(rel: str, ino: int) -> scan.Found | None:
        found = inodes.get(rel)
        return found if found is not None and found.ino == ino else None

    bad = {
        rel: (size, mtime)
        for rel, size, mtime in conn.execute(
            "SELECT rel, size, mtime_ns FROM skipped WHERE machine = ?", (machine,)
        )
    }
    seen: dict[str, scan.Found] = {}
    for rel_dir in sorted(listed & dirs.keys()):
        for f in scan.files_in(machine_dir, rel_dir, same if ours else None):
            if f.session_id not in seen or f.mtime_ns > seen[f.session_id].mtime_ns:
                seen[f.session_id] = f
    vanished = {sid for sid, k in known.items() if k[3] and sid not in seen}
    deleted = {sid for sid, k in known.items() if not k[3] and sid not in seen}
    moved = _moved(machine_dir, known, deleted)  # a copy thinning replaced, or removed
    copies = scan.last_copies(machine_dir, None if new_machine else vanished | moved)
    copies = {sid: f for sid, f in copies.items() if sid not in seen}  # a new machine: seen is everything
    copies |= {sid: _as_found(sid, known[sid]) for sid in deleted - moved}  # still where they were
    wanted = list(seen.values()) + list(copies.values())
    read = [f for f in wanted if known.get(f.session_id) != (f.rel, f.size, f.mtime_ns, f.in_backup)]
    read = [f for f in read if bad.get(f.rel) != (f.size, f.mtime_ns)]  # known to be unreadable
    listed_files = {f.rel for f in seen.values()}
    forget = {rel for rel in bad if _folder(rel) in listed and rel not in listed_files}
    return _Plan(read, (vanished | deleted) - copies.keys(), dirs, now_ns, forget)


def _moved(machine_dir: Path, known: dict[str, tuple[str, int, int, bool]], deleted: set[str]) -> set[str]:
    """The deleted sessions whose copy in versions/ is no longer the one indexed (thinning replaced it)."""
    out = set()
    for sid in deleted:
        rel, size, mtime, _in = known[sid]
        try:
            st = (machine_dir / rel).lstat()
        except OSError:
            out.add(sid)
            continue
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            out.add(sid)
    return out


def _as_found(sid: str, known: tuple[str, int, int, bool]) -> scan.Found:
    return scan.Found(sid, known[0], known[1], known[2], known[3])


def _folder(rel: str) -> str:
    """``sessions/<project>`` of a file in it (any other file: its own path, never a listed folder)."""
    parts = rel.split("/")
    return "/".join(parts[:2]) if len(parts) == 3 else rel


def _apply(conn: sqlite3.Connection, machine_dir: Path, machine: str, plan: _Plan, done: _Done) -> None:
    began = time.monotonic()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sid in plan.drop:
            _drop(conn, machine, sid)
            done.dropped += 1
        conn.executemany(
            "DELETE FROM skipped WHERE machine = ? AND rel = ?", ((machine, r) for r in plan.forget)
        )
        for f in plan.read:
            done.report(Step.INDEXING, done.count, done.total, done.nbytes)
            _read_one(conn, machine_dir, machine, f, done)
            done.count += 1
            done.nbytes += f.size
            if time.monotonic() - began > COMMIT_EVERY:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
                began = time.monotonic()
        conn.execute("DELETE FROM dirs WHERE machine = ?", (machine,))
        conn.executemany(
            "INSERT INTO dirs VALUES (?, ?, ?, ?)",
            ((machine, rel, mtime, plan.seen_ns) for rel, mtime in plan.dirs.items()),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _read_one(conn: sqlite3.Connection, machine_dir: Path, machine: str, f: scan.Found, done: _Done) -> None:
    try:
        doc = br.read_session(machine_dir / f.rel, f.session_id, digest=False, seal=done.seal)
        body = words(doc)
    except BackupError as exc:
        logger.warning("not searched: %s/%s: %s", machine, f.rel, exc)
        conn.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?, ?, ?, ?)",
                     (machine, f.rel, f.size, f.mtime_ns, str(exc)))  # fmt: skip
        done.skipped.append((machine, f.rel, str(exc)))
        _drop(conn, machine, f.session_id)
        return
    conn.execute("DELETE FROM skipped WHERE machine = ? AND rel = ?", (machine, f.rel))
    directory = doc.session_row.get("directory")
    values = (f.rel, _folder(f.rel), f.size, f.mtime_ns, int(f.in_backup), f.ino, doc.title,
              directory if isinstance(directory, str) else "", doc.time_updated, doc.store)  # fmt: skip
    row = conn.execute(
        "SELECT rowid FROM docs WHERE machine = ? AND session_id = ?", (machine, f.session_id)
    ).fetchone()
    if row is None:
        rowid = conn.execute(
            "INSERT INTO docs (rel, dir, size, mtime_ns, in_backup, ino, title, directory, time_updated, "
            "store, machine, session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, machine, f.session_id),
        ).lastrowid
    else:
        rowid = row[0]
        conn.execute("DELETE FROM words WHERE rowid = ?", (rowid,))
        conn.execute(
            "UPDATE docs SET rel = ?, dir = ?, size = ?, mtime_ns = ?, in_backup = ?, ino = ?, title = ?, "
            "directory = ?, time_updated = ?, store = ? WHERE rowid = ?",
            (*values, rowid),
        )
    conn.execute("INSERT INTO words (rowid, title, body) VALUES (?, ?, ?)", (rowid, doc.title, body))


def _drop(conn: sqlite3.Connection, machine: str, sid: str) -> None:
    row = conn.execute(
        "SELECT rowid FROM docs WHERE machine = ? AND session_id = ?", (machine, sid)
    ).fetchone()
    if row is not None:
        conn.execute("DELETE FROM words WHERE rowid = ?", row)
        conn.execute("DELETE FROM docs WHERE rowid = ?", row)


def _forget_machine(conn: sqlite3.Connection, machine: str) -> None:
    conn.execute("DELETE FROM words WHERE rowid IN (SELECT rowid FROM docs WHERE machine = ?)", (machine,))
    for table in ("docs", "dirs", "skipped"):
        conn.execute(f"DELETE FROM {table} WHERE machine = ?", (machine,))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
