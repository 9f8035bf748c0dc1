"""This install's local state: the last sync's result (even when the destination was untouched), the
last *successful* one, and the lock that keeps two syncs (the service and a command line) from running at
once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app import codec
from app.backup.result import SyncResult
from app.errors import FailureKind, SyncFailed
from app.fsutil import atomic_write_bytes, make_private_dirs
from app.platform.lock import ProcessLock

LAST_RESULT = "last_result.json"  # the last attempt that did not back up
LAST_BACKUP = "last_backup.json"  # the last attempt that backed everything up
MAX_STATE_BYTES = 1 << 20
PERSON_WAIT = 30.0  # a command a person runs (adopt, repair) waits this long for a running sync to end


@dataclass(frozen=True)
class LastResults:
    """The last sync (``attempt``) and the last one that backed up (``backup``); either may be None."""

    attempt: SyncResult | None
    backup: SyncResult | None


def record_result(state_dir: Path, result: SyncResult) -> None:
    """Keep ``result`` as the last backup when it backed up, else as the last attempt: one file written
    per sync (the last attempt is the newer of the two, see :func:`load_results`)."""
    data = codec.dumps(result)  # compact: indent takes the pure-Python encoder (0.3 ms of a sync)
    make_private_dirs(state_dir)
    atomic_write_bytes(state_dir / (LAST_BACKUP if result.backed_up else LAST_RESULT), data, fsync=False)


def load_results(state_dir: Path) -> LastResults:
    """What :func:`record_result` kept (unreadable or foreign files count as nothing kept): the last
    attempt is whichever of the two was written last."""
    other, backup = _load(state_dir / LAST_RESULT), _load(state_dir / LAST_BACKUP)
    if other is None or (
        backup is not None and _written(state_dir / LAST_BACKUP) >= _written(state_dir / LAST_RESULT)
    ):
        return LastResults(backup, backup)
    return LastResults(other, backup)


def _written(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _load(path: Path) -> SyncResult | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
        if len(raw) > MAX_STATE_BYTES:
            return None
        return codec.loads(SyncResult, raw)
    except (OSError, codec.CodecError):
        return None


@contextlib.contextmanager
def sync_lock(state_dir: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the sync lock for the block (waiting up to ``wait`` seconds for it), or raise
    SyncFailed(LOCKED) when another sync keeps it. The lock dies with its process."""
    lock = ProcessLock(state_dir / "sync.lock")
    if not lock.acquire(wait):
        raise SyncFailed(
            "another sync is running for this backup; try again when it finishes", FailureKind.LOCKED
        )
    try:
        yield
    finally:
        lock.release()
