"""The tray app's state and decisions, owned by one thread (``tray``) that reads one queue of events.

Other threads only post (pystray's menu callbacks, the service's status listener, a dialog flow, a
signal handler); this thread alone changes the settings, the running service, the status it shows and
the menu it publishes. Dialogs block, so each conversation (Restore…, Browse backups…, Encrypt backups…)
runs on a flow thread and reports back by posting; a restore is a job the service runs
(app.ui.flows.restore_on). Everything it talks to is passed in: its logic runs in tests without a display.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from app import config, paths, wiring
from app.backup.catalog import session_rows
from app.backup.ownership import Identity
from app.errors import BackupError
from app.opencode.locate import restore_target
from app.platform import autostart, desktop, machine_id
from app.service.events import Pause, Resume, SyncNow
from app.service.runtime import Runtime
from app.service.status import Status
from app.ui import flows, presenter
from app.ui.icons import State
from app.ui.notify import Note
from app.ui.tray.agent_switch import AgentTools, OpencodeConfigSwitch
from app.ui.tray.face import Face, NoFace
from app.ui.tray.model import (
    Action,
    EncryptionChanged,
    FlowEnded,
    FolderChosen,
    Menu,
    MenuView,
    StatusChanged,
    Stop,
    UiEvent,
    adoptable,
    menu_of,
)

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 20.0  # the tooltip's "2 min ago" is rewritten at least this often
LOG_NAME = "opencode-backup.log"


class Dialogs(flows.Dialogs, Protocol):
    """What the tray needs of its dialog host (tests pass a scripted stand-in)."""

    def message(self, title: str, text: str, error: bool = False) -> None: ...

    def open_status(
        self, state_dir: Path, backup_path: Path | None, *, detach: bool = False
    ) -> subprocess.Popen[bytes]: ...

    def close_all(self, *, for_good: bool = False) -> None: ...


class Notify(Protocol):
    def notify(self, note: Note) -> None: ...


@dataclass
class Parts:
    """Everything the tray talks to; tests replace what they need."""

    dialogs: Dialogs
    notifier: Notify
    autostart: autostart.Autostart = field(default_factory=autostart.for_platform)
    agent_tools: AgentTools = field(default_factory=OpencodeConfigSwitch)
    make_runtime: Callable[..., Runtime] = wiring.runtime_for
    open_path: Callable[[Path], None] = desktop.open_path
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    state_dir: Path = field(default_factory=paths.app_state_dir)
    log_file: Path = field(default_factory=lambda: paths.app_log_dir() / LOG_NAME)
    identity: Identity = field(default_factory=lambda: machine_id.account_once(paths.current_platform()))


class TrayApp:
    """The tray's logic; ``face`` shows it (its calls come on the tray's thread)."""

    def __init__(
        self, settings: config.Settings | None, problem: str | None, parts: Parts, face: Face | None = None
    ) -> None:
        self.parts = parts
        self.face: Face = face if face is not None else NoFace()
        self.menu = MenuView()  # published for pystray's thread: replaced whole, never changed
        # the tray thread's own state
        self._settings = settings
        self._problem = problem  # why the configured backup folder cannot be used (until one is chosen)
        self._runtime: Runtime | None = None
        self._status: Status | None = None
        self._delay = presenter.SyncingDelay()
        self._shown: tuple[State, str] | None = None
        self._shown_at = 0.0
        self._flow: threading.Thread | None = None
        self._status_window: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._queue: queue.SimpleQueue[UiEvent] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="tray", daemon=True)

    # ------------------------------------------------------------------ any thread
    def post(self, event: UiEvent) -> None:
        self._queue.put(event)

    def start(self) -> None:
        """Start the tray's thread (pystray's setup thread, once the icon's loop runs)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything and wait for the tray's thread and a flow (main thread, after the loop)."""
        self.post(Stop())
        if self._thread.ident is not None:
            self._thread.join(timeout)
        else:
            self._end()
        flow = self._flow
        if flow is not None:
            flow.join(5)

    @property
    def configured(self) -> bool:
        return self._settings is not None and self._settings.backup_path is not None

    # ------------------------------------------------------------------ the tray's thread
    def _loop(self) -> None:
        self.begin()
        while True:
            try:
                event = self._queue.get(timeout=max(0.01, self.next_wake() - self.parts.clock()))
            except queue.Empty:
                self.refresh()
                continue
            if isinstance(event, Stop):
                self._end()
                return
            try:
                self.handle(event)
            except Exception:
                logger.exception("tray: %s failed", event)
            self.refresh()

    def stop_ui(self) -> None:
        """End the face's loop (any thread: a signal, Quit)."""
        self.face.stop()

    def begin(self) -> None:
        """Say why backups cannot start, if so, and start the service when a folder is set."""
        if self._problem:
            logger.error("cannot back up: %s", self._problem)
            self.parts.notifier.notify(Note("Backups cannot start", self._problem, State.FAILED))
        if self.configured:
            self._start_runtime()
        self.refresh(menu=True)

    def handle(self, event: UiEvent) -> None:
        """Act on one event (the tray's thread; tests call it directly)."""
        if isinstance(event, StatusChanged):
            old, self._status = self._status, event.status
            self._delay.update(event.status, self.parts.clock())
            if old is None or event.status is None or menu_of(old) != menu_of(event.status):
                self.refresh(menu=True)
        elif isinstance(event, Menu):
            self._act(event.action)
        elif isinstance(event, FolderChosen):
            self._stop_runtime()
            self._settings, self._problem = event.settings, None
            self._start_runtime()
            self.refresh(menu=True)
        elif isinstance(event, EncryptionChanged) and self._settings is not None:
            self._settings = replace(self._settings, encryption=event.on)
            self.refresh(menu=True)
        elif isinstance(event, FlowEnded):
            self._flow = None
            self.refresh(menu=True)
            logger.debug("dialog flow ended; the menu offers it again")

    def _act(self, action: Action) -> None:
        rt, parts = self._runtime, self.parts
        if action is Action.SYNC_NOW and rt is not None:
            rt.service.post(SyncNow())
        elif action is Action.TOGGLE_PAUSE and rt is not None:
            rt.service.post(Resume() if self._status is not None and self._status.paused else Pause())
        elif action is Action.STATUS:
            self._open_status()
        elif action is Action.OPEN_FOLDER and self._settings is not None and self._settings.machine_dir:
            parts.open_path(self._settings.machine_dir)
        elif action is Action.OPEN_LOG:
            parts.open_path(parts.log_file)
        elif action is Action.TOGGLE_AUTOSTART:
            self._toggle("Start at login", lambda: self._autostart(not self.menu.autostart_enabled))
        elif action is Action.TOGGLE_AGENT_TOOLS:
            on = not self.menu.agent_tools_enabled
            self._toggle("Agent tools in opencode", lambda: parts.agent_tools.switch(on))
        elif action is Action.RESTORE:
            self._start_flow("restore", self._restore_flow)
        elif action is Action.BROWSE:
            self._start_flow("browse", self._browse_flow)
        elif action is Action.CHOOSE_FOLDER:
            self._start_flow("choose-folder", self._folder_flow)
        elif action is Action.ADOPT:
            self._start_flow("adopt", self._adopt_flow)
        elif action is Action.TOGGLE_ENCRYPTION and self.configured:
            self._start_flow("encryption", self._encryption_flow)
        elif action is Action.QUIT:
            logger.info("quit from the tray menu")
            self.stop_ui()
        self.refresh(menu=True)

    def _autostart(self, on: bool) -> None:
        if on:
            self.parts.autostart.enable()
        else:
            self.parts.autostart.disable()

    def _toggle(self, what: str, change: Callable[[], None]) -> None:
        try:
            change()
        except BackupError as exc:
            self.parts.notifier.notify(Note(f"{what} not changed", str(exc), State.FAILED))

    def _open_status(self) -> None:
        if self._status_window is not None and self._status_window.poll() is None:
            return
        backup = self._settings.machine_dir if self._settings is not None else None
        try:
            self._status_window = self.parts.dialogs.open_status(self.parts.state_dir, backup)
        except BackupError as exc:
            logger.error("cannot open the status window: %s", exc)

    def _start_runtime(self) -> None:
        assert self._settings is not None
        s = self._settings
        self._runtime = self.parts.make_runtime(
            s, notifier=self.parts.notifier, listeners=[lambda st: self.post(StatusChanged(st))]
        )
        self._runtime.start()
        logger.info("backup service running: watching %s, backing up to %s", s.source, s.machine_dir)

    def _stop_runtime(self) -> None:
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None
            self.handle(StatusChanged(None))

    def _end(self) -> None:
        """Close what is open and stop the service (Quit, a signal, or the loop ended)."""
        self._stopping = True
        window = self._status_window
        if window is not None and window.poll() is None:
            window.terminate()
            try:
                window.wait(5)
            except subprocess.TimeoutExpired:
                window.kill()
        self.parts.dialogs.close_all(for_good=True)
        self._stop_runtime()

    # ------------------------------------------------------------------ what the icon and menu show
    def view(self, now: float | None = None) -> tuple[State, str]:
        """The icon and tooltip for what the tray knows now (``now``: the monotonic clock)."""
        now = self.parts.clock() if now is None else now
        syncing = self._delay.show(now)
        status = None if self.configured and self._runtime is None else self._status
        state = presenter.icon_state(status, self.configured, syncing, self._problem)
        tip = presenter.tooltip(status, self.configured, syncing, self.parts.wall(), self._problem)
        return state, tip

    def next_wake(self) -> float:
        """When the icon may need redrawing with no event: a sync turning one second old, or the
        tooltip's "2 min ago" growing stale."""
        due = self._delay.due_at()
        refresh = self._shown_at + REFRESH_SECONDS
        return min(due, refresh) if due is not None and due > self._shown_at else refresh

    def refresh(self, menu: bool = False) -> None:
        now = self.parts.clock()
        view = self.view(now)
        if view != self._shown or now - self._shown_at >= REFRESH_SECONDS:
            self._shown, self._shown_at = view, now
            try:
                self.face.show(*view)
            except Exception:
                logger.exception("could not update the tray icon")
        if menu:
            new = self._menu_view()
            if new != self.menu:
                self.menu = new
                self.face.menu_changed()

    def _menu_view(self) -> MenuView:
        s, parts = self._settings, self.parts
        try:
            autostart_on = parts.autostart.is_enabled()
        except Exception:
            autostart_on = False
        return replace(
            MenuView(),
            configured=self.configured,
            running=self._runtime is not None,
            paused=self._status is not None and self._status.paused,
            busy=self._flow is not None,
            folder_exists=s is not None and s.machine_dir is not None and s.machine_dir.is_dir(),
            log_exists=parts.log_file.is_file(),
            autostart_supported=parts.autostart.supported,
            autostart_enabled=autostart_on,
            agent_tools_enabled=parts.agent_tools.enabled(),
            adoptable=self.configured and adoptable(self._status),
            encrypted=s is not None and s.encryption,
        )

    # ------------------------------------------------------------------ dialog flows (a flow thread)
    def _start_flow(self, name: str, body: Callable[[config.Settings | None, Runtime | None], None]) -> None:
        if self._flow is not None or self._stopping:
            logger.info("a dialog is already open; %s ignored", name)
            return
        settings, runtime = self._settings, self._runtime  # what the flow works with, fixed now
        self._flow = threading.Thread(
            target=self._guarded, args=(body, settings, runtime), name=f"tray-{name}", daemon=True
        )
        self._flow.start()

    def _guarded(
        self, body: Callable[[config.Settings | None, Runtime | None], None], s: config.Settings | None,
        rt: Runtime | None,
    ) -> None:  # fmt: skip
        try:
            body(s, rt)
        except BackupError as exc:
            logger.error("dialog failed: %s", exc)
        except Exception:
            logger.exception("tray action failed")
        finally:
            self.post(FlowEnded())

    def _restore_flow(self, s: config.Settings | None, rt: Runtime | None) -> None:
        if s is None or s.machine_dir is None:
            return
        try:
            rows = session_rows(s.machine_dir, s.machine_name, s.source, s.opencode_db, wiring.keys())
        except BackupError as exc:
            self._tell(flows.Outcome(False, "Cannot read the backup", str(exc), error=True))
            return
        db = restore_target(s.source, s.opencode_db)
        self._ended(flows.restore(s, self.parts.dialogs, rows, db, flows.restore_on(rt)))

    def _ended(self, outcome: flows.Outcome) -> None:
        """A restore flow's outcome: a notification when it restored, a message unless cancelled."""
        if outcome.done:
            state = State.FAILED if outcome.error else State.UP_TO_DATE
            self.parts.notifier.notify(Note(outcome.title, outcome.text.split("\n\n")[0], state))
        if outcome is not flows.CANCELLED:
            self._tell(outcome)

    def _browse_flow(self, s: config.Settings | None, rt: Runtime | None) -> None:
        if s is None or s.backup_path is None:
            return
        db = restore_target(s.source, s.opencode_db)
        self._ended(flows.restore_version(s, self.parts.dialogs, db, flows.restore_on(rt)))

    def _folder_flow(self, s: config.Settings | None, _rt: Runtime | None) -> None:
        outcome, new = flows.choose_folder(s, self.parts.dialogs)
        if new is not None and new.backup_path is not None:
            self.post(FolderChosen(new))
        if outcome.done or outcome.error:
            self._tell(outcome)

    def _adopt_flow(self, s: config.Settings | None, rt: Runtime | None) -> None:
        if s is None or s.machine_dir is None:
            return
        outcome = flows.adopt(s, self.parts.dialogs, self.parts.state_dir, self.parts.identity)
        if outcome.done and rt is not None:
            rt.service.post(SyncNow())  # the failed service waits for a change or this
        self._tell(outcome)

    def _encryption_flow(self, s: config.Settings | None, rt: Runtime | None) -> None:
        if s is None:
            return
        outcome, on = (flows.stop_encrypting if s.encryption else flows.encrypt)(self.parts.dialogs)
        if on is not None:
            self.post(EncryptionChanged(on))
        if outcome.done and rt is not None:
            rt.service.post(SyncNow())  # its seal reads the keys and the switch again: it re-encrypts
        if outcome not in (flows.NOT_ENCRYPTED, flows.STILL_ENCRYPTED):
            self._tell(outcome)

    def _tell(self, outcome: flows.Outcome) -> None:
        if not self._stopping:
            self.parts.dialogs.message(outcome.title, outcome.text, error=outcome.error)
