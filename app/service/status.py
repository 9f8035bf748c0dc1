"""The service's immutable Status, and the status file that lets other processes read it.

The file is ``<app state dir>/service/status.json``, replaced atomically after every transition, so a
reader never sees half of it. It says ``stopped`` when the service ended cleanly; a crashed service
leaves a stale file, which readers recognise because the instance lock is free.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from app.fsutil import atomic_write_bytes, make_private_dirs

logger = logging.getLogger(__name__)

STATES = ("starting", "idle", "waiting", "syncing", "retrying", "failed", "paused", "stopping", "stopped")


@dataclass(frozen=True)
class Status:
    """What the service is doing, as the tray, the notifier and ``opencode-backup status`` show it.

    Times are ISO 8601 UTC strings (or None). ``pending`` counts changes not yet in a started sync
    (changed legacy files, plus one for the database). ``last_kind`` is the FailureKind value of the
    last failed sync; ``sessions`` the number of sessions in the backup after the last good sync.
    """

    state: str = "starting"
    pid: int = 0
    started: str | None = None
    last_sync: str | None = None
    last_result: str | None = None
    last_error: str | None = None
    last_summary: str | None = None
    last_kind: str | None = None
    sessions: int | None = None
    syncs: int = 0
    pending: int = 0
    next_sync: str | None = None
    next_retry: str | None = None
    failing_since: str | None = None
    paused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Status:
        """Build from a status file's JSON (unknown keys ignored)."""
        known = {f.name for f in fields(Status)}
        return Status(**{k: v for k, v in data.items() if k in known})


def status_path(state_dir: Path) -> Path:
    return state_dir / "service" / "status.json"


class StatusFile:
    """A status listener that writes each Status to the status file (runs on the service thread)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = status_path(state_dir)

    def __call__(self, status: Status) -> None:
        """Write ``status`` atomically; a failed write is logged, never raised."""
        try:
            make_private_dirs(self.path.parent)
            data = json.dumps(status.to_dict(), indent=1).encode()
            atomic_write_bytes(self.path, data, fsync=False)
        except OSError as exc:
            logger.warning("could not write the status file %s: %s", self.path, exc)


def read_status(state_dir: Path) -> Status | None:
    """The last Status a service wrote, or None when there is no readable status file."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        data = json.loads(status_path(state_dir).read_bytes())
        if isinstance(data, dict):
            return Status.from_dict(data)
    return None
