"""The safety copy every restore takes of opencode's database first, and the sweep of what a killed restore
left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from datetime import datetime
from pathlib import Path

from app.backup import guard
from app.fsutil import PRIVATE_FILE, make_private_dirs
from app.opencode.sessions import open_readonly
from app.platform.process import pid_alive

logger = logging.getLogger(__name__)

SAFETY_DIR = "before-restore"
KEEP_SAFETY_COPIES = 5


def safety_copy(db: Path, folder: Path, now: datetime) -> Path:
    """Copy ``db`` with SQLite's backup API (one step) into ``folder``; keep the newest few; return it.

    The copy holds opencode's tokens: the folder is private and the file 0600 from its creation on;
    a temp copy a killed restore left behind is removed first."""
    make_private_dirs(folder)
    sweep_dead_temps(folder)
    target = folder / f"{db.stem}-before-restore-{guard.stamp(now)}.db"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    os.close(fd)  # SQLite writes into the private empty file (and gives its journal the same mode)
    src = open_readonly(db)
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        src.close()
    os.replace(tmp, target)
    copies = sorted(p for p in folder.glob("*-before-restore-*.db") if not p.name.startswith("."))
    for old in copies[:-KEEP_SAFETY_COPIES]:
        with contextlib.suppress(OSError):
            old.unlink()
    logger.info("safety copy of %s: %s", db.name, target)
    return target


_TEMP_PID = re.compile(r"\.tmp-(\d+)(-journal|-wal)?$")


def sweep_dead_temps(folder: Path) -> int:
    """Remove ``.name.tmp-<pid>`` files whose process is gone (what a killed restore leaves)."""
    removed = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as it:
        for entry in it:
            m = _TEMP_PID.search(entry.name)
            if m and entry.name.startswith(".") and not pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
