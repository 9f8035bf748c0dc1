"""The tray app: the live service plus a pystray icon on the main thread.

Threads: pystray's loop owns the main thread; the service, worker, watcher and control threads are
the headless service's (app.service.runtime); a *refresher* thread turns each published Status into
the icon and tooltip (holding back "syncing" for a second so quick syncs never flicker); dialogs are
child processes, driven from one *flow* thread at a time. Menu callbacks run on pystray's thread and
only post events or start a flow, so the icon never freezes.

pystray, plyer and tkinter are imported here and in app.ui.dialog only, never by the engine or CLI.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from app import config, paths, wiring
from app.backup import restore as rs
from app.backup.catalog import session_rows
from app.errors import BackupError
from app.opencode.locate import restore_target
from app.platform import autostart
from app.service.events import Pause, Resume, SyncNow
from app.service.runtime import Runtime
from app.service.status import ServiceState, Status
from app.ui import dialogs, flows, presenter
from app.ui.icons import State, render
from app.ui.notify import DesktopNotifier, Note, plyer_send

logger = logging.getLogger(__name__)

ICON_SIZE = 64
REFRESH_SECONDS = 20.0  # the tooltip's "2 min ago" is rewritten at least this often
PAUSE_WAIT = 600.0  # a restore waits at most this long for a running sync to end


class Controller:
    """Everything the tray does, without pystray: the runtime's life, the menu's model, the actions.

    ``show`` is called (on the refresher thread) with the icon state and tooltip to display;
    ``menu_changed`` when an item's label, check or greying may have changed; ``stop_ui`` ends the
    tray's loop (Quit).
    """

    def __init__(
        self, settings: config.Settings | None, notifier: DesktopNotifier, problem: str | None = None
    ) -> None:
        self.settings = settings
        self.problem = problem  # why the configured backup folder cannot be used (until one is chosen)
        self.notifier = notifier
        self.runtime: Runtime | None = None
        self.show: Callable[[State, str], None] = lambda _s, _t: None
        self.menu_changed: Callable[[], None] = lambda: None
        self.stop_ui: Callable[[], None] = lambda: None
        self._status: Status | None = None
        self._delay = presenter.SyncingDelay()
        self._wake = threading.Condition()
        self._dirty = True
        self._stopping = False
        self._refresher = threading.Thread(target=self._refresh_loop, name="tray-refresher", daemon=True)
        self._flow: threading.Thread | None = None
        self._busy = False  # cleared by the flow itself before its last menu rebuild
        self._status_window: subprocess.Popen[bytes] | None = None
        self._autostart = autostart.for_platform()
        self._shown: tuple[State, str] | None = None

    # ------------------------------------------------------------------ life
    @property
    def configured(self) -> bool:
        return self.settings is not None and self.settings.backup_path is not None

    def start(self) -> None:
        """Start notifications, the refresher and the service (pystray's setup thread, loop running)."""
        self.notifier.start()
        self._refresher.start()
        if self.problem:
            logger.error("cannot back up: %s", self.problem)
            self.notifier.notify(Note("Backups cannot start", self.problem, State.FAILED))
        if self.configured:
            self._start_runtime()

    def _start_runtime(self) -> None:
        assert self.settings is not None
        s = self.settings
        self.runtime = wiring.runtime_for(s, notifier=self.notifier, listeners=[self._on_status])
        self.runtime.start()
        logger.info("backup service running: watching %s, backing up to %s", s.source, s.machine_dir)

    def _stop_runtime(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None
            self._on_status(None)

    def shutdown(self) -> None:
        """Stop everything this controller started (main thread, after the tray loop ended)."""
        self._stopping = True
        if self._status_window is not None and self._status_window.poll() is None:
            self._status_window.terminate()
            try:
                self._status_window.wait(5)
            except subprocess.TimeoutExpired:
                self._status_window.kill()
        dialogs.close_all(for_good=True)
        self._stop_runtime()
        with self._wake:
            self._wake.notify_all()
        if self._refresher.ident is not None:
            self._refresher.join(5)
        if self._flow is not None:
            self._flow.join(5)
        self.notifier.stop()

    # ------------------------------------------------------------------ what the icon shows
    def _on_status(self, status: Status | None) -> None:
        """Status listener (service thread): note it and wake the refresher."""
        old = self._status
        self._status = status
        self._delay.update(status, time.monotonic())
        with self._wake:
            self._dirty = True
            self._wake.notify_all()
        if old is None or status is None or old.paused != status.paused:  # what the menu shows
            self.menu_changed()

    def view(self, now_mono: float | None = None) -> tuple[State, str]:
        now_mono = time.monotonic() if now_mono is None else now_mono
        show_syncing = self._delay.show(now_mono)
        status = self._status
        if self.configured and self.runtime is None:
            status = None
        state = presenter.icon_state(status, self.configured, show_syncing, self.problem)
        tip = presenter.tooltip(status, self.configured, show_syncing, datetime.now(UTC), self.problem)
        return state, tip

    def _refresh_loop(self) -> None:
        while not self._stopping:
            view = self.view()
            if view != self._shown:
                self._shown = view
                try:
                    self.show(*view)
                except Exception:
                    logger.exception("could not update the tray icon")
            due, now = self._delay.due_at(), time.monotonic()
            # wake when a running sync turns one second old; once shown, only the usual refresh
            timeout = due - now + 0.01 if due is not None and due > now else REFRESH_SECONDS
            with self._wake:
                if not self._dirty and not self._stopping:
                    self._wake.wait(timeout)
                self._dirty = False

    # ------------------------------------------------------------------ menu model
    @property
    def running(self) -> bool:
        return self.runtime is not None

    @property
    def paused(self) -> bool:
        return self._status is not None and self._status.paused

    @property
    def busy(self) -> bool:
        """A dialog flow is under way (Restore… and Choose backup folder… are greyed)."""
        return self._busy

    def folder_exists(self) -> bool:
        return (
            self.settings is not None
            and self.settings.machine_dir is not None
            and self.settings.machine_dir.is_dir()
        )

    def log_file(self) -> Path:
        return paths.app_log_dir() / LOG_NAME

    def autostart_supported(self) -> bool:
        return self._autostart.supported

    def autostart_enabled(self) -> bool:
        try:
            return self._autostart.is_enabled()
        except Exception:
            return False

    # ------------------------------------------------------------------ actions (tray thread)
    def sync_now(self) -> None:
        if self.runtime is not None:
            self.runtime.service.post(SyncNow())

    def toggle_pause(self) -> None:
        if self.runtime is not None:
            self.runtime.service.post(Resume() if self.paused else Pause())

    def quit(self) -> None:
        logger.info("quit from the tray menu")
        self.stop_ui()

    def open_folder(self) -> None:
        if self.settings is not None and self.settings.machine_dir is not None:
            open_path(self.settings.machine_dir)

    def open_log(self) -> None:
        open_path(self.log_file())

    def toggle_autostart(self) -> None:
        try:
            if self.autostart_enabled():
                self._autostart.disable()
            else:
                self._autostart.enable()
        except autostart.AutostartError as exc:
            self.notifier.notify(Note("Start at login not changed", str(exc), State.FAILED))
        self.menu_changed()

    def open_status(self) -> None:
        if self._status_window is not None and self._status_window.poll() is None:
            return
        backup = self.settings.machine_dir if self.settings is not None else None
        try:
            self._status_window = dialogs.open_status(paths.app_state_dir(), backup)
        except Exception as exc:
            logger.error("cannot open the status window: %s", exc)

    def restore(self) -> None:
        self._start_flow(self._restore_flow, "restore")

    def choose_folder(self) -> None:
        self._start_flow(self._folder_flow, "choose-folder")

    # ------------------------------------------------------------------ flows (flow thread)
    def _start_flow(self, body: Callable[[], None], name: str) -> None:
        if self._busy or self._stopping:
            logger.info("a dialog is already open; %s ignored", name)
            return
        self._busy = True
        self._flow = threading.Thread(target=self._guarded, args=(body,), name=f"tray-{name}", daemon=True)
        self._flow.start()
        self.menu_changed()

    def _guarded(self, body: Callable[[], None]) -> None:
        try:
            body()
        except dialogs.DialogError as exc:
            logger.error("dialog failed: %s", exc)
        except Exception:
            logger.exception("tray action failed")
        finally:
            self._busy = False  # before the rebuild: the thread is still alive while it runs
            self.menu_changed()

    def _restore_flow(self) -> None:
        settings = self.settings
        if settings is None or settings.machine_dir is None:
            return
        try:
            rows = session_rows(
                settings.machine_dir, settings.machine_name, settings.source, settings.opencode_db
            )
        except Exception as exc:
            self._tell(flows.Outcome(False, "Cannot read the backup", str(exc), error=True))
            return
        db = restore_target(settings.source, settings.opencode_db)
        outcome = flows.restore(settings, dialogs, rows, db, self._paused)
        if outcome.done:
            state = State.FAILED if outcome.error else State.UP_TO_DATE
            self.notifier.notify(Note(outcome.title, outcome.text.split("\n\n")[0], state))
        if outcome is not flows.CANCELLED:
            self._tell(outcome)

    def _paused(self, body: Callable[[], rs.RestoreResult]) -> rs.RestoreResult:
        """Run ``body`` with the service paused and no sync running; then resume and back up."""
        rt = self.runtime
        if rt is None:
            return body()
        was_paused = rt.status.paused
        rt.service.post(Pause())
        deadline = time.monotonic() + PAUSE_WAIT
        while time.monotonic() < deadline and not (
            rt.status.paused and rt.status.state is not ServiceState.SYNCING
        ):
            time.sleep(0.1)
        try:
            return body()
        finally:
            if not was_paused:  # a user's pause stays; the restored sessions wait for Resume
                rt.service.post(Resume())
                rt.service.post(SyncNow())

    def _folder_flow(self) -> None:
        outcome, new = flows.choose_folder(self.settings, dialogs)
        if self._stopping:
            return
        if new is not None and new.backup_path is not None:
            self._stop_runtime()
            self.settings, self.problem = new, None
            self._start_runtime()
        self.menu_changed()
        if outcome.done or outcome.error:
            self._tell(outcome)

    def _tell(self, outcome: flows.Outcome) -> None:
        if not self._stopping:
            dialogs.message(outcome.title, outcome.text, error=outcome.error)


def open_path(path: Path) -> None:
    """Show a folder or file with the desktop's default application (never blocks)."""
    if sys.platform == "win32":
        os.startfile(path)
    else:
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        try:
            proc = subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            logger.error("cannot open %s: %s", path, exc)
            return
        threading.Thread(target=proc.wait, name="opener", daemon=True).start()


LOG_NAME = "opencode-backup.log"


# ---------------------------------------------------------------------- pystray binding
@functools.cache
def _image(state: State) -> Image.Image:
    """Each state's tray image, drawn once per process."""
    return render(state, ICON_SIZE)


class TrayIcon:
    """Binds a Controller to a pystray Icon (main thread)."""

    def __init__(self, ctl: Controller) -> None:
        import pystray

        self._pystray = pystray
        self.ctl = ctl
        state, tip = ctl.view()
        self._state = state
        self.icon = pystray.Icon("opencode-session-backup", _image(state), tip, menu=self._menu())
        self._failed = False
        ctl.show = self._show
        ctl.menu_changed = self._menu_changed
        ctl.stop_ui = self.icon.stop

    def _show(self, state: State, tip: str) -> None:
        if state is not self._state:  # the tooltip's "2 min ago" changes alone most of the time
            self._state = state
            self.icon.icon = _image(state)
        self.icon.title = tip
        logger.debug("tray shows %s: %s", state.value, tip)

    def _menu_changed(self) -> None:
        try:
            self.icon.update_menu()
        except Exception:
            logger.debug("menu update failed", exc_info=True)

    def _menu(self) -> Any:
        ps = self._pystray
        ctl = self.ctl

        def item(text: Any, action: Callable[[], None], **kw: Any) -> Any:
            return ps.MenuItem(text, lambda _icon, _item: action(), **kw)

        def items() -> list[Any]:
            configured = ctl.configured
            out: list[Any] = []
            if not configured:
                out += [item("Choose backup folder…", ctl.choose_folder, default=True), ps.Menu.SEPARATOR]
            out += [
                item("Sync now", ctl.sync_now, enabled=lambda _i: ctl.running),
                item("Status…", ctl.open_status, default=configured),
                item("Restore…", ctl.restore, enabled=lambda _i: ctl.configured and not ctl.busy),
                item(
                    lambda _i: "Resume backups" if ctl.paused else "Pause backups",
                    ctl.toggle_pause,
                    enabled=lambda _i: ctl.running,
                ),
                ps.Menu.SEPARATOR,
                item("Open backup folder", ctl.open_folder, enabled=lambda _i: ctl.folder_exists()),
                item("Open log", ctl.open_log, enabled=lambda _i: ctl.log_file().is_file()),
            ]
            if configured:
                out.append(item("Choose backup folder…", ctl.choose_folder, enabled=lambda _i: not ctl.busy))
            out += [
                item(
                    "Start at login",
                    ctl.toggle_autostart,
                    checked=lambda _i: ctl.autostart_enabled(),
                    enabled=lambda _i: ctl.autostart_supported(),
                ),
                ps.Menu.SEPARATOR,
                item("Quit", ctl.quit),
            ]
            return out

        return ps.Menu(items)

    def run(self) -> None:
        """pystray's loop (main thread); the controller starts once the loop runs."""

        def setup(icon: Any) -> None:
            if self._failed:
                return
            icon.visible = True
            logger.info("tray icon shown (pystray backend %s)", type(icon).__module__)
            self.ctl.start()

        try:
            self.icon.run(setup=setup)
        except BaseException:
            self._failed = True
            # pystray's setup thread waits for a loop that never ran, and it is not a daemon: let it go
            with contextlib.suppress(Exception):
                self.icon._mark_ready()
            raise


def add_log_file() -> None:
    """Log to ``<app log dir>/opencode-backup.log`` (rotated), what Open log shows."""
    from logging.handlers import RotatingFileHandler

    folder = paths.app_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(folder / LOG_NAME, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


class TrayFailed(BackupError):
    """No tray icon could be shown, or its backend failed; ``str(e)`` is one line."""


def run_tray(settings: config.Settings | None, problem: str | None = None) -> int:
    """Show the tray icon and run the service until Quit or a stop signal (main thread).

    Raises TrayFailed (one line) when pystray cannot show an icon with a menu, or its backend fails; the
    process then ends at once (no thread is left waiting)."""
    try:
        import pystray
    except Exception as exc:
        raise TrayFailed(f"cannot show a tray icon: {_in_words(exc)}") from None
    if not pystray.Icon.HAS_MENU:  # pystray's xorg fallback: an icon nobody could quit or use
        raise TrayFailed(
            f"the tray backend {pystray.Icon.__module__} has no menu; install PyGObject "
            "(pip install 'opencode-session-backup[tray]')"
        )
    _log_to_file(settings.debug if settings is not None else False)
    notifier: DesktopNotifier | None = None
    ctl: Controller | None = None
    tray: TrayIcon | None = None

    def pystray_send(title: str, body: str, _icon: str) -> None:
        if tray is None or not tray.icon.HAS_NOTIFICATION:
            raise NotImplementedError("pystray cannot notify with this backend")
        tray.icon.notify(body, title)

    enabled = settings.notifications if settings is not None else True
    notifier = DesktopNotifier([plyer_send, pystray_send], icon_file, enabled=enabled)
    ctl = Controller(settings, notifier, problem)
    old = _stop_on_signals(ctl)
    try:
        tray = TrayIcon(ctl)
        tray.run()
    except Exception as exc:
        # the traceback goes to the log file only (INFO); the terminal gets the one line the CLI prints
        logger.info("the tray icon failed", exc_info=True)
        raise TrayFailed(f"the tray icon failed: {_in_words(exc)}") from None
    finally:
        ctl.shutdown()
        for signum, handler in old.items():
            signal.signal(signum, handler)
    logger.info("tray app stopped")
    return 0


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
    add_log_file()
    logging.getLogger("app").setLevel(logging.DEBUG if debug else logging.INFO)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.DEBUG if debug else logging.WARNING)


def icon_file(state: State) -> str:
    """A PNG of ``state``'s icon for notifications (rendered once into the state dir)."""
    path = paths.app_state_dir() / "icons" / f"{state.value}-64.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        render(state, 64).save(path)
    return str(path)


def _stop_on_signals(ctl: Controller) -> dict[int, Any]:
    """Quit the tray on SIGINT/SIGTERM; returns the handlers to put back."""

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("signal %d: stopping", signum)
        ctl.stop_ui()

    return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
