"""Is another process using opencode's database? Asked before a full replace, never trusted blindly.

psutil lists the files each process has open (Linux: ``/proc/*/fd``; macOS: libproc; links and handles
only, no file of opencode's is opened). On Windows, where a process's open files cannot be listed
reliably, the database is opened with no sharing allowed: that fails while any other process has it
open, and changes nothing either way (no rename that opencode could race). Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

from app.host import HOST


def db_files(db: Path) -> tuple[Path, ...]:
    """The database and its WAL and shared-memory files."""
    return (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))


def users_of(db: Path) -> tuple[list[str], str]:
    """(descriptions of other processes holding ``db`` open, how that was found out)."""
    return _exclusive_open(db) if HOST.who_has_a_file == "exclusive-open" else _open_files(db)


def _open_files(db: Path) -> tuple[list[str], str]:
    wanted = {str(p.resolve()) for p in db_files(db)}
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if any(f.path in wanted for f in proc.open_files()):
                found.append(f"pid {proc.pid} ({proc.info.get('name') or '?'})")
    return found, "another process has the database files open"


_SHARING_VIOLATION = 32


def _exclusive_open(db: Path) -> tuple[list[str], str]:  # pragma: no cover - Windows only
    """Open ``db`` with no sharing: refused (ERROR_SHARING_VIOLATION) while it is open elsewhere. The
    Windows calls are looked up where they run (ctypes has them only there)."""
    import ctypes  # noqa: PLC0415 - Windows only
    from ctypes import wintypes  # noqa: PLC0415

    kernel32 = getattr(ctypes, "windll").kernel32  # noqa: B009
    kernel32.CreateFileW.restype = wintypes.HANDLE
    generic_read, open_existing = 0x80000000, 3
    handle = kernel32.CreateFileW(str(db), generic_read, 0, None, open_existing, 0, None)
    if handle == wintypes.HANDLE(-1).value:
        if getattr(ctypes, "GetLastError")() == _SHARING_VIOLATION:  # noqa: B009
            return ["a process holding opencode.db open"], "the database cannot be opened alone (it is open)"
        return [], "exclusive-open probe"
    kernel32.CloseHandle(handle)
    return [], "the database file could be opened alone (nothing holds it open)"
