"""A non-blocking exclusive lock on an open file, released when the file closes or the process dies."""

from __future__ import annotations

import os
import sys
from typing import IO

if sys.platform == "win32":
    import msvcrt

    def try_lock(fh: IO[bytes]) -> bool:
        """Take the lock or return False at once if another process holds it."""
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def try_lock(fh: IO[bytes]) -> bool:
        """Take the lock or return False at once if another process holds it (records our pid)."""
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        os.ftruncate(fh.fileno(), 0)
        os.write(fh.fileno(), str(os.getpid()).encode())
        return True
