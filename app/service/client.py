"""The other side of :mod:`app.service.control`: how a command (the CLI, the agent tools) reaches the
running service, and whether it is the service of the backup the command means."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from app.backup.progress import Sink, nowhere
from app.backup.result import SyncResult
from app.errors import FailureKind
from app.service import control
from app.service.status import ServiceState, Status, read_status

SYNC_REPLY_TIMEOUT = 6 * 3600.0
NOT_RUNNING = (
    "no backup service is running "
    "(start it with 'opencode-backup run', or 'run --headless' without a desktop)"
)


def live_status(state_dir: Path) -> Status | None:
    """The running service's Status, or None when no service runs."""
    if not control.service_running(state_dir):
        return None
    return read_status(state_dir) or Status(state=ServiceState.STARTING)


def same_backup(status: Status, source: Path, machine_dir: Path | None) -> bool:
    """True when the running service watches ``source`` and writes ``machine_dir`` (a command with other
    settings must not report, or ask for, the service's work as its own)."""
    if machine_dir is None or status.destination is None or status.source is None:
        return False
    return Path(status.source) == source and Path(status.destination) == machine_dir


def sync_via_service(
    state_dir: Path,
    snapshot: bool,
    allow_deletions: bool,
    timeout: float = SYNC_REPLY_TIMEOUT,
    progress: Sink = nowhere,
) -> SyncResult | None:
    """When a service runs, ask it for a sync and wait for that sync's result; None when none runs.

    While it waits, the progress the service publishes goes to ``progress``. A service that stops before
    answering yields a failed result.
    """
    if not control.service_running(state_dir):
        return None

    def show_progress() -> None:
        live = read_status(state_dir)
        if live is not None and live.progress is not None:
            progress(live.progress)

    rid = control.send(state_dir, "sync", snapshot=snapshot, allow_deletions=allow_deletions)
    result = control.wait_reply(state_dir, rid, timeout, meanwhile=show_progress)
    if result is None:
        return SyncResult.failure(_now(), FailureKind.FATAL, "the backup service stopped before it answered")
    return result


def command(state_dir: Path, name: str, wait_paused: bool | None = None) -> bool:
    """Send ``pause``, ``resume`` or ``sync-now``; False when no service runs. With ``wait_paused``,
    wait (up to 5 s) until the service shows it took the command."""
    if not control.service_running(state_dir):
        return False
    control.send(state_dir, name)
    if wait_paused is not None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            live = read_status(state_dir)
            if live is not None and live.paused == wait_paused:
                break
            time.sleep(0.1)
    return True


def _now() -> datetime:
    return datetime.now(UTC)
