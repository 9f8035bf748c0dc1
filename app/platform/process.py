"""Is a process alive? (psutil knows on every platform.)"""

from __future__ import annotations

import psutil


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs now (its id may have been reused: callers only use it to
    decide whether a leftover temp file of theirs can go)."""
    return pid > 0 and psutil.pid_exists(pid)
