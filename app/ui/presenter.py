"""What the tray and the status window say about a Status: the icon, the tooltip, the rows. Pure.

No display is needed here (the tests run it headless); the tray and the dialog process call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from app.errors import FailureKind
from app.service.status import Status
from app.ui.icons import State

APP_TITLE = "opencode session backup"
SYNCING_AFTER = 1.0  # a sync shows as "syncing" only once it has run this long (no flicker)

_FAILURE_WORDS = {
    FailureKind.LOCKED.value: "Google Drive is busy",
    FailureKind.DEST_MISSING.value: "Backup folder not reachable",
    FailureKind.SOURCE_MISSING.value: "opencode's data not found",
    FailureKind.GUARD.value: "Most sessions vanished — backup held back",
    FailureKind.FATAL.value: "Backup failed",
}


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def span(seconds: float) -> str:
    """A short human duration: '40 s', '2 min', '3 h', '2 days'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def ago(stamp: str | None, now: datetime) -> str:
    when = parse_time(stamp)
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return "just now" if seconds < 10 else f"{span(seconds)} ago"


def until(stamp: str | None, now: datetime) -> str:
    when = parse_time(stamp)
    if when is None:
        return ""
    seconds = (when - now).total_seconds()
    return "now" if seconds < 1 else f"in {span(seconds)}"


def failure_words(kind: str | None) -> str:
    return _FAILURE_WORDS.get(kind or "", "Backup failed")


def icon_state(
    status: Status | None, configured: bool, show_syncing: bool, problem: str | None = None
) -> State:
    """The icon for a status. ``show_syncing`` is False during the first second of a sync; ``problem``
    says why the chosen backup folder cannot be used (then nothing runs)."""
    if problem:
        return State.FAILED
    if not configured:
        return State.NOT_CONFIGURED
    if status is None:
        return State.CHANGES_PENDING
    if status.paused:
        return State.PAUSED
    if status.state == "syncing":
        if show_syncing:
            return State.SYNCING
        return _resting(status)
    if status.state == "retrying":
        return State.RETRYING
    if status.state == "failed":
        return State.FAILED
    return _resting(status)


def _resting(status: Status) -> State:
    if status.last_result == "failed" and status.failing_since:
        return State.RETRYING if status.last_kind != FailureKind.GUARD.value else State.FAILED
    if status.pending or status.last_sync is None or status.state in ("waiting", "starting"):
        return State.CHANGES_PENDING
    return State.UP_TO_DATE


def tooltip(
    status: Status | None, configured: bool, show_syncing: bool, now: datetime, problem: str | None = None
) -> str:
    """One or two lines for the icon's tooltip, e.g. 'Backed up 2 min ago · 1,812 sessions'."""
    if problem:
        return f"Cannot back up: {problem}"
    if not configured:
        return f"{APP_TITLE}: not configured — choose a backup folder"
    if status is None:
        return f"{APP_TITLE}: starting"
    state = icon_state(status, configured, show_syncing)
    last = f"Backed up {ago(status.last_sync, now)}" if status.last_result in ("ok", "warning") else ""
    if status.sessions is not None and last:
        last += f" · {status.sessions:,} sessions"
    if state is State.PAUSED:
        return "Backups paused" + (f" · {last}" if last else "")
    if state is State.SYNCING:
        return "Backing up…" + (f" · last {ago(status.last_sync, now)}" if status.last_sync else "")
    if state is State.RETRYING:
        retry = until(status.next_retry, now)
        return f"{failure_words(status.last_kind)} — retrying" + (f" {retry}" if retry else "")
    if state is State.FAILED:
        return f"{failure_words(status.last_kind)} — click Sync now to try again"
    if state is State.CHANGES_PENDING:
        due = until(status.next_sync, now)
        head = "Changes waiting" + (f" — backup {due}" if due else "")
        return head + (f" · {last}" if last else "")
    return last or "Up to date"


@dataclass(frozen=True)
class Row:
    label: str
    value: str


def status_rows(status: Status | None, now: datetime, backup_path: str | None) -> list[Row]:
    """The status window's fields, in order."""
    rows = [Row("Backup folder", backup_path or "not chosen yet")]
    if status is None or status.state == "stopped":
        rows.append(Row("Service", "not running"))
        return rows
    rows += [
        Row("State", tooltip(status, backup_path is not None, True, now)),
        Row("Last backup", ago(status.last_sync, now) if status.last_sync else "none yet"),
        Row("Last result", status.last_summary or status.last_result or "—"),
        Row("Sessions backed up", f"{status.sessions:,}" if status.sessions is not None else "—"),
        Row("Backups this session", str(status.syncs)),
        Row("Changes waiting", str(status.pending)),
    ]
    if status.next_retry:
        rows.append(Row("Next retry", until(status.next_retry, now)))
    elif status.next_sync and not status.paused:
        rows.append(Row("Next backup", until(status.next_sync, now)))
    if status.failing_since:
        rows.append(Row("Failing since", ago(status.failing_since, now)))
    rows.append(Row("Last error", status.last_error or "none"))
    rows.append(Row("Service", f"running (pid {status.pid or os.getpid()})"))
    return rows


class SyncingDelay:
    """Shows ``syncing`` only when a sync has lasted ``SYNCING_AFTER`` seconds (no flicker on the
    usual 20 ms syncs). Feed it every Status with a monotonic clock; ask :meth:`show` at any time."""

    def __init__(self, after: float = SYNCING_AFTER) -> None:
        self._after = after
        self._since: float | None = None

    def update(self, status: Status | None, now: float) -> None:
        syncing = status is not None and status.state == "syncing"
        if not syncing:
            self._since = None
        elif self._since is None:
            self._since = now

    def show(self, now: float) -> bool:
        return self._since is not None and now - self._since >= self._after

    def due_at(self) -> float | None:
        """When :meth:`show` turns True (None: no sync running)."""
        return None if self._since is None else self._since + self._after
