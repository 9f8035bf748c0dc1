"""An exclusive lock on a file that the system drops when its holder dies (``flock`` / ``msvcrt.locking``
through filelock), so a crash never leaves it held. One implementation for the service's single instance
and the sync lock alike."""

from __future__ import annotations

from pathlib import Path

import filelock

from app.fsutil import PRIVATE_FILE, make_private_dirs


class ProcessLock:
    """Held by at most one holder at a time, across processes and within one (a second object for the
    same file is a second holder). Not reentrant."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # no soft (file-exists) fallback: that kind outlives a crashed holder
        self._lock = filelock.FileLock(path, mode=PRIVATE_FILE, thread_local=False, fallback_to_soft=False)

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, waiting up to ``wait`` seconds; False when another holder keeps it."""
        make_private_dirs(self.path.parent)
        try:
            self._lock.acquire(timeout=wait)
        except filelock.Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked
