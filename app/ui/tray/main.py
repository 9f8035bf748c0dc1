"""``opencode-backup run``'s tray: pystray on the main thread, the tray's own thread, a notifier, a log file.

Refusals are one line (TrayFailed): no icon can be shown, the backend has no menu, or the backend fails
while it starts; the process then ends at once, with no thread left waiting.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path

from app import config, paths
from app.errors import BackupError
from app.safe_text import log_formatter
from app.ui import dialogs
from app.ui.icons import State, render
from app.ui.notify import notifier_for
from app.ui.tray.app import LOG_NAME, Parts, TrayApp
from app.ui.tray.icon import TrayIcon

logger = logging.getLogger(__name__)


class TrayFailed(BackupError):
    """No tray icon could be shown, or its backend failed; ``str(e)`` is one line."""


def run_tray(settings: config.Settings | None, problem: str | None = None) -> int:
    """Show the tray icon and run the service until Quit or a stop signal (main thread)."""
    try:
        import pystray  # noqa: PLC0415 - a desktop library: only the tray loads it (fails without a display)
    except Exception as exc:
        raise TrayFailed(f"cannot show a tray icon: {_in_words(exc)}") from None
    if not pystray.Icon.HAS_MENU:  # pystray's xorg fallback: an icon nobody could quit or use
        raise TrayFailed(f"the tray backend {pystray.Icon.__module__} has no menu; {_gtk_hint()}")
    _log_to_file(settings.debug if settings is not None else False)
    tray: TrayIcon | None = None  # made below; the notifier may be asked before

    def pystray_send(title: str, body: str, _icon: str) -> None:
        if tray is None or tray.icon is None or not tray.icon.HAS_NOTIFICATION:
            raise NotImplementedError("pystray cannot notify with this backend")
        tray.icon.notify(body, title)

    enabled = settings.notifications if settings is not None else True
    notifier = notifier_for(
        paths.current_platform(), fallback=pystray_send, png_file=icon_file, enabled=enabled
    )
    tray = TrayIcon(pystray)
    app = TrayApp(settings, problem, Parts(dialogs=dialogs.DialogHost(), notifier=notifier), face=tray)
    old = {s: signal.signal(s, lambda signum, _frame: _on_signal(app, signum)) for s in _SIGNALS}
    notifier.start()
    try:
        tray.run(app)
    except Exception as exc:
        # the traceback goes to the log file only (INFO); the terminal gets the one line the CLI prints
        logger.info("the tray icon failed", exc_info=True)
        raise TrayFailed(f"the tray icon failed: {_in_words(exc)}") from None
    finally:
        app.stop()
        notifier.stop()
        for signum, handler in old.items():
            signal.signal(signum, handler)
    logger.info("tray app stopped")
    return 0


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signal(app: TrayApp, signum: int) -> None:
    logger.info("signal %d: stopping", signum)
    app.stop_ui()


def _gtk_hint() -> str:
    if getattr(sys, "frozen", False):  # an installed build: PyGObject is inside, GTK comes from the desktop
        return (
            "install the desktop's GTK 3 introspection data (gir1.2-gtk-3.0, gir1.2-ayatanaappindicator3-0.1)"
        )
    return "install PyGObject (pip install 'opencode-session-backup[tray]')"


def _in_words(exc: BaseException) -> str:
    """What went wrong, for a person: no exception class names of GTK or Xlib."""
    name = type(exc).__name__
    if "Display" in name:
        return f"cannot reach the desktop's display {os.environ.get('DISPLAY', '')!r}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    text = re.sub(r"^[a-z-]+-quark: |\s*\(\d+\)$", "", text)  # GLib's error domain and code
    if any("dbus" in frame.filename for frame in traceback.extract_tb(exc.__traceback__)):
        bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS") or "not set"
        return f"cannot reach the desktop's D-Bus session bus ({text}; DBUS_SESSION_BUS_ADDRESS {bus})"
    return text


def _log_to_file(debug: bool) -> None:
    """The tray logs to its log file (what Open log shows); the terminal it may have been started from
    gets warnings only, unless --debug."""
    folder = paths.app_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(folder / LOG_NAME, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(log_formatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger("app").setLevel(logging.DEBUG if debug else logging.INFO)
    for other in logging.getLogger().handlers:
        if isinstance(other, logging.StreamHandler) and not isinstance(other, logging.FileHandler):
            other.setLevel(logging.DEBUG if debug else logging.WARNING)


def icon_file(state: State) -> str:
    """A PNG of ``state``'s icon for notifications (rendered once into the state dir)."""
    path: Path = paths.app_state_dir() / "icons" / f"{state.value}-64.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        render(state, 64).save(path)
    return str(path)
