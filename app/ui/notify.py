"""Desktop notifications: plyer first, pystray's own notify where plyer has no backend, a log line when
neither works. Only news a user must act on or would wait for: a failure episode (after its grace),
a Google Drive lock and its follow-up, the mass-deletion guard, recovery, a finished restore. Never a
routine successful backup.

The service thread calls :meth:`DesktopNotifier.episode`; delivery happens on the notifier's own
thread, because a D-Bus call can block for seconds when the notification daemon hangs. Every backend
runs there and raises when it fails, so the next one is tried (:func:`notifier_for` picks them).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from app import assets
from app.errors import FailureKind
from app.safe_text import clean, clean_lines
from app.service.retry import EpisodeEvent, Persisting, Recovered
from app.ui.icons import State, ico_path
from app.ui.presenter import APP_TITLE

logger = logging.getLogger(__name__)

Send = Callable[[str, str, str], None]  # title, body, icon file
IconFile = Callable[[State], str]  # the icon file a backend is given for a note of that state
BALLOON_SECONDS = 10  # how long Windows shows a balloon before it is removed (plyer's default)


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
    if kind is FailureKind.SIGN_IN:  # the message names rclone config reconnect and the remote
        return Note("rclone cannot sign in to the backup remote", event.message or kind.sentence, bad)
    if kind in (FailureKind.OFFLINE, FailureKind.RATE_LIMITED):
        title = (
            "Backup remote not reachable"
            if kind is FailureKind.OFFLINE
            else "Backup remote asks us to slow down"
        )
        return Note(title, event.message or kind.sentence, bad)
    if kind is FailureKind.SOURCE_MISSING:
        return Note("opencode's data not found", event.message or kind.sentence, bad)
    return Note("Backups are failing", event.message or FailureKind.FATAL.sentence, bad)


def plyer_send(title: str, body: str, icon: str) -> None:
    """plyer's notify for this platform; raises (NotImplementedError) where plyer has no backend."""
    from plyer import notification  # noqa: PLC0415 - a desktop library, loaded when the first notification is sent

    notification.notify(title=title, message=body, app_name=APP_TITLE, app_icon=icon, timeout=10)


def balloon_send(title: str, body: str, icon: str, *, show: Callable[..., object] | None = None) -> None:
    """Windows: plyer's balloon tip (``show``: plyer's ``balloon_tip``), run on the calling notifier thread
    for the ``BALLOON_SECONDS`` it is shown. plyer's own ``notify`` starts it on a thread of its own, where
    a failure is lost and the notification was counted as shown; here it raises, so the next backend runs."""
    if show is None:
        from plyer.platforms.win.libs import balloontip  # noqa: PLC0415 - Windows only, loaded when first used

        show = balloontip.balloon_tip
    show(title=title, message=body, app_name=APP_TITLE, app_icon=icon, timeout=BALLOON_SECONDS)


def ico_file(state: State) -> str:
    """The state's multi-size ``.ico``, shipped with the package (the icons module writes it)."""
    return str(ico_path(assets.icon_dir(), state))


def notifier_for(
    platform: str,
    *,
    fallback: Send,
    png_file: IconFile,
    enabled: bool = True,
    balloon: Callable[..., object] | None = None,
) -> DesktopNotifier:
    """The tray's notifier on ``platform``; ``fallback`` (pystray's own notify) is tried when the first
    backend fails. Windows: plyer's balloon with the state's ``.ico``, since it loads its icon with
    ``LoadImageW(..., IMAGE_ICON, ..., LR_LOADFROMFILE)``, which reads icon files only and failed on the
    PNG; elsewhere plyer's notify with a PNG. ``balloon`` stands in for plyer's balloon in tests."""
    if platform == "win32":
        return DesktopNotifier([partial(balloon_send, show=balloon), fallback], ico_file, enabled=enabled)
    return DesktopNotifier([plyer_send, fallback], png_file, enabled=enabled)


class DesktopNotifier:
    """The tray's notifier. ``senders`` are tried in order until one works; ``enabled=False`` (the
    ``notifications`` setting) only logs."""

    def __init__(self, senders: list[Send], icon_file: IconFile, enabled: bool = True) -> None:
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
                logger.info("notification backend %s failed: %s", _name(send), exc)
                continue
            self.sent.append(note)
            return
        logger.warning("no notification backend worked; the message above was only logged")


def _name(send: Send) -> str:
    target = send.func if isinstance(send, partial) else send
    return str(getattr(target, "__qualname__", target))
