"""The closed set of messages the service thread reads from its one queue.

Any thread may build and post them (watcher, worker, signal handlers, the control thread, a tray);
only the service thread acts on them. All are frozen, so a posted event can never change later.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field

from app.backup.progress import Progress
from app.backup.restore import Plan, RestoreRequest, RestoreResult
from app.backup.result import SyncResult


@dataclass(frozen=True)
class Changed:
    """Something changed in opencode's data dir. ``paths``: changed files under ``storage/``,
    relative to the data dir with ``/`` separators; ``appeared``: the data dir itself just appeared (or
    re-appeared). Neither: the database (or its WAL) changed."""

    paths: tuple[str, ...] = ()
    appeared: bool = False


@dataclass(frozen=True)
class SyncNow:
    """Sync as soon as possible, whatever the minimum interval. ``request_id`` names a caller (the
    ``sync`` command) waiting for this sync's result."""

    snapshot: bool = False
    allow_deletions: bool = False
    request_id: str | None = None


@dataclass(frozen=True)
class Pause:
    """Stop starting syncs (changes are still collected)."""


@dataclass(frozen=True)
class Resume:
    """Start syncing again; collected changes are synced by the usual rules."""


@dataclass(frozen=True)
class Quit:
    """Stop the service: cancel the running job, then end the service thread."""


@dataclass(frozen=True)
class RestoreNow:
    """Apply a confirmed restore plan: the service stops starting syncs, lets a running one end, runs the
    restore on the worker, completes ``done`` (with the result, or the BackupError that stopped it), then
    backs up what it restored. ``done`` is how the caller waits, without polling."""

    plan: Plan
    request: RestoreRequest
    done: Future[RestoreResult] = field(default_factory=Future, compare=False)


@dataclass(frozen=True)
class JobDone:
    """The worker finished a sync (``result`` may be a failure)."""

    result: SyncResult
    job_id: int


@dataclass(frozen=True)
class RestoreDone:
    """The worker finished a restore: its result, or the error that stopped it before any change."""

    outcome: RestoreResult | Exception
    job_id: int


@dataclass(frozen=True)
class Progressed:
    """How far the running job ``job_id`` has got (already throttled); shown until that job ends."""

    progress: Progress
    job_id: int


@dataclass(frozen=True)
class Tick:
    """Time passed: re-check timers (posted by tests with a fake clock, or on a queue timeout)."""


Event = Changed | SyncNow | Pause | Resume | Quit | RestoreNow | JobDone | RestoreDone | Progressed | Tick
