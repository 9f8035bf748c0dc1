"""The destination folder: checks before a sync touches it, and its human-readable ``sync.log``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.backup.result import SyncResult
from app.errors import FailureKind, SyncFailed
from app.fsutil import PRIVATE_FILE, make_private_dirs
from app.transfer.base import INCOMING_PREFIX

LOG_NAME = "sync.log"
LOG_MAX_BYTES = 1 << 20
LOG_KEEP = 3


@dataclass(frozen=True)
class Destination:
    """``<backupPath>/<machine>/``: one folder per machine, so machines never delete each other's files."""

    backup_path: Path
    machine_dir: Path

    def append_log(self, when: datetime, result: SyncResult, *, private: bool = False) -> None:
        """Append one line to sync.log, rotating it past 1 MiB (sync.log.1 … .3). ``private``: the
        folder is encrypted; a failure is said by its kind, not by a message that may name a file."""
        log = self.machine_dir / LOG_NAME
        with contextlib.suppress(FileNotFoundError):
            if log.stat().st_size > LOG_MAX_BYTES:
                for i in range(LOG_KEEP - 1, 0, -1):
                    older = log.with_name(f"{LOG_NAME}.{i}")
                    if older.exists():
                        os.replace(older, log.with_name(f"{LOG_NAME}.{i + 1}"))
                os.replace(log, log.with_name(f"{LOG_NAME}.1"))
        summary = result.kind.sentence if private and result.kind is not None else result.summary()
        line = f"{when.isoformat(timespec='seconds')} {result.outcome.value.upper():7} {summary}\n"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)


# ".name.tmp-<pid>" (ours) and ".name.XXXXXX" (rsync's temp names)
_TEMP = re.compile(r"^\..+\.(tmp-\d+|[A-Za-z0-9]{6})$")


def sweep_stale_temp(machine_dir: Path, now: float, older_than_s: float = 600) -> int:
    """Remove what a killed sync left in the folders syncs write (storage/ is too big to scan each time)."""
    removed = 0
    folders = [machine_dir, machine_dir / "snapshots", machine_dir / "manifest.d"]
    sessions = machine_dir / "sessions"
    if sessions.is_dir():
        folders += [p for p in sessions.iterdir() if p.is_dir()]
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if not entry.name.startswith("."):
                continue  # only hidden names can be temp files; the rest is never stat'ed
            with contextlib.suppress(OSError):
                stale = now - entry.stat(follow_symlinks=False).st_mtime > older_than_s
                if stale and _TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
                elif stale and entry.name.startswith(INCOMING_PREFIX) and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)  # robocopy's private landing folder of a killed sync
                    removed += 1
    return removed


def prepare_destination(backup_path: Path, machine: str) -> Destination:
    """Make sure ``<backup_path>/<machine>`` exists; the backup folder is created only if its parent exists.

    A missing parent means an unmounted drive or a stopped Google Drive: DEST_MISSING, retried later.
    """
    if not backup_path.is_dir():
        if backup_path.exists():
            raise SyncFailed(f"the backup path is not a folder: {backup_path}", FailureKind.FATAL)
        if not backup_path.parent.is_dir():
            raise SyncFailed(
                f"the backup folder's parent is missing (drive not mounted?): {backup_path.parent}",
                FailureKind.DEST_MISSING,
            )
        make_private_dirs(backup_path)
    machine_dir = backup_path / machine
    make_private_dirs(machine_dir)
    return Destination(backup_path, machine_dir)
