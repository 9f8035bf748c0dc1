"""The service's immutable Status, and the status file that lets other processes read it.

The file is ``<app state dir>/service/status.json``, replaced atomically after every transition, so a
reader never sees half of it. It says ``stopped`` when the service ended cleanly; a crashed service
leaves a stale file, which readers recognise because the instance lock is free.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app import codec
from app.backup.progress import Progress
from app.backup.result import Outcome
from app.errors import FailureKind
from app.fsutil import atomic_write_bytes, make_private_dirs

logger = logging.getLogger(__name__)

MAX_STATUS_BYTES = 1 << 20


class ServiceState(enum.Enum):
    """What the service is doing. NO_DATA_YET: opencode has not written its data folder yet (a calm
    wait, not a failure: the watcher is on the folder's parent and the first session is backed up
    within the usual delay)."""

    STARTING = "starting"
    IDLE = "idle"
    WAITING = "waiting"
    SYNCING = "syncing"
    RESTORING = "restoring"  # a confirmed restore waits for a running sync, or runs
    RETRYING = "retrying"
    FAILED = "failed"
    PAUSED = "paused"
    NO_DATA_YET = "no-data-yet"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Status:
    """What the service is doing, as the tray, the notifier and ``opencode-backup status`` show it.

    ``last_attempt`` is when the last sync ended, whatever its outcome; ``last_backup`` when the last
    sync that backed everything up ended (None: none yet). ``pending`` counts changes not yet in a
    started sync (changed legacy files, plus one for the database). ``last_kind`` says why the last sync
    failed and ``locked_path`` which file held it up; ``sessions`` is the number of sessions in the
    backup after the last good sync. ``source`` and ``destination`` are the data folder watched and the
    machine folder written, so a command can tell whether it talks about the same backup. ``progress``
    says how far the running sync or restore has got (None when none runs, or it has not said yet).
    """

    state: ServiceState = ServiceState.STARTING
    pid: int = 0
    started: datetime | None = None
    last_attempt: datetime | None = None
    last_backup: datetime | None = None
    last_outcome: Outcome | None = None
    last_error: str | None = None
    last_summary: str | None = None
    last_kind: FailureKind | None = None
    locked_path: str | None = None
    sessions: int | None = None
    syncs: int = 0
    pending: int = 0
    next_sync: datetime | None = None
    next_retry: datetime | None = None
    failing_since: datetime | None = None
    paused: bool = False
    source: str | None = None
    destination: str | None = None
    progress: Progress | None = None
    encrypted: bool | None = None  # the last sync wrote encrypted files (None: no sync yet)


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
            atomic_write_bytes(self.path, codec.dumps(status, indent=1), fsync=False)
        except OSError as exc:
            logger.warning("could not write the status file %s: %s", self.path, exc)


def read_status(state_dir: Path) -> Status | None:
    """The last Status a service wrote, or None when there is no readable status file."""
    try:
        with open(status_path(state_dir), "rb") as fh:
            raw = fh.read(MAX_STATUS_BYTES + 1)
        if len(raw) <= MAX_STATUS_BYTES:
            return codec.loads(Status, raw)
    except (OSError, codec.CodecError):
        pass
    return None
