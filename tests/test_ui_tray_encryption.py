"""The tray's Encrypt backups… and Stop encrypting backups… with a scripted dialog host (the real keys,
settings file and service; only the windows are stand-ins, as in tests/test_ui_tray_app.py): the recovery
key is shown before anything is kept, Cancel changes nothing, the keys kept and the switch set ask the
service for a backup, which re-encrypts the folder in place. No real keyring is reached (tests/conftest.py
sets the fail backend): the key is kept in the app's 0600 file, and the outcome says so.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app import config
from app.crypt import age
from app.crypt.keys import IDENTITY_FILE, RECIPIENTS_FILE
from app.service.events import SyncNow
from app.service.runtime import Runtime
from app.service.service import Timing
from app.ui import flows
from app.ui.presenter import status_rows
from app.ui.tray.app import TrayApp
from app.ui.tray.model import Action, EncryptionChanged, FlowEnded, Menu, MenuView, UiEvent, menu_items
from app.wiring import context_for, key_store
from tests import test_ui_tray_app
from tests.test_ui_tray_app import Dialogs, FakeRuntime, labels, make_app

backed_up = test_ui_tray_app.backed_up  # the fixture: opencode with two sessions, backed up (plain)


class Recovering(Dialogs):
    """Also answers the recovery key window: ``stored`` is whether the box was checked and Encrypt
    pressed."""

    def __init__(self, stored: bool = True, ok: bool = True) -> None:
        super().__init__(ok=ok)
        self.stored = stored
        self.keys: list[str] = []

    def keep_recovery_key(self, text: str, key: str) -> bool:
        self.keys.append(key)
        self.shown.append(("recovery key", text))
        return self.stored


def finish_flow(app: TrayApp) -> list[UiEvent]:
    """Wait for the flow thread, then let the tray's thread handle what it posted."""
    flow = app._flow
    assert flow is not None
    flow.join(20)
    assert not flow.is_alive()
    events = []
    while not app._queue.empty():
        events.append(app._queue.get())
    for event in events:
        app.handle(event)
    return events


def encryption_item(app: TrayApp) -> str:
    return next(
        i.label for i in menu_items(app.menu) if i is not None and i.action is Action.TOGGLE_ENCRYPTION
    )


def posted(app: TrayApp) -> list[object]:
    runtime = app._runtime
    assert isinstance(runtime, FakeRuntime)
    return runtime.service.posted


def test_the_menu_offers_encrypt_after_choose_folder_and_stop_once_it_is_on() -> None:
    off = MenuView(configured=True, running=True)
    items = labels(off)
    assert items[items.index("Choose backup folder…") + 1] == "Encrypt backups…"
    assert "Stop encrypting backups…" in labels(MenuView(configured=True, encrypted=True))
    assert "Encrypt backups… (grey)" in labels(MenuView(configured=True, busy=True))  # one dialog at a time
    assert not any("ncrypt" in label for label in labels(MenuView()))  # no backup folder yet: not offered


def test_encrypt_shows_the_recovery_key_then_keeps_the_keys_sets_the_switch_and_asks_for_a_backup(
    tmp_path: Path,
) -> None:
    dialogs = Recovering(stored=True)
    app, _ = make_app(tmp_path, dialogs=dialogs)
    app.begin()
    assert encryption_item(app) == "Encrypt backups…"
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))
    assert app.menu.busy
    events = finish_flow(app)
    assert [type(e) for e in events] == [EncryptionChanged, FlowEnded]

    store = key_store()
    mine = store.recipients()
    assert mine is not None and len(dialogs.keys) == 1
    assert age.public_of(dialogs.keys[0]) == mine.recovery  # the key shown is the recovery key
    assert [age.public_of(k) for k in store.identities()] == [mine.own]  # ... and it is not kept here
    assert config.load(check_destination=False).encryption
    assert posted(app) == [SyncNow()]  # the service re-reads the keys and the switch, and re-encrypts
    assert encryption_item(app) == "Stop encrypting backups…"
    (_, asked), (title, text) = dialogs.shown
    assert asked == flows.RECOVERY_TEXT and "shown only once" in asked
    assert title == "Backups are encrypted"
    kept = str(store.folder / IDENTITY_FILE)
    assert f"kept in {kept}" in text and "no system keyring works here" in text  # the fail keyring


def test_cancel_in_the_recovery_key_window_changes_nothing(tmp_path: Path) -> None:
    dialogs = Recovering(stored=False)
    app, _ = make_app(tmp_path, dialogs=dialogs)
    app.begin()
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))
    finish_flow(app)
    assert len(dialogs.keys) == 1 and [t for t, _ in dialogs.shown] == ["recovery key"]  # no message after
    folder = key_store().folder
    assert not (folder / RECIPIENTS_FILE).exists() and not (folder / IDENTITY_FILE).exists()
    assert key_store().identities() == ()
    assert not config.load(check_destination=False).encryption
    assert not config.load(check_destination=False).config_file.exists()  # the settings file not written
    assert posted(app) == [] and encryption_item(app) == "Encrypt backups…"


def test_stop_encrypting_asks_first_then_turns_it_off_keeps_the_keys_and_asks_for_a_backup(
    tmp_path: Path,
) -> None:
    dialogs = Recovering(stored=True, ok=False)
    app, _ = make_app(tmp_path, dialogs=dialogs)
    app.begin()
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))
    finish_flow(app)
    posted(app).clear()
    dialogs.shown.clear()

    app.handle(Menu(Action.TOGGLE_ENCRYPTION))  # Cancel in the confirmation: still on
    finish_flow(app)
    [(title, text)] = dialogs.shown
    assert title == "Stop encrypting backups?"
    assert "decrypted in place" in text and "Anyone who can read the backup folder" in text
    assert config.load(check_destination=False).encryption and posted(app) == []
    assert encryption_item(app) == "Stop encrypting backups…"

    dialogs.ok = True
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))
    finish_flow(app)
    assert not config.load(check_destination=False).encryption
    assert posted(app) == [SyncNow()]  # the service decrypts the folder in place
    assert key_store().identities() and key_store().recipients() is not None  # older copies need them
    assert dialogs.shown[-1][0] == "Backups no longer encrypted"
    assert encryption_item(app) == "Encrypt backups…"

    dialogs.shown.clear()
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))  # on again: the keys made before, no new recovery key
    finish_flow(app)
    [(title, text), (done, _)] = dialogs.shown
    assert title == "Encrypt backups?" and "the keys this computer made before" in text
    assert len(dialogs.keys) == 1 and done == "Backups are encrypted"
    assert config.load(check_destination=False).encryption


def test_on_a_computer_unlocked_with_the_recovery_key_no_new_one_is_shown(tmp_path: Path) -> None:
    """``encryption unlock`` kept the recovery key here (a new computer): Encrypt backups… makes this
    computer's own key, and the recovery key stays the one unlocked with; a message says so, not a key."""
    recovery, recovery_public = age.new_identity()
    key_store().add_identity(recovery, unlocked=True)  # as `encryption unlock` keeps it
    dialogs = Recovering(stored=True)
    app, _ = make_app(tmp_path, dialogs=dialogs)
    app.begin()
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))
    finish_flow(app)
    [(title, text), (done, _)] = dialogs.shown
    assert title == "Encrypt backups?" and f"unlocked with ({recovery_public})" in text
    assert dialogs.keys == [] and done == "Backups are encrypted"
    mine = key_store().recipients()
    assert mine is not None and mine.recovery == recovery_public and mine.own != recovery_public
    assert posted(app) == [SyncNow()]


def test_a_switch_the_environment_overrides_is_said_and_no_backup_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCODE_BACKUP_ENCRYPTION", "0")
    dialogs = Recovering(stored=True)
    app, _ = make_app(tmp_path, dialogs=dialogs)
    app.begin()
    app.handle(Menu(Action.TOGGLE_ENCRYPTION))
    finish_flow(app)
    title, text = dialogs.shown[-1]
    assert title == "Encryption saved, but not in effect" and "env OPENCODE_BACKUP_ENCRYPTION" in text
    assert posted(app) == [] and encryption_item(app) == "Encrypt backups…"


def test_with_the_real_service_the_backup_is_encrypted_in_place_and_the_status_says_so(
    backed_up: config.Settings, tmp_path: Path
) -> None:
    timing = Timing(delay=0.05, interval=0.1)

    def service(settings: config.Settings, **kw: Any) -> Runtime:
        return Runtime(context_for(settings), timing=timing, watch=False, control_poll=0.05,
                       listeners=kw["listeners"])  # fmt: skip

    app, _ = make_app(tmp_path, dialogs=Recovering(stored=True), make_runtime=service)
    app.begin()
    rt = app._runtime
    assert rt is not None
    try:
        wait(lambda: rt.status.syncs >= 1, rt)  # its start-up backup, plain
        assert rt.status.encrypted is False
        app.handle(Menu(Action.TOGGLE_ENCRYPTION))
        finish_flow(app)
        wait(lambda: rt.status.encrypted is True, rt)
        assert backed_up.machine_dir is not None
        files = sorted((backed_up.machine_dir / "sessions").rglob("*.json"))
        assert files and all(age.is_sealed(p.read_bytes()[:32]) for p in files)
        rows = status_rows(rt.status, datetime.now(UTC), str(backed_up.machine_dir))
        assert {r.label: r.value for r in rows}["Encryption"] == "Encrypted (age)"
    finally:
        app.stop()


def wait(done: Any, rt: Runtime, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, rt.status
        time.sleep(0.05)
