"""The tray app on a real desktop: Xvfb + trayer + dunst on a private D-Bus, driven by xdotool.

``python -m app run`` runs as a real process with pystray's gtk backend (right click = menu, left
click = Status…, a tooltip). The menu is driven with the keyboard once open (Down × n, Return), as a
user with a keyboard would; what each click did is read back from the status file, the backup
folder, opencode's database, dunst's history and screenshots of the tray.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from app import paths
from app.backup.result import Outcome
from app.crypt import age
from app.service.status import ServiceState, Status, read_status
from app.ui.dialog.protocol import TRACE_ENV
from app.ui.icons import State, render
from tests import dbfactory as f
from tests.desktop import Desktop, trace_events, wait_for

ROOT = Path(__file__).resolve().parent.parent
PANEL_TINT = (64, 64, 64)
MENU = [
    "Sync now",
    "Status…",
    "Restore…",
    "Browse backups…",
    "Pause backups",
    "Open backup folder",
    "Open log",
    "Choose backup folder…",
    "Encrypt backups…",
    "Start at login",
    "Agent tools in opencode",
    "Quit",
]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an X11 test desktop")


class Tray:
    """One ``opencode-backup run`` process on the test desktop."""

    def __init__(
        self, d: Desktop, *args: str, backend: str | None = "gtk", argv: list[str] | None = None
    ) -> None:
        self.d = d
        self.env = self.environment(d)
        if backend is not None:
            self.env["PYSTRAY_BACKEND"] = backend
        self.state_dir = paths.app_state_dir()
        self.log = paths.app_log_dir() / "opencode-backup.log"
        self.trace = paths.app_state_dir().parent / "dialogs.trace.jsonl"  # what its dialogs show
        self.env[TRACE_ENV] = str(self.trace)
        cmd = argv or [sys.executable, "-m", "app", "run", "--debug", *args]
        self.proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    @staticmethod
    def environment(d: Desktop) -> dict[str, str]:
        """This test's HOME and XDG dirs on the test desktop."""
        desk = {k: d.env[k] for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE")}
        return {**os.environ, **desk, "PYTHONPATH": str(ROOT)}

    def status(self) -> Status | None:
        return read_status(self.state_dir)

    def wait_status(self, pred: object, timeout: float = 30.0, what: str = "status") -> Status:
        def check() -> Status | None:
            st = self.status()
            return st if st is not None and pred(st) else None  # type: ignore[operator]

        try:
            return wait_for(check, timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; last status {self.status()}; log:\n{self.log_text()[-3000:]}"
            ) from None

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""

    def wait_backed_up(self) -> Status:
        """Docked, and the start-up backup done."""
        self.wait_docked()
        return self.wait_status(
            lambda s: s.syncs >= 1 and s.state is ServiceState.IDLE, what="the start-up backup"
        )

    def wait_docked(self) -> None:
        wait_for(lambda: "tray icon shown" in self.log_text(), 30, what="the tray icon")
        wait_for(self.d.icon_docked, 10, what="the icon docked in trayer")
        wait_for(self.icon_drawn, 10, what="the icon drawn in the panel")

    def icon_drawn(self) -> bool:
        return self._icon_crop() is not None

    def dialog_ready(self, title: str, after: int) -> dict[str, Any]:
        """The ``ready`` event of a dialog titled ``... — <title>``, the first after ``after`` events."""

        def found() -> dict[str, Any] | None:
            events = trace_events(self.trace)[after:]
            return next((e for e in events if e["event"] == "ready" and e["title"].endswith(title)), None)

        return wait_for(found, 20, what=f"the {title!r} dialog ready")

    def wait_event(self, name: str, after: int, pred: Any = lambda _e: True, what: str = "") -> None:
        """Wait for a trace event ``name`` (matching ``pred``) among those after the first ``after``."""

        def found() -> bool:
            return any(e["event"] == name and pred(e) for e in trace_events(self.trace)[after:])

        wait_for(found, 10, what=what or f"a {name!r} event")

    def wait_flow_ended(self, before: int) -> None:
        wait_for(lambda: self.flows_ended() > before, 10, what="the dialog flow to end")

    def last_menu(self) -> str:
        """The greyed items of the menu pystray built last, as the app logs them ("" before any)."""
        built = [line for line in self.log_text().splitlines() if "menu built; greyed: " in line]
        return built[-1].split("menu built; greyed: ", 1)[1] if built else "Open backup folder"

    def trace_count(self) -> int:
        return len(trace_events(self.trace))

    def flows_ended(self) -> int:
        return self.log_text().count("dialog flow ended")

    def icon_state(self) -> State:
        """Which of the seven icons the panel shows now (nearest drawn icon to the screenshot)."""
        found = self._icon_crop()
        assert found is not None, "nothing drawn in the tray panel"
        icon, tint = found
        size = max(icon.size)

        def distance(state: State) -> float:
            drawn = Image.new("RGB", (size, size), tint)
            glyph = render(state, size)
            drawn.paste(glyph, (0, 0), glyph)
            drawn = drawn.crop((0, 0, *icon.size))
            return sum(ImageStat.Stat(ImageChops.difference(drawn, icon)).mean)

        return min(State, key=distance)

    def _icon_crop(self) -> tuple[Image.Image, tuple[int, int, int]] | None:
        """What the panel shows, cropped to the drawing, and the panel's own colour (None: blank)."""
        shot = self.d.shot("tray-now.png")
        x, y, w, h = self.d.tray_icon_box()
        crop = Image.open(shot).convert("RGB").crop((x, y, x + w, y + h))
        tint = max(crop.getcolors(w * h) or [(0, PANEL_TINT)])[1]  # the panel's own colour (theme-drawn)
        bg = Image.new("RGB", crop.size, tint)
        box = ImageChops.difference(crop, bg).convert("L").point(lambda v: 255 if v > 24 else 0).getbbox()
        return None if box is None else (crop.crop(box), tint)

    def wait_icon(self, state: State, timeout: float = 15.0) -> None:
        seen: list[State] = []

        def shows() -> bool:
            seen.append(self.icon_state())
            return seen[-1] is state

        try:
            wait_for(shows, timeout, step=0.3, what=f"the {state.value} icon")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; the panel showed {sorted(set(seen))}; status {self.status()}"
            ) from None

    def open_menu(self) -> str:
        """Right-click the icon; the id of the menu window that opened."""
        x, y, w, h = self.d.tray_icon_box()
        before = set(self.d.windows("."))
        self.d.click(x + w // 2, y + h // 2, button=3)

        def menu() -> str | None:
            for wid in self.d.windows("."):
                if wid not in before and self.d.geometry(wid)["HEIGHT"] > 150:
                    return wid
            return None

        return wait_for(menu, 10, what="the tray menu")

    def choose(self, label: str, items: list[str] = MENU) -> None:
        """Open the menu and pick ``label`` with the keyboard (every item above it must be enabled)."""
        self.open_menu()
        self.d.xdo("mousemove", "--sync", "20", "600")  # off the menu, so no item sits under the pointer
        downs = ["Down"] * (items.index(label) + 1)
        self.d.xdo("key", "--delay", "60", *downs, "Return")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the tray app did not stop on SIGTERM") from None
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def opencode(tmp_path: Path) -> Path:
    """An opencode data dir with three sessions in a database of the real schema."""
    data = paths.opencode_data_dir()
    conn = f.create_db(data / "opencode.db")
    for i, title in enumerate(("Fix the login bug", "Write the README", "Plan the release")):
        f.add_session(conn, f"ses_{i:03d}", title=title)
    conn.close()
    return data


def configure(dest: Path) -> Path:
    cfg = paths.default_config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps({"backupPath": str(dest), "machineName": "laptop", "syncDelaySeconds": 1,
                               "minIntervalSeconds": 2}))  # fmt: skip
    return cfg


def sessions_in(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM session")}
    finally:
        conn.close()


def test_the_icon_docks_shows_up_to_date_and_paused_and_the_menu_acts(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    configure(tmp_path / "backups")
    tray = Tray(desktop)
    try:
        first = tray.wait_backed_up()
        assert (tmp_path / "backups" / "laptop" / "sessions" / "proj1" / "ses_000.json").is_file()
        tray.wait_icon(State.UP_TO_DATE)
        menu = tray.open_menu()
        desktop.shot("menu.png")
        desktop.xdo("key", "Escape")
        wait_for(lambda: menu not in desktop.windows("."), 10, what="the menu closed")

        again = subprocess.run(
            [sys.executable, "-m", "app"], env=tray.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already running" in again.stderr
        window = desktop.wait_window("Status$")  # started again from a desktop: the running one's status
        desktop.key(window, "Escape")
        wait_for(lambda: not desktop.windows("Status$"), 10, what="the status window closed")

        x, y, w, h = desktop.tray_icon_box()
        seen = tray.trace_count()
        desktop.click(x + w // 2, y + h // 2)  # a left click opens Status…
        window = desktop.wait_window("Status$")
        tray.dialog_ready("Status", seen)
        desktop.shot("status.png")
        desktop.key(window, "Escape")
        wait_for(lambda: not desktop.windows("Status$"), 10, what="the status window closed")

        tray.choose("Sync now")
        tray.wait_status(lambda s: s.syncs > first.syncs, what="a backup after Sync now")

        tray.choose("Pause backups")
        tray.wait_status(lambda s: s.paused and s.state is ServiceState.PAUSED, what="paused")
        tray.wait_icon(State.PAUSED)
        f.add_session(f.connect(opencode / "opencode.db"), "ses_new")
        # noticed, and no backup planned for it: the service says so itself (no waiting to see nothing happen)
        paused = tray.wait_status(lambda s: s.pending >= 1, what="a change noticed while paused")
        assert paused.paused and paused.next_sync is None and paused.state is ServiceState.PAUSED
        assert not (tmp_path / "backups" / "laptop" / "sessions" / "proj1" / "ses_new.json").exists()

        tray.choose("Pause backups".replace("Pause", "Resume"), [*MENU[:4], "Resume backups", *MENU[5:]])
        tray.wait_status(
            lambda s: not s.paused and s.state is ServiceState.IDLE and s.pending == 0, what="resumed"
        )
        assert (tmp_path / "backups" / "laptop" / "sessions" / "proj1" / "ses_new.json").is_file()
        tray.wait_icon(State.UP_TO_DATE)

        autostart_entry = (
            Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "opencode-session-backup.desktop"
        )
        tray.choose("Start at login")
        wait_for(autostart_entry.is_file, 10, what="the login entry written")
        tray.choose("Start at login")
        wait_for(lambda: not autostart_entry.exists(), 10, what="the login entry removed")

        tray.choose("Quit")
        assert tray.proc.wait(15) == 0
        assert tray.status() is not None and tray.status().state is ServiceState.STOPPED  # type: ignore[union-attr]
    finally:
        tray.stop()


@pytest.mark.parametrize(
    ("fault", "title", "body"),
    [
        ("unplugged", "Backup folder not reachable", "The backup folder is not reachable"),
        ("locked", "Google Drive is holding a file", "Google Drive is holding ses_001.json; retrying."),
    ],
)
def test_a_failing_folder_shows_the_retrying_icon_and_exactly_one_notification(  # noqa: PLR0917
    desktop: Desktop, opencode: Path, tmp_path: Path, fault: str, title: str, body: str
) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    configure(drive / "backups")
    held = drive / "backups" / "laptop" / "sessions" / "proj1" / "ses_001.json"
    desktop.clear_notifications()
    tray = Tray(desktop)

    def break_it() -> None:
        if fault == "unplugged":
            os.rename(drive, tmp_path / "drive-unplugged")  # the drive goes away
        elif subprocess.run(["chattr", "+i", str(held)], check=False, capture_output=True).returncode:
            pytest.skip("chattr +i is not supported here")  # (a file Google Drive holds: EPERM on rename)

    def mend() -> None:
        if fault == "unplugged":
            os.rename(tmp_path / "drive-unplugged", drive)
        else:
            subprocess.run(["chattr", "-i", str(held)], check=True)

    try:
        tray.wait_backed_up()
        break_it()
        f.add_message(f.connect(opencode / "opencode.db"), "ses_001", "one more")
        tray.wait_status(lambda s: s.state is ServiceState.RETRYING, what="retrying")
        tray.wait_icon(State.RETRYING)
        wait_for(desktop.displayed, 40, step=0.3, what="a notification on screen")
        desktop.shot(f"notification-{fault}.png")
        shown = desktop.notifications()
        assert [(app, t) for app, t, _ in shown] == [("opencode session backup", title)]
        assert shown[0][2].startswith(body), shown
        tray.wait_status(lambda s: s.syncs >= 4, timeout=60, what="more failed attempts")
        assert len(desktop.notifications()) == 1  # one alert per failure episode, however many retries
        mend()
        tray.choose("Sync now")  # no need to wait for the next retry
        tray.wait_status(
            lambda s: s.state is ServiceState.IDLE and s.last_outcome is Outcome.OK,
            timeout=60,
            what="recovered",
        )
        wait_for(lambda: len(desktop.notifications()) == 2, 20, what="the recovery notification")
        assert desktop.notifications()[-1][1] == "Backups work again"
        tray.wait_icon(State.UP_TO_DATE)
    finally:
        if fault == "locked":
            subprocess.run(["chattr", "-i", str(held)], check=False, capture_output=True)
        assert tray.stop() == 0


def test_without_a_backup_folder_the_icon_says_so_and_choose_backup_folder_starts_backups(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    tray = Tray(desktop)
    dest = tmp_path / "chosen"
    dest.mkdir()
    try:
        tray.wait_docked()
        tray.wait_icon(State.NOT_CONFIGURED)
        # greyed items (Sync now, Restore…, Pause, Open backup folder) are skipped by the keyboard
        not_configured_menu = ["Choose backup folder…", "Status…", "Open log", "Start at login", "Quit"]
        tray.choose("Status…", not_configured_menu)  # lands on Sync now if that is not greyed
        window = desktop.wait_window("Status$")
        desktop.key(window, "Escape")
        entry = Path(os.environ["XDG_CONFIG_HOME"], "autostart", "opencode-session-backup.desktop")
        tray.choose("Start at login", not_configured_menu)  # ... and elsewhere if any of the others is not
        wait_for(entry.is_file, 10, what="Start at login reached past the greyed items")
        tray.choose("Start at login", not_configured_menu)
        wait_for(lambda: not entry.exists(), 10, what="the login entry removed")
        seen = tray.trace_count()
        tray.choose("Choose backup folder…", not_configured_menu)
        dialog = desktop.wait_window("Choose the backup folder")
        tray.dialog_ready("Choose the backup folder", seen)
        desktop.type(dialog, str(dest))  # replaces the selected start folder
        desktop.key(dialog, "Return", "Return")  # Tk: the first Enter opens the folder, the second picks it
        done = desktop.wait_window("Backup folder chosen")
        desktop.key(done, "Return")
        cfg = json.loads(paths.default_config_file().read_text())
        assert cfg["backupPath"] == str(dest)
        tray.wait_status(lambda s: s.syncs >= 1 and s.state is ServiceState.IDLE, what="the first backup")
        machine = next(dest.iterdir())
        assert (machine / "sessions" / "proj1" / "ses_002.json").is_file()
        tray.wait_icon(State.UP_TO_DATE)
    finally:
        assert tray.stop() == 0


def test_an_unusable_backup_folder_shows_the_failed_icon_and_says_why_instead_of_exiting_unseen(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    """A tray started at login has no terminal: a bad folder must show on the desktop."""
    (tmp_path / "a-file").write_text("not a folder")
    configure(tmp_path / "a-file")
    desktop.clear_notifications()
    tray = Tray(desktop)
    try:
        tray.wait_docked()
        tray.wait_icon(State.FAILED)
        wait_for(desktop.notifications, 20, what="a notification")
        [(_app, title, body)] = desktop.notifications()
        assert title == "Backups cannot start" and "is a file, not a folder" in body
        assert tray.proc.poll() is None
    finally:
        assert tray.stop() == 0


def test_restore_from_the_menu_cancel_changes_nothing_and_ok_brings_the_session_back(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    configure(tmp_path / "backups")
    db = opencode / "opencode.db"
    tray = Tray(desktop)
    try:
        tray.wait_backed_up()
        f.delete_session(db, "ses_001")
        assert "ses_001" not in sessions_in(db)
        before = db.read_bytes()

        for answer in ("cancel", "ok"):
            seen, ended = tray.trace_count(), tray.flows_ended()
            tray.choose("Restore…")
            picker = desktop.wait_window("Restore sessions$")
            tray.dialog_ready("Restore sessions", seen)
            desktop.key(picker, "alt+m")  # Select missing: the deleted session, kept in versions/
            tray.wait_event("selection", seen, lambda e: e["ids"] == ["ses_001"], what="Select missing")
            desktop.shot("picker.png")
            seen = tray.trace_count()
            desktop.key(picker, "Return")  # Restore selected
            confirm = desktop.wait_window("Confirm restore$")
            tray.dialog_ready("Confirm restore", seen)
            desktop.shot("confirm.png")
            if answer == "cancel":
                desktop.key(confirm, "Return")  # Cancel is the default button
                tray.wait_flow_ended(ended)
                assert not desktop.windows("opencode session backup")
                assert db.read_bytes() == before and "ses_001" not in sessions_in(db)
            else:
                desktop.key(confirm, "Tab", "Return")
                done = desktop.wait_window("Restore finished$")
                desktop.shot("restored.png")
                desktop.key(done, "Return")
                # the flow ends and the menu is rebuilt with Restore… enabled again
                tray.wait_flow_ended(ended)
        assert "ses_001" in sessions_in(db)
        titles = [t for _a, t, _b in desktop.notifications()]
        assert "Restore finished" in titles

        tray.choose("Restore…")  # quitting with a dialog open closes the dialog too
        desktop.wait_window("Restore sessions$")
        assert tray.stop() == 0
        wait_for(lambda: not desktop.windows("opencode session backup"), 10, what="the picker closed on quit")
    finally:
        assert tray.stop() == 0


def test_encrypt_backups_from_the_menu_shows_the_recovery_key_and_encrypts_the_backup_in_place(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    """Encrypt backups…: the recovery key window (keyboard only), the message, the backup the tray asks
    for re-encrypting every file, the status window saying so; then Stop encrypting backups… back."""
    configure(tmp_path / "backups")
    sessions = tmp_path / "backups" / "laptop" / "sessions"
    tray = Tray(desktop)
    try:
        tray.wait_backed_up()
        # the first backup made the folder: Open backup folder, above, is offered without another action
        # (the keyboard skips greyed items, so Encrypt backups… is reached only if it is)
        wait_for(lambda: "Open backup folder" not in tray.last_menu(), 10, what="Open backup folder offered")
        seen, ended = tray.trace_count(), tray.flows_ended()
        tray.choose("Encrypt backups…")
        window = desktop.wait_window("Encrypt backups$")
        tray.dialog_ready("Encrypt backups", seen)
        desktop.key(window, "alt+h")  # I have stored the recovery key
        tray.wait_event("ok_enabled", seen, lambda e: e["enabled"], what="Encrypt enabled")
        desktop.key(window, "alt+e")
        done = desktop.wait_window("Backups are encrypted$")
        desktop.key(done, "Return")
        tray.wait_flow_ended(ended)
        tray.wait_status(lambda s: s.encrypted is True, what="the backup encrypted in place")
        assert all(age.is_sealed(p.read_bytes()) for p in sessions.rglob("*.json"))

        seen = tray.trace_count()
        x, y, w, h = desktop.tray_icon_box()
        desktop.click(x + w // 2, y + h // 2)  # Status…
        tray.wait_event("rows", seen, lambda e: ["Encryption", "Encrypted (age)"] in e["rows"])
        desktop.key(desktop.wait_window("Status$"), "Escape")
        wait_for(lambda: not desktop.windows("Status$"), 10, what="the status window closed")

        ended = tray.flows_ended()
        on = [label.replace("Encrypt", "Stop encrypting") for label in MENU]
        tray.choose("Stop encrypting backups…", on)
        confirm = desktop.wait_window(re.escape("Stop encrypting backups?") + "$")
        desktop.key(confirm, "Tab", "Return")  # past Cancel, the default, to Decrypt backups
        done = desktop.wait_window("Backups no longer encrypted$")
        desktop.key(done, "Return")
        tray.wait_flow_ended(ended)
        tray.wait_status(lambda s: s.encrypted is False, what="the backup decrypted in place")
        assert not any(age.is_sealed(p.read_bytes()) for p in sessions.rglob("*.json"))
    finally:
        assert tray.stop() == 0


def test_replace_everything_needs_the_word_and_rebuilds_the_database_keeping_the_login(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    db = opencode / "opencode.db"
    conn = f.connect(db)
    f.plant_secrets(conn, "ses_000", opencode)
    conn.close()
    configure(tmp_path / "backups")
    tray = Tray(desktop)
    try:
        tray.wait_backed_up()
        f.delete_session(db, "ses_001")
        seen = tray.trace_count()
        tray.choose("Restore…")
        picker = desktop.wait_window("Restore sessions$")
        tray.dialog_ready("Restore sessions", seen)
        seen = tray.trace_count()
        desktop.key(picker, "alt+e")  # Replace everything…
        confirm = desktop.wait_window("Confirm replace everything$")
        tray.dialog_ready("Confirm replace everything", seen)
        desktop.shot("confirm-replace.png")
        seen = tray.trace_count()
        desktop.key(confirm, "Return")  # the word is not typed yet: nothing happens
        desktop.type(confirm, "REPLACE")  # keys arrive in order: once the word is seen, so was that Enter
        tray.wait_event("ok_enabled", seen, lambda e: e["enabled"], what="the typed word")
        assert desktop.windows("Confirm replace everything$") and "ses_001" not in sessions_in(db)
        desktop.key(confirm, "Return")
        done = desktop.wait_window("Restore finished$")
        desktop.key(done, "Return")
        assert {"ses_000", "ses_001", "ses_002"} <= sessions_in(db)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("SELECT count(*) FROM account").fetchone() == (1,)  # still logged in
        finally:
            conn.close()
    finally:
        assert tray.stop() == 0


def test_the_autostart_entry_starts_the_tray_on_this_desktop(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    configure(tmp_path / "backups")
    exe = Path(sys.executable).with_name("opencode-backup")
    if not exe.exists():
        pytest.skip("the package is not installed into this interpreter's environment")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([str(exe), "autostart", "enable"], env=env, check=True, capture_output=True)
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "opencode-session-backup.desktop"
    valid = subprocess.run(["desktop-file-validate", str(entry)], check=False, capture_output=True, text=True)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    exec_line = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))
    tray = Tray(desktop, argv=shlex.split(exec_line.removeprefix("Exec=")), backend=None)  # pystray's choice
    try:
        tray.wait_docked()
        tray.wait_status(lambda s: s.syncs >= 1, what="a backup started by the login entry")
    finally:
        assert tray.stop() == 0


def test_a_tray_backend_without_a_menu_is_refused_in_one_line(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    configure(tmp_path / "backups")
    env = {**Tray.environment(desktop), "PYSTRAY_BACKEND": "xorg"}  # what pystray falls back to without gi
    r = subprocess.run(
        [sys.executable, "-m", "app", "run"], check=False, env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "has no menu" in r.stderr and "[tray]" in r.stderr and "run --headless" in r.stderr
    assert not (tmp_path / "backups" / "laptop").exists()  # nothing ran behind an unusable icon


@pytest.mark.parametrize(
    ("configured", "makelevel", "hint"),
    [
        (True, None, "python3 -m app run --headless"),  # python -m app, the interpreter's own name
        (False, "1", 'make run ARGS="run --headless --backup-path DIR"'),  # make run in a checkout
    ],
)
def test_run_without_a_display_says_so_in_words_and_how_to_run_headless(
    opencode: Path, tmp_path: Path, configured: bool, makelevel: str | None, hint: str
) -> None:
    if configured:
        configure(tmp_path / "backups")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MAKELEVEL")}
    env.update({"PYTHONPATH": str(ROOT)}, **({"MAKELEVEL": makelevel} if makelevel else {}))
    python = Path(sys.executable).with_name("python3")
    r = subprocess.run(
        [str(python), "-m", "app", "run"], check=False, env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("opencode-backup: no desktop to show the tray icon on"), r.stderr
    assert r.stderr.rstrip().endswith(hint), r.stderr
    assert "Error" not in r.stderr  # no exception class names (DisplayNameError)


def test_a_failing_tray_backend_ends_the_process_at_once_with_one_line(
    desktop: Desktop, opencode: Path, tmp_path: Path
) -> None:
    """pystray's gtk backend without a reachable D-Bus session raises while it starts: the process must
    not hang (pystray's setup thread waits forever), and SIGTERM is not needed to end it."""
    configure(tmp_path / "backups")
    env = Tray.environment(desktop)
    env.update(PYSTRAY_BACKEND="gtk", DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "run"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"still running 20 s after the tray backend failed: {err[-2000:]}") from None
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("opencode-backup: the tray icon failed: ") and "run --headless" in err, err
    log = (paths.app_log_dir() / "opencode-backup.log").read_text()
    assert "Traceback" in log  # the details are in the log file, for Open log and bug reports
