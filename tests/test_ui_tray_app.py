"""The tray's logic with no display: its menu, its actions, the no-flicker rule on an injected clock, and
the Restore… and Choose backup folder… conversations with a scripted dialog host (the real backup, the real
service; only the windows are stand-ins). The real desktop runs in tests/test_ui_tray.py."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from app import config, paths
from app.backup import ownership
from app.backup.catalog import SessionRow
from app.backup.result import Outcome
from app.errors import BackupError, FailureKind
from app.platform.autostart_base import AutostartError
from app.service.events import Pause, Resume, SyncNow
from app.service.runtime import Runtime
from app.service.service import Timing
from app.service.status import ServiceState, Status
from app.ui import flows
from app.ui.icons import State
from app.ui.notify import Note
from app.ui.tray.app import Parts, TrayApp
from app.ui.tray.face import Face, NoFace
from app.ui.tray.model import Action, FlowEnded, FolderChosen, Menu, MenuView, StatusChanged, menu_items
from app.wiring import context_for
from tests import dbfactory as f

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------- the menu
def labels(view: MenuView) -> list[str]:
    return ["---" if i is None else i.label + ("" if i.enabled else " (grey)") for i in menu_items(view)]


def test_without_a_folder_choose_comes_first_and_what_cannot_act_is_grey() -> None:
    items = labels(MenuView(autostart_supported=True))
    assert items[:2] == ["Choose backup folder…", "---"]
    assert "Sync now (grey)" in items and "Restore… (grey)" in items and "Pause backups (grey)" in items
    assert items[-1] == "Quit" and items.count("Choose backup folder…") == 1
    default = [i for i in menu_items(MenuView()) if i is not None and i.default]
    assert [i.action for i in default] == [Action.CHOOSE_FOLDER]


def test_a_running_service_offers_its_actions_and_a_flow_greys_the_other_flows() -> None:
    running = MenuView(configured=True, running=True, paused=True, folder_exists=True, log_exists=True,
                       autostart_supported=True, autostart_enabled=True)  # fmt: skip
    items = {i.action: i for i in menu_items(running) if i is not None}
    assert items[Action.TOGGLE_PAUSE].label == "Resume backups"
    assert items[Action.STATUS].default and items[Action.RESTORE].enabled
    assert (
        items[Action.TOGGLE_AUTOSTART].checked is True and items[Action.TOGGLE_AGENT_TOOLS].checked is False
    )
    busy = {i.action: i for i in menu_items(MenuView(**{**vars(running), "busy": True})) if i is not None}
    assert not busy[Action.RESTORE].enabled and not busy[Action.CHOOSE_FOLDER].enabled
    assert busy[Action.SYNC_NOW].enabled  # a dialog does not stop the backups


# ---------------------------------------------------------------------------------------- stand-ins
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeService:
    def __init__(self) -> None:
        self.posted: list[object] = []

    def post(self, event: object) -> None:
        self.posted.append(event)


class FakeRuntime:
    def __init__(self, settings: config.Settings, **_kw: object) -> None:
        self.settings = settings
        self.service = FakeService()
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> bool:
        self.running = False
        return True


class Notes:
    def __init__(self) -> None:
        self.sent: list[Note] = []

    def notify(self, note: Note) -> None:
        self.sent.append(note)


class Dialogs:
    """Scripted answers; records what it was shown."""

    def __init__(self, pick: list[str] | Literal["replace_all"] | None = None, ok: bool = True,
                 folder: Path | str | None = None) -> None:  # fmt: skip
        self.pick, self.ok, self.folder = pick, ok, folder
        self.shown: list[tuple[str, str]] = []
        self.rows: list[SessionRow] = []
        self.closed = False

    def pick_sessions(
        self, rows: Sequence[SessionRow], allow_replace: bool = True
    ) -> list[str] | Literal["replace_all"] | None:
        self.rows = list(rows)
        return self.pick

    def confirm(self, title: str, text: str, ok: str, strong: bool = False) -> bool:
        self.shown.append((title, text))
        return self.ok

    def choose_folder(
        self, initial: Path | None, title: str, suggestions: Sequence[Path] = (), remotes: Sequence[str] = ()
    ) -> Path | str | None:
        self.suggested, self.remotes = list(suggestions), list(remotes)
        return self.folder

    def message(self, title: str, text: str, error: bool = False) -> None:
        self.shown.append((title, text))

    def open_status(self, state_dir: Path, backup_path: Path | None, *, detach: bool = False) -> Any:
        self.shown.append(("Status", str(backup_path)))
        return Window()

    def close_all(self, *, for_good: bool = False) -> None:
        self.closed = True


class Window:
    """A status window that has just been closed."""

    def poll(self) -> int:
        return 0


class Switch:
    def __init__(self, fail: bool = False) -> None:
        self.on = False
        self.fail = fail
        self.supported = True
        self.location = "x"
        self.command = ["x"]

    def enabled(self) -> bool:
        return self.on

    def is_enabled(self) -> bool:
        return self.on

    def switch(self, on: bool) -> None:
        self.on = on

    def enable(self) -> None:
        if self.fail:
            raise AutostartError("the autostart folder is read-only")
        self.on = True

    def disable(self) -> None:
        self.on = False


def settings_for(tmp_path: Path) -> config.Settings:
    return config.load({"backupPath": str(tmp_path / "backup"), "machineName": "laptop"})


def make_app(
    tmp_path: Path, dialogs: Dialogs | None = None, face: Face | None = None, **changes: Any
) -> tuple[TrayApp, Parts]:
    given: dict[str, Any] = {
        "dialogs": dialogs or Dialogs(),
        "notifier": Notes(),
        "autostart": Switch(),
        "agent_tools": Switch(),
        "make_runtime": FakeRuntime,
        "open_path": lambda _p: None,
        "clock": Clock(),
        "wall": lambda: NOW,
        "state_dir": tmp_path / "state",
        "log_file": tmp_path / "log" / "opencode-backup.log",
    }
    p = Parts(**{**given, **changes})
    return TrayApp(settings_for(tmp_path), None, p, face), p


# ---------------------------------------------------------------------------------------- actions
def test_menu_actions_reach_the_service_and_the_switches(tmp_path: Path) -> None:
    stopped: list[bool] = []

    class Stopping(NoFace):
        def stop(self) -> None:
            stopped.append(True)

    app, _ = make_app(tmp_path, face=Stopping())
    app.begin()
    runtime = app._runtime
    assert isinstance(runtime, FakeRuntime) and runtime.running and app.menu.running
    app.handle(Menu(Action.SYNC_NOW))
    app.handle(Menu(Action.TOGGLE_PAUSE))
    app.handle(StatusChanged(Status(ServiceState.PAUSED, paused=True)))
    assert app.menu.paused
    app.handle(Menu(Action.TOGGLE_PAUSE))
    assert runtime.service.posted == [SyncNow(), Pause(), Resume()]
    app.handle(Menu(Action.TOGGLE_AUTOSTART))
    app.handle(Menu(Action.TOGGLE_AGENT_TOOLS))
    assert app.menu.autostart_enabled and app.menu.agent_tools_enabled
    app.handle(Menu(Action.QUIT))
    assert stopped == [True]


def test_open_backup_folder_becomes_available_when_the_first_backup_has_made_the_folder(
    tmp_path: Path,
) -> None:
    """Also when the first sync failed (at login, before Google Drive is mounted) and a later one made it."""
    app, parts = make_app(tmp_path)
    app.begin()
    app.handle(StatusChanged(Status(ServiceState.SYNCING)))
    assert not app.menu.folder_exists and not app.menu.log_exists  # nothing to open yet: greyed
    parts.log_file.parent.mkdir(parents=True)
    parts.log_file.write_text("started\n")
    app.handle(StatusChanged(Status(ServiceState.RETRYING, last_attempt=NOW, last_outcome=Outcome.FAILED)))
    assert app.menu.log_exists and not app.menu.folder_exists
    settings = app._settings
    assert settings is not None and settings.machine_dir is not None
    settings.machine_dir.mkdir(parents=True)
    later = NOW + timedelta(minutes=1)
    app.handle(
        StatusChanged(
            Status(ServiceState.IDLE, last_attempt=later, last_backup=later, last_outcome=Outcome.OK)
        )
    )
    assert app.menu.folder_exists


def test_a_switch_that_cannot_change_says_so_in_a_notification(tmp_path: Path) -> None:
    app, parts = make_app(tmp_path, autostart=Switch(fail=True))
    app.begin()
    app.handle(Menu(Action.TOGGLE_AUTOSTART))
    assert not app.menu.autostart_enabled
    assert parts.notifier.sent[-1].title == "Start at login not changed"  # type: ignore[attr-defined]


def test_syncing_shows_only_once_a_sync_is_a_second_old_and_the_tray_wakes_exactly_then(
    tmp_path: Path,
) -> None:
    app, parts = make_app(tmp_path)
    clock = parts.clock
    assert isinstance(clock, Clock)
    app.begin()
    backed_up = {"last_backup": NOW - timedelta(minutes=2), "last_outcome": Outcome.OK, "sessions": 3}
    app.handle(StatusChanged(Status(ServiceState.SYNCING, **backed_up)))  # type: ignore[arg-type]
    assert app.view()[0] is State.UP_TO_DATE  # a 20 ms sync never flickers the icon
    assert app.next_wake() == pytest.approx(101.0)  # not a look every 50 ms meanwhile
    clock.now = 101.0
    assert app.view() == (State.SYNCING, "Backing up… · last backup 2 min ago")
    app.refresh()
    assert app.next_wake() == pytest.approx(121.0)  # then only the tooltip's refresh


# ---------------------------------------------------------------------------------------- flows
@pytest.fixture
def backed_up(tmp_path: Path) -> config.Settings:
    """opencode with two sessions, backed up; then ses_b deleted in opencode."""
    conn = f.create_db(paths.opencode_data_dir() / "opencode.db")
    f.add_session(conn, "ses_a")
    f.add_session(conn, "ses_b", title="the one to bring back")
    conn.close()
    settings = settings_for(tmp_path)
    from app.backup.sync import run_sync

    assert run_sync(context_for(settings)).ok
    f.delete_session(paths.opencode_data_dir() / "opencode.db", "ses_b")
    return settings


def test_restore_from_the_tray_runs_as_a_job_of_the_service_and_brings_the_session_back(
    backed_up: config.Settings, tmp_path: Path
) -> None:
    timing = Timing(delay=0.05, interval=0.1)
    rt = Runtime(context_for(backed_up), timing=timing, watch=False, control_poll=0.05)
    rt.start()
    try:
        deadline = time.monotonic() + 20
        while rt.status.syncs < 1:  # its start-up backup (it moves ses_b to versions/)
            assert time.monotonic() < deadline, rt.status
            time.sleep(0.05)
        dialogs = Dialogs(pick=["ses_b"])
        seen: list[ServiceState] = []
        real_post = rt.service.post

        def watch(event: Any) -> None:  # how the flow hands the plan over: as a job of the service
            seen.append(type(event).__name__)
            real_post(event)

        rt.service.post = watch  # type: ignore[method-assign]
        db = paths.opencode_data_dir() / "opencode.db"
        outcome = flows.restore(backed_up, dialogs, _rows(backed_up), db, flows.restore_on(rt))
        assert outcome.done and not outcome.error, outcome
        assert seen == ["RestoreNow"]
        assert [r.id for r in dialogs.rows if not r.in_opencode] == ["ses_b"]
        assert dialogs.shown[0][0] == "Confirm restore" and "Add 1 session" in dialogs.shown[0][1]
        conn = f.connect(db)
        title = conn.execute("SELECT title FROM session WHERE id = 'ses_b'").fetchone()
        conn.close()
        assert title == ("the one to bring back",)
        back = backed_up.machine_dir / "sessions" / "proj1" / "ses_b.json"  # type: ignore[operator]
        while not back.is_file():  # then the service backs up what it restored
            assert time.monotonic() < deadline + 20, rt.status
            time.sleep(0.05)
    finally:
        assert rt.stop()


def _rows(s: config.Settings) -> list[SessionRow]:
    from app.backup.catalog import session_rows

    assert s.machine_dir is not None
    return session_rows(s.machine_dir, s.machine_name, s.source, s.opencode_db)


def test_cancel_in_the_confirmation_changes_nothing(backed_up: config.Settings) -> None:
    applied: list[object] = []
    db = paths.opencode_data_dir() / "opencode.db"
    outcome = flows.restore(backed_up, Dialogs(pick=["ses_b"], ok=False), _rows(backed_up), db,
                            lambda plan, req: applied.append(plan))  # type: ignore[arg-type,return-value]  # fmt: skip
    assert outcome is flows.CANCELLED and applied == []


def test_choosing_a_folder_restarts_the_service_on_it_and_the_menu_follows(tmp_path: Path) -> None:
    chosen = tmp_path / "drive"
    chosen.mkdir()
    app, parts = make_app(tmp_path, dialogs=Dialogs(folder=chosen))
    app._settings = None  # not configured yet: Choose backup folder… first
    app.begin()
    assert not app.menu.configured and app._runtime is None
    app.handle(Menu(Action.CHOOSE_FOLDER))
    assert app.menu.busy  # Restore… and Choose backup folder… are grey while it runs
    app.handle(Menu(Action.RESTORE))  # ignored: one conversation at a time
    flow = app._flow
    assert flow is not None
    flow.join(10)
    events = []
    while not app._queue.empty():
        events.append(app._queue.get())
    assert [type(e) for e in events] == [FolderChosen, FlowEnded]
    for e in events:
        app.handle(e)
    runtime = app._runtime
    assert isinstance(runtime, FakeRuntime) and runtime.settings.backup_path == chosen
    assert app.menu.configured and not app.menu.busy
    assert parts.dialogs.shown[-1][0] == "Backup folder chosen"  # type: ignore[attr-defined]


def test_the_folder_picker_offers_the_other_google_drive_accounts(tmp_path: Path) -> None:
    """Several Google Drive accounts: the backup folder is auto-detected in the first, and the picker
    offers the others (never the one in use), so backing up into another account is one click."""
    first, second = tmp_path / "G" / "My Drive", tmp_path / "H" / "Mi unidad"
    for drive in (first, second):
        drive.mkdir(parents=True)
    dialogs = Dialogs(folder=second / "opencode-sessions")
    settings = replace(settings_for(tmp_path), backup_path=first / "opencode-sessions")
    outcome, new = flows.choose_folder(settings, dialogs, drives=lambda: [first, second])
    assert dialogs.suggested == [second / "opencode-sessions"]
    assert outcome.done and new is not None and new.backup_path == second / "opencode-sessions"
    flows.choose_folder(None, dialogs, drives=lambda: [first, second])
    assert dialogs.suggested == [first / "opencode-sessions", second / "opencode-sessions"]


def test_the_folder_picker_offers_the_users_rclone_remotes_and_saves_the_one_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Google Drive app (Linux): the remotes of the user's rclone config are offered; the one chosen
    becomes backupPath, written rclone:REMOTE:PATH, checked as the command line checks it."""
    config = tmp_path / "rclone.conf"
    config.write_text("[nas]\ntype = sftp\nhost = 192.0.2.1\n\n[gdrive]\ntype = drive\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(config))
    dialogs = Dialogs(folder="rclone:nas:opencode-sessions")
    outcome, new = flows.choose_folder(None, dialogs, drives=list)
    assert dialogs.remotes == ["gdrive", "nas"]
    assert outcome.done and new is not None and new.remote is not None
    assert new.remote.text == "rclone:nas:opencode-sessions"
    assert json.loads(new.config_file.read_text())["backupPath"] == "rclone:nas:opencode-sessions"
    assert "Backups go to nas:opencode-sessions/" in outcome.text
    config.write_text("[gdrive]\ntype = drive\n")  # the remote went from rclone's config meanwhile
    outcome, _ = flows.choose_folder(None, Dialogs(folder="rclone:nas:x"), drives=list)
    assert not outcome.done and "rclone has no remote named 'nas'" in outcome.text


def test_a_remote_folder_typed_with_backslashes_is_chosen_not_reported_as_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings write a remote's path with '/' (as rclone reads it): a folder typed with '\\' or '//'
    is saved and in effect, and the picker says so rather than "saved, but not in effect"."""
    config = tmp_path / "rclone.conf"
    config.write_text("[nas]\ntype = sftp\nhost = 192.0.2.1\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(config))
    outcome, new = flows.choose_folder(None, Dialogs(folder="rclone:nas:backups\\opencode//x"), drives=list)
    assert new is not None and new.destination_text == "rclone:nas:backups/opencode/x"
    assert outcome.done and not outcome.error and outcome.title == "Backup folder chosen"


def test_a_flow_error_is_logged_and_the_menu_comes_back(tmp_path: Path) -> None:
    class Broken(Dialogs):
        def choose_folder(
            self,
            initial: Path | None,
            title: str,
            suggestions: Sequence[Path] = (),
            remotes: Sequence[str] = (),
        ) -> Path | str | None:
            raise BackupError("the folder dialog failed (exit 3): no display")

    app, _ = make_app(tmp_path, dialogs=Broken())
    app.begin()
    app.handle(Menu(Action.CHOOSE_FOLDER))
    assert app._flow is not None
    app._flow.join(10)
    app.handle(app._queue.get())
    assert not app.menu.busy


def test_while_backups_fail_on_another_installs_folder_the_menu_offers_adopt_and_it_adopts(
    tmp_path: Path,
) -> None:
    machine = tmp_path / "backup" / "laptop"
    machine.mkdir(parents=True)
    other = {"format": ownership.FORMAT, "install": "e" * 32, "host": "old-box"}
    (machine / ownership.OWNER).write_text(json.dumps(other))
    app, parts = make_app(tmp_path, identity=lambda: "a-computer/alice")
    app.begin()
    assert not app.menu.adoptable
    failed = Status(ServiceState.FAILED, last_outcome=Outcome.FAILED, last_kind=FailureKind.FOREIGN)
    app.handle(StatusChanged(failed))
    assert app.menu.adoptable and menu_items(app.menu)[0].action is Action.ADOPT  # type: ignore[union-attr]
    app.handle(Menu(Action.ADOPT))
    assert app._flow is not None
    app._flow.join(10)
    assert parts.dialogs.shown[0][0] == "Adopt this backup folder?"  # type: ignore[attr-defined]
    assert "old-box" in parts.dialogs.shown[0][1]  # type: ignore[attr-defined]
    runtime = app._runtime
    assert isinstance(runtime, FakeRuntime) and runtime.service.posted == [SyncNow()]
    owner = ownership.read_claim(machine, ownership.OWNER)
    assert owner is not None and owner.install == ownership.install_id(parts.state_dir) and owner.computer
    app.handle(StatusChanged(Status(ServiceState.IDLE, last_outcome=Outcome.OK)))
    assert not app.menu.adoptable
