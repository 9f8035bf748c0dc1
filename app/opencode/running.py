"""Is another process using opencode's database? Asked before a full replace, never trusted blindly.

One check per platform, chosen in :func:`users_of`: Linux reads ``/proc/*/fd`` (links only, no
file is opened), macOS asks ``lsof``, Windows tries to rename the file (an open SQLite file cannot
be renamed there). Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path


def db_files(db: Path) -> tuple[Path, ...]:
    """The database and its WAL and shared-memory files."""
    return (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))


def users_of(db: Path) -> tuple[list[str], str]:
    """(descriptions of other processes holding ``db`` open, how that was found out)."""
    if sys.platform == "win32":
        found = _windows(db)
    elif sys.platform == "darwin":
        found = _lsof(db)
    else:
        found = _proc(db) if Path("/proc/self/fd").is_dir() else _lsof(db)
    return found


def _proc(db: Path) -> tuple[list[str], str]:
    wanted = {str(p.resolve()) for p in db_files(db)}
    me = os.getpid()
    found: list[str] = []
    with os.scandir("/proc") as procs:
        pids = [e.name for e in procs if e.name.isdigit() and int(e.name) != me]
    for pid in pids:
        with contextlib.suppress(OSError), os.scandir(f"/proc/{pid}/fd") as fds:
            for fd in fds:
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in wanted:
                        found.append(f"pid {pid} ({_comm(pid)})")
                        break
    return found, "another process has the database files open (/proc/*/fd)"


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _lsof(db: Path) -> tuple[list[str], str]:
    lsof = shutil.which("lsof")
    how = "another process has the database files open (lsof)"
    if lsof is None:
        return [], how
    existing = [str(p) for p in db_files(db) if p.exists()]
    if not existing:
        return [], how
    res = subprocess.run(
        [lsof, "-t", "--", *existing], capture_output=True, text=True, timeout=30, check=False
    )
    pids = sorted({p for p in res.stdout.split() if p.isdigit() and int(p) != os.getpid()})
    return [f"pid {p}" for p in pids], how


def _windows(db: Path) -> tuple[list[str], str]:
    probe = db.with_name(db.name + ".restore-probe")
    try:
        os.rename(db, probe)
    except PermissionError:
        return ["a process holding opencode.db open"], "the database file cannot be renamed (it is open)"
    except OSError:
        return [], "rename probe"
    os.rename(probe, db)
    return [], "the database file could be renamed (nothing holds it open)"
