"""Desktop notifications: plyer first, pystray's own notify where plyer has no backend, a log line when
neither works. Only news a user must act on or would wait for: a failure episode (after its grace),
a Google Drive lock and its follow-up, the mass-deletion guard, recovery, a finished restore. Never a
routine successful backup.

The service thread calls :meth:`DesktopNotifier.episode`; delivery happens on the notifier's own
thread, because a D-Bus call can block for seconds when the notification daemon hangs.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import FailureKind
from app.safe_text import clean, clean_lines
from app.service.retry import EpisodeEvent, Persisting, Recovered
from app.ui.icons import State
from app.ui.presenter import APP_TITLE

logger = logging.getLogger(__name__)

Send = Callable[[str, str, str], None]  # title, body, icon file


@dataclass(frozen=True)
class Note:
    """One notification; ``state`` picks its icon (a failure never shows the green check)."""

    title: str
    body: str
    state: State = State.UP_TO_DATE


def locked_file(path: str | None) -> str:
    """The name of the file a lock held up (its last component), or a generic phrase."""
    name = re.split(r"[\\/]", path)[-1] if path else ""
    return name or "a file in the backup folder"


def episode_note(event: EpisodeEvent) -> Note:
    """What the user reads for one episode event. Pure."""
    if isinstance(event, Recovered):
        tries = f" ({event.failures} failed attempts)" if event.failures > 1 else ""
        return Note(
            "Backups work again",
            f"opencode sessions are backed up again; failing since {event.since:%H:%M} UTC{tries}.",
        )
    kind = event.kind
    bad = State.RETRYING if kind.retryable else State.FAILED
    if kind is FailureKind.LOCKED:
        held = locked_file(event.path)
        if isinstance(event, Persisting):
            return Note(
                "Google Drive is still holding a file",
                f"Google Drive has held {held} for half an hour, so backups are stuck. "
                "Use a local folder as the backup folder, or pause Google Drive, then choose Sync now.",
                bad,
            )
        return Note("Google Drive is holding a file", f"Google Drive is holding {held}; retrying.", bad)
    if kind is FailureKind.GUARD:
        return Note("Backup held back: most sessions vanished", FailureKind.GUARD.sentence, bad)
    if kind is FailureKind.FOREIGN:  # the message names adopt (the menu's Adopt backup folder…)
        return Note("This backup folder belongs to another install", event.message or kind.sentence, bad)
    if kind is FailureKind.DAMAGED:  # the message names repair
        return Note("The backup's index is damaged", event.message or kind.sentence, bad)
    if kind is FailureKind.DEST_MISSING:
        return Note("Backup folder not reachable", kind.sentence, bad)
    if kind is FailureKind.SOURCE_MISSING:
        return Note("opencode's data not found", event.message or kind.sentence, bad)
    return Note("Backups are failing", event.message or FailureKind.FATAL.sentence, bad)


def plyer_send(title: str, body: str, icon: str) -> None:
    """plyer's notify for this platform; raises (NotImplementedError) where plyer has no backend."""
    from plyer import notification  # noqa: PLC0415 - a desktop library, loaded when the first notification is sent

    notification.notify(title=title, message=body, app_name=APP_TITLE, app_icon=icon, timeout=10)


class DesktopNotifier:
    """The tray's notifier. ``senders`` are tried in order until one works; ``enabled=False`` (the
    ``notifications`` setting) only logs."""

    def __init__(self, senders: list[Send], icon_file: Callable[[State], str], enabled: bool = True) -> None:
        self._senders = senders
        self._icon_file = icon_file
        self._enabled = enabled
        self._queue: queue.SimpleQueue[Note | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self.sent: list[Note] = []  # what was delivered, in order (for tests and debugging)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then end the thread."""
        if self._thread.ident is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)

    # Notifier protocol (service thread)
    def episode(self, event: EpisodeEvent) -> None:
        self.notify(episode_note(event))

    def notify(self, note: Note) -> None:
        """Queue a notification (any thread; never blocks). Its words are made inert first: an error
        may quote a file name or a machine name from the backup folder."""
        note = Note(clean(note.title), clean_lines(note.body), note.state)
        logger.warning("notification: %s — %s", note.title, note.body)
        if self._enabled:
            self._queue.put(note)

    def _run(self) -> None:
        while (note := self._queue.get()) is not None:
            self._deliver(note)

    def _deliver(self, note: Note) -> None:
        try:
            icon = self._icon_file(note.state)
        except OSError:
            icon = ""
        for send in self._senders:
            try:
                send(note.title, note.body, icon)
            except Exception as exc:
                logger.info("notification backend %s failed: %s", getattr(send, "__qualname__", send), exc)
                continue
            self.sent.append(note)
            return
        logger.warning("no notification backend worked; the message above was only logged")
