"""Is a process alive, and the leftover of a process of ours that died (psutil knows on every platform)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs now (its id may have been reused: callers only use it to
    decide whether a leftover temp file of theirs can go)."""
    return pid > 0 and psutil.pid_exists(pid)


def note_child(pidfile: Path, pid: int) -> None:
    """Remember a long-lived child (its pid and start time) in ``pidfile``, for :func:`end_leftover`."""
    with contextlib.suppress(psutil.Error, OSError):
        pidfile.write_text(f"{pid} {psutil.Process(pid).create_time()}")


def end_leftover(pidfile: Path) -> None:
    """End the child that ``pidfile`` names when it still runs though its parent died (Windows and macOS
    have no way to make a child die with its parent: Linux does, see app.transfer.runner). Only that very
    process (its pid and start time both match); the file is removed."""
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        pid_text, created = pidfile.read_text().split()
        child = psutil.Process(int(pid_text))
        parent = child.parent()
        if abs(child.create_time() - float(created)) < 0.01 and (
            parent is None or parent.pid == 1 or not parent.is_running()
        ):
            logger.info("ending a leftover child of a process that died: pid %d", child.pid)
            child.terminate()
            child.wait(5)
    with contextlib.suppress(OSError):
        pidfile.unlink()
