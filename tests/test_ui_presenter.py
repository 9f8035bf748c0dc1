"""What the tray says, without a display: icon choice, tooltip words, the no-flicker rule, notifications."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from app import assets, config, paths
from app.backup.progress import Progress, Step
from app.backup.result import Outcome
from app.errors import ConfigError, FailureKind
from app.service.retry import FailingSince, Persisting, Recovered
from app.service.status import ServiceState, Status
from app.ui import presenter as p
from app.ui.icons import State, png_path
from app.ui.notify import (
    BALLOON_SECONDS,
    DesktopNotifier,
    Note,
    balloon_send,
    episode_note,
    ico_file,
    locked_file,
    notifier_for,
)

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def icon_png(state: State) -> Path:
    return png_path(assets.icon_dir(), state, 64)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


S = ServiceState
UP = Status(
    S.IDLE, last_attempt=at(-120), last_backup=at(-120), last_outcome=Outcome.OK, sessions=1812, syncs=3
)


def test_the_tooltip_says_when_the_last_backup_was_and_how_many_sessions_it_holds() -> None:
    assert p.tooltip(UP, True, False, NOW) == "Backed up 2 min ago · 1,812 sessions"
    assert p.icon_state(UP, True, False) is State.UP_TO_DATE


def test_a_busy_google_drive_reads_as_retrying_with_the_time_to_the_next_attempt() -> None:
    st = Status(
        S.RETRYING,
        last_outcome=Outcome.FAILED,
        last_kind=FailureKind.LOCKED,
        next_retry=at(40),
        failing_since=at(-5),
    )
    assert p.tooltip(st, True, False, NOW) == "Google Drive is busy — retrying in 40 s"
    assert p.icon_state(st, True, False) is State.RETRYING


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (
            Status(S.FAILED, last_outcome=Outcome.FAILED, last_kind=FailureKind.GUARD, failing_since=at(-1)),
            State.FAILED,
        ),
        (Status(S.PAUSED, paused=True, last_outcome=Outcome.OK, last_backup=at(-5)), State.PAUSED),
        (Status(S.WAITING, pending=2, last_outcome=Outcome.OK, last_backup=at(-5)), State.CHANGES_PENDING),
        (Status(S.STARTING), State.CHANGES_PENDING),
        (Status(S.NO_DATA_YET, last_outcome=Outcome.NOTHING_YET, last_attempt=at(-5)), State.CHANGES_PENDING),
    ],
)
def test_each_service_state_has_its_icon(status: Status, state: State) -> None:
    assert p.icon_state(status, True, True) is state


def test_without_a_backup_folder_the_icon_and_tooltip_say_not_configured() -> None:
    assert p.icon_state(UP, False, True) is State.NOT_CONFIGURED
    assert "choose a backup folder" in p.tooltip(None, False, False, NOW)
    why = "backupPath /x is a file, not a folder"
    assert p.icon_state(None, False, False, why) is State.FAILED
    assert p.tooltip(None, False, False, NOW, why) == f"Cannot back up: {why}"


def test_a_sync_shows_as_syncing_only_after_it_has_run_a_second() -> None:
    delay = p.SyncingDelay(after=1.0)
    syncing = Status(S.SYNCING, last_outcome=Outcome.OK, last_backup=at(-60), sessions=3)
    delay.update(syncing, 100.0)
    assert not delay.show(100.9)
    assert p.icon_state(syncing, True, delay.show(100.9)) is State.UP_TO_DATE  # no flicker
    assert delay.due_at() == 101.0
    assert delay.show(101.0)
    assert p.icon_state(syncing, True, delay.show(101.0)) is State.SYNCING
    delay.update(UP, 101.5)
    assert not delay.show(102.0) and delay.due_at() is None


def test_the_status_window_rows_name_the_folder_and_the_last_error() -> None:
    missing = FailureKind.DEST_MISSING
    st = Status(S.RETRYING, last_outcome=Outcome.FAILED, last_kind=missing, last_error="gone", pid=7,
                next_retry=at(10), failing_since=at(-300))  # fmt: skip
    rows = {r.label: r.value for r in p.status_rows(st, NOW, "/mnt/drive/backups/laptop")}
    assert rows["Backup folder"] == "/mnt/drive/backups/laptop"
    assert (
        rows["Last error"] == "gone"
        and rows["Next retry"] == "in 10 s"
        and rows["Failing since"] == "5 min ago"
    )
    assert {r.label: r.value for r in p.status_rows(None, NOW, None)}["Service"] == "not running"


def test_a_drive_lock_names_the_file_and_its_follow_up_says_what_to_do() -> None:
    msg = "cannot replace '/g/My Drive/opencode-sessions/laptop/sessions/p/ses_1.json': [Errno 16] busy"
    held = "sessions/p/ses_1.json"
    assert locked_file(held) == "ses_1.json" and locked_file(None) == "a file in the backup folder"
    first = episode_note(FailingSince(NOW, FailureKind.LOCKED, msg, 2, held))
    assert first == Note(
        "Google Drive is holding a file", "Google Drive is holding ses_1.json; retrying.", State.RETRYING
    )
    later = episode_note(Persisting(NOW, FailureKind.LOCKED, msg, 9, held))
    assert "use a local folder" in later.body.lower() and "pause google drive" in later.body.lower()
    assert episode_note(Recovered(NOW, NOW, 3)).title == "Backups work again"
    guard = episode_note(FailingSince(NOW, FailureKind.GUARD, "x", 1))
    assert guard.title.startswith("Backup held back") and guard.state is State.FAILED


def test_notifications_fall_back_to_the_next_backend_and_can_be_turned_off() -> None:
    got: list[tuple[str, str, str]] = []
    seen = threading.Event()

    def broken(_t: str, _b: str, _i: str) -> None:
        raise NotImplementedError("no backend")

    def works(t: str, b: str, icon: str) -> None:
        got.append((t, b, icon))
        seen.set()

    n = DesktopNotifier([broken, works], lambda state: f"/icons/{state.value}.png")
    n.start()
    n.notify(Note("A", "b"))
    assert seen.wait(5)
    n.stop()
    assert got == [("A", "b", "/icons/up-to-date.png")] and n.sent == [Note("A", "b")]
    off = DesktopNotifier([works], lambda state: "", enabled=False)
    off.start()
    off.notify(Note("C", "d"))
    off.stop()
    assert len(got) == 1 and off.sent == []


def plyer_balloon_on_windows(shown: list[dict[str, object]], *, fails: str = "") -> Callable[..., None]:
    """plyer's ``balloon_tip`` as it behaves on Windows (plyer/platforms/win/libs/balloontip.py): it loads
    ``app_icon`` with ``LoadImageW(None, app_icon, IMAGE_ICON, 0, 0, LR_LOADFROMFILE | LR_DEFAULTSIZE)``,
    which reads an icon file only (Microsoft Learn, "LoadImageW": IMAGE_ICON loads an icon, LR_LOADFROMFILE
    from a stand-alone file), and raises ``Exception('Could not load icon ...')`` when that gives NULL;
    ``fails``: it raises that instead (Shell_NotifyIconW refused)."""

    def show(**kwargs: object) -> None:
        if fails:
            raise Exception(fails)
        icon = Path(str(kwargs["app_icon"]))
        if icon.read_bytes()[:4] != b"\x00\x00\x01\x00":  # an ICO file's header: reserved 0, type 1
            raise Exception(f"Could not load icon {icon}")
        shown.append(kwargs)

    return show


def deliver(notifier: DesktopNotifier, note: Note) -> None:
    """Notify and wait until the notifier's thread has tried every backend."""
    notifier.start()
    notifier.notify(note)
    notifier.stop()


LOCK_NOTE = Note(
    "Google Drive is holding a file", "Google Drive is holding ses_1.json; retrying.", State.RETRYING
)


def test_windows_shows_its_balloon_with_the_states_ico() -> None:
    """Windows users lost every notification: plyer was handed a PNG, which LoadImageW cannot read as an
    icon, and it failed unseen on plyer's own thread. The .ico the icons module writes is handed over."""
    shown: list[dict[str, object]] = []
    fallback: list[str] = []
    png = str(icon_png(State.RETRYING))
    notifier = notifier_for(
        "win32",
        fallback=lambda t, b, i: fallback.append(t),
        png_file=lambda state: png,
        balloon=plyer_balloon_on_windows(shown),
    )
    deliver(notifier, LOCK_NOTE)
    assert len(shown) == 1 and fallback == [] and notifier.sent == [LOCK_NOTE]
    assert Path(str(shown[0]["app_icon"])).name == "retrying.ico" and shown[0]["timeout"] == BALLOON_SECONDS
    assert (shown[0]["title"], shown[0]["message"]) == (LOCK_NOTE.title, LOCK_NOTE.body)


@pytest.mark.parametrize("fails", ["the PNG it was given before", "Shell_NotifyIconW failed."])
def test_a_balloon_that_fails_on_its_thread_falls_back_to_pystray(fails: str) -> None:
    """plyer's own notify runs the balloon on a thread it starts (WindowsNotification._notify:
    ``Thread(target=balloon_tip).start()``), where the exception was lost and the notification counted as
    shown. The balloon now runs on the notifier's thread: its failure reaches the notifier, which tries
    pystray's notify next."""
    got: list[tuple[str, str]] = []
    png = str(icon_png(State.RETRYING))
    balloon = plyer_balloon_on_windows([], fails="" if fails.startswith("the PNG") else fails)
    sends = [partial(balloon_send, show=balloon), lambda t, b, i: got.append((t, b))]
    icon = (lambda state: png) if fails.startswith("the PNG") else ico_file
    notifier = DesktopNotifier(sends, icon)
    deliver(notifier, LOCK_NOTE)
    assert got == [(LOCK_NOTE.title, LOCK_NOTE.body)] and notifier.sent == [LOCK_NOTE]


def test_choosing_a_backup_folder_keeps_the_other_settings_and_refuses_a_bad_folder(tmp_path: Path) -> None:
    cfg = paths.default_config_file()
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"machineName": "laptop", "keepSnapshots": 3}')
    chosen = tmp_path / "backups"
    chosen.mkdir()
    settings = config.save_backup_path(chosen)
    assert settings.backup_path == chosen and settings.machine_dir == chosen / "laptop"
    assert json.loads(cfg.read_text()) == {
        "machineName": "laptop",
        "keepSnapshots": 3,
        "backupPath": str(chosen),
    }
    before = cfg.read_bytes()
    inside = paths.opencode_data_dir() / "backups"
    inside.mkdir(parents=True)
    with pytest.raises(ConfigError):
        config.save_backup_path(inside)
    assert cfg.read_bytes() == before


def test_last_backup_is_the_last_successful_one_never_the_last_attempt() -> None:
    """Every sync so far failed: nothing may say a backup happened."""
    failing = Status(
        S.RETRYING, last_attempt=at(-13), last_outcome=Outcome.FAILED, last_kind=FailureKind.FATAL,
        last_error="boom", next_retry=at(20), failing_since=at(-60),
    )  # fmt: skip
    rows = {r.label: r.value for r in p.status_rows(failing, NOW, "/b/laptop")}
    assert rows["Last backup"] == "none yet"
    assert rows["Last attempt"] == "13 s ago: failed" and rows["Last error"] == "boom"
    assert "Backed up" not in p.tooltip(failing, True, False, NOW)
    older = Status(S.RETRYING, last_attempt=at(-13), last_backup=at(-3600), last_outcome=Outcome.FAILED,
                   last_kind=FailureKind.LOCKED, sessions=5)  # fmt: skip
    rows = {r.label: r.value for r in p.status_rows(older, NOW, "/b/laptop")}
    assert rows["Last backup"] == "1 h ago"


def test_waiting_for_opencodes_first_session_is_calm() -> None:
    st = Status(S.NO_DATA_YET, last_attempt=at(-3), last_outcome=Outcome.NOTHING_YET)
    assert p.icon_state(st, True, False) is State.CHANGES_PENDING  # not the warning triangle
    assert p.tooltip(st, True, False, NOW) == p.NO_DATA_YET


def test_data_that_is_gone_is_announced_with_the_folder_it_was_looked_for_in() -> None:
    message = "opencode's data is gone from /home/u/.local/share/opencode (the backup holds sessions ...)"
    note = episode_note(FailingSince(NOW, FailureKind.SOURCE_MISSING, message, 2))
    assert note.title == "opencode's data not found" and "/home/u/.local/share/opencode" in note.body


def test_a_restore_the_service_runs_shows_at_once() -> None:
    st = Status(S.RESTORING, paused=True, last_backup=at(-60), last_outcome=Outcome.OK)
    assert p.icon_state(st, True, False) is State.SYNCING  # even paused, even in its first second
    assert p.tooltip(st, True, False, NOW) == "Restoring sessions into opencode…"


def test_a_long_sync_or_restore_says_how_far_it_has_got_and_how_long_is_left() -> None:
    first = Status(S.SYNCING, progress=Progress(Step.SESSIONS, 640, 1800, 32.0, 310 << 20))
    assert (
        p.tooltip(first, True, True, NOW) == "Backing up… 640 of 1,800 sessions · 310.0 MiB · about 58 s left"
    )
    rows = dict((r.label, r.value) for r in p.status_rows(first, NOW, "/drive/backup"))
    assert rows["State"] == "Backing up…"  # said once, in its own row
    assert rows["Progress"] == "Backing up sessions: 640 of 1,800, 310.0 MiB · about 58 s left"

    snapshot = Status(S.SYNCING, last_backup=at(-60), progress=Progress(Step.SNAPSHOT, 0, None, 3.0))
    assert p.tooltip(snapshot, True, True, NOW) == "Backing up… taking a database snapshot"
    just_begun = Status(S.SYNCING, progress=Progress(Step.COPYING, 2, 900, 0.2))  # no pace yet: no guess
    assert p.tooltip(just_begun, True, True, NOW) == "Backing up… 2 of 900 files"

    restoring = Status(S.RESTORING, progress=Progress(Step.RESTORING, 30, 120, 60.0))
    assert p.tooltip(restoring, True, False, NOW) == (
        "Restoring sessions into opencode… 30 of 120 sessions · about 3 min left"
    )
    idle = dict((r.label, r.value) for r in p.status_rows(UP, NOW, "/drive/backup"))
    assert "Progress" not in idle


def test_the_status_window_says_whether_the_last_backup_was_encrypted() -> None:
    def encryption(status: Status) -> str | None:
        return {r.label: r.value for r in p.status_rows(status, NOW, "/drive/backup")}.get("Encryption")

    assert encryption(Status(S.IDLE, encrypted=True)) == "Encrypted (age)"
    assert encryption(Status(S.IDLE, encrypted=False)) == "off"
    assert encryption(Status(S.STARTING)) is None  # no backup yet: nothing to say
