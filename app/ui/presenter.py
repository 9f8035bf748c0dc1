"""What the tray and the status window say about a Status: the icon, the tooltip, the rows. Pure.

No display is needed here (the tests run it headless); the tray and the dialog process call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime

from app.backup.progress import Progress
from app.backup.result import Outcome
from app.errors import FailureKind
from app.safe_text import LINE_LIMIT, clean
from app.service.status import ServiceState, Status
from app.ui.icons import State
from app.words import size, span

APP_TITLE = "opencode session backup"
SYNCING_AFTER = 1.0  # a sync shows as "syncing" only once it has run this long (no flicker)
NO_DATA_YET = "Waiting for opencode's first session — nothing to back up yet"

_FAILURE_WORDS = {
    FailureKind.LOCKED: "Google Drive is busy",
    FailureKind.DEST_MISSING: "Backup folder not reachable",
    FailureKind.SOURCE_MISSING: "opencode's data not found",
    FailureKind.OFFLINE: "Backup remote not reachable",
    FailureKind.RATE_LIMITED: "Backup remote asks us to slow down",
    FailureKind.HELD_BACK: "Backed up here; the upload waits as set",
    FailureKind.SIGN_IN: "rclone cannot sign in to the backup remote",
    FailureKind.GUARD: "Most sessions vanished — backup held back",
    FailureKind.FOREIGN: "Backup folder belongs to another install",
    FailureKind.DAMAGED: "Backup index damaged",
    FailureKind.FATAL: "Backup failed",
}

# what a failed icon's tooltip says to do, where Sync now is not it
_WHAT_NEXT = {
    FailureKind.FOREIGN: "Adopt backup folder… if it is this computer's",
    FailureKind.DAMAGED: "run opencode-backup repair",
    FailureKind.SIGN_IN: "run rclone config reconnect, then Sync now",
}


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return "just now" if seconds < 10 else f"{span(seconds)} ago"


def until(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    seconds = (when - now).total_seconds()
    return "now" if seconds < 1 else f"in {span(seconds)}"


def progress_words(progress: Progress | None) -> str:
    """'640 of 1,800 sessions · 310.2 MiB · about 2 min left' ('' when there is nothing to say)."""
    if progress is None:
        return ""
    if progress.total is None:
        return progress.words()
    parts = [f"{progress.done:,} of {progress.total:,} {progress.unit}".rstrip()]
    if progress.nbytes > 0:
        parts.append(size(progress.nbytes))
    left = progress.left()
    return " · ".join(parts + ([left] if left else []))


def failure_words(kind: FailureKind | None) -> str:
    return _FAILURE_WORDS.get(kind or FailureKind.FATAL, "Backup failed")


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
    if status.state is ServiceState.RESTORING:  # the user just confirmed it: shown at once
        return State.SYNCING
    if status.paused:
        return State.PAUSED
    if status.state is ServiceState.SYNCING:
        if show_syncing:
            return State.SYNCING
        return _resting(status)
    if status.state is ServiceState.RETRYING:
        return State.RETRYING
    if status.state is ServiceState.FAILED:
        return State.FAILED
    return _resting(status)


def _resting(status: Status) -> State:
    if status.last_outcome is Outcome.FAILED and status.failing_since:
        return (
            State.FAILED
            if status.last_kind is not None and status.last_kind.needs_a_person
            else State.RETRYING
        )
    if (
        status.pending
        or status.last_backup is None
        or status.state in (ServiceState.WAITING, ServiceState.STARTING, ServiceState.NO_DATA_YET)
    ):
        return State.CHANGES_PENDING
    return State.UP_TO_DATE


def _backed_up(status: Status, now: datetime) -> str:
    """'Backed up 2 min ago · 1,812 sessions', or '' when no backup has succeeded yet."""
    if status.last_backup is None:
        return ""
    text = f"Backed up {ago(status.last_backup, now)}"
    return text + (f" · {status.sessions:,} sessions" if status.sessions is not None else "")


def tooltip(
    status: Status | None, configured: bool, show_syncing: bool, now: datetime, problem: str | None = None
) -> str:
    """One line for the icon's tooltip, e.g. 'Backed up 2 min ago · 1,812 sessions' (made inert: a
    problem quotes a folder)."""
    return clean(_tooltip(status, configured, show_syncing, now, problem), LINE_LIMIT)


def _tooltip(
    status: Status | None, configured: bool, show_syncing: bool, now: datetime, problem: str | None
) -> str:
    if problem:
        return f"Cannot back up: {problem}"
    if not configured:
        return f"{APP_TITLE}: not configured — choose a backup folder"
    if status is None:
        return f"{APP_TITLE}: starting"
    state = icon_state(status, configured, show_syncing)
    last = _backed_up(status, now)
    doing = progress_words(status.progress)
    if status.state is ServiceState.RESTORING:
        return "Restoring sessions into opencode…" + (f" {doing}" if doing else "")
    if state is State.PAUSED:
        return "Backups paused" + (f" · {last}" if last else "")
    if state is State.SYNCING:
        if doing:
            return f"Backing up… {doing}"
        return "Backing up…" + (
            f" · last backup {ago(status.last_backup, now)}" if status.last_backup else ""
        )
    if state is State.RETRYING:
        retry = until(status.next_retry, now)
        return f"{failure_words(status.last_kind)} — retrying" + (f" {retry}" if retry else "")
    if state is State.FAILED:
        then = _WHAT_NEXT.get(status.last_kind or FailureKind.FATAL, "click Sync now to try again")
        return f"{failure_words(status.last_kind)} — {then}"
    if status.state is ServiceState.NO_DATA_YET and not status.pending:
        return NO_DATA_YET
    if state is State.CHANGES_PENDING:
        due = until(status.next_sync, now)
        head = "Changes waiting" + (f" — backup {due}" if due else "")
        return head + (f" · {last}" if last else "")
    return last or "Up to date"


ENCRYPTED = "Encrypted (age)"


@dataclass(frozen=True)
class Row:
    label: str
    value: str


def status_rows(status: Status | None, now: datetime, backup_path: str | None) -> list[Row]:
    """The status window's fields, in order; each value made inert (the last error quotes the backup
    folder's file names)."""
    return [Row(r.label, clean(r.value, LINE_LIMIT)) for r in _rows(status, now, backup_path)]


def _rows(status: Status | None, now: datetime, backup_path: str | None) -> list[Row]:
    rows = [Row("Backup folder", backup_path or "not chosen yet")]
    if status is None or status.state is ServiceState.STOPPED:
        rows.append(Row("Service", "not running"))
        return rows
    rows += [
        Row("State", tooltip(replace(status, progress=None), backup_path is not None, True, now)),
        *([Row("Progress", _progress_row(status.progress))] if status.progress else []),
        Row("Last backup", ago(status.last_backup, now) if status.last_backup else "none yet"),
        Row("Last attempt", _attempt(status, now)),
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
    if status.encrypted is not None:
        rows.append(Row("Encryption", ENCRYPTED if status.encrypted else "off"))
    rows.append(Row("Service", f"running (pid {status.pid or os.getpid()})"))
    return rows


def _progress_row(progress: Progress) -> str:
    """'Backing up sessions: 640 of 1,800 · about 2 min left'."""
    words, left = progress.words(), progress.left()
    return words[:1].upper() + words[1:] + (f" · {left}" if left else "")


def _attempt(status: Status, now: datetime) -> str:
    if status.last_attempt is None:
        return "none yet"
    what = status.last_summary or (status.last_outcome.value if status.last_outcome else "")
    return f"{ago(status.last_attempt, now)}: {what}" if what else ago(status.last_attempt, now)


class SyncingDelay:
    """Shows ``syncing`` only when a sync has lasted ``SYNCING_AFTER`` seconds (no flicker on the
    usual 20 ms syncs). Feed it every Status with a monotonic clock; ask :meth:`show` at any time."""

    def __init__(self, after: float = SYNCING_AFTER) -> None:
        self._after = after
        self._since: float | None = None

    def update(self, status: Status | None, now: float) -> None:
        syncing = status is not None and status.state is ServiceState.SYNCING
        if not syncing:
            self._since = None
        elif self._since is None:
            self._since = now

    def show(self, now: float) -> bool:
        return self._since is not None and now - self._since >= self._after

    def due_at(self) -> float | None:
        """When :meth:`show` turns True (None: no sync running)."""
        return None if self._since is None else self._since + self._after
