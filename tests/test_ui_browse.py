"""Browse backups…: the window on the test desktop (search as you type, select a session and a version,
save it as Markdown, answer the version to restore, all by keyboard), and the tray's flow after it (the
same confirmation as Restore…, a scripted host in place of the windows)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app import config, paths
from app.backup import search as sr
from app.backup.history import history
from app.backup.sync import SyncOptions, run_sync
from app.ui import flows
from app.ui.dialog.browse_data import REFRESH_EVERY, Backup
from app.ui.dialog.protocol import TITLE_PREFIX, TRACE_ENV, Browsed, BrowseRequest
from app.ui.flows import restore_on
from app.wiring import context_for
from tests import dbfactory as f
from tests.backups import count_reads
from tests.desktop import Desktop, trace_events, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def backed_up(tmp_path: Path) -> config.Settings:
    """ses_a backed up, extended by a message about zebras, backed up again; ses_b once."""
    db = paths.opencode_data_dir() / "opencode.db"
    conn = f.create_db(db)
    f.add_session(conn, "ses_a", title="Fix the login bug", payload="we tried the token refresh")
    f.add_session(conn, "ses_b", title="Write docs", payload="sprockets and widgets")
    backup = tmp_path / "backups"
    backup.mkdir()
    settings = config.load({"backupPath": str(backup), "machineName": "m1"}, check_destination=False)
    assert run_sync(context_for(settings)).ok
    time.sleep(0.01)  # the next sync's stamp is another millisecond
    f.add_message(conn, "ses_a", "and then a zebra walked in")
    conn.close()
    assert run_sync(context_for(settings), SyncOptions()).ok
    return settings


@dataclass
class Host:
    """A dialog host that answers Browse backups… with ``chosen`` and records the confirmation."""

    chosen: Browsed | None
    ok: bool = True

    def __post_init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def browse(
        self, backup_path: Path, machine: str, source: Path, opencode_db: Path | None
    ) -> Browsed | None:
        self.asked.append(("browse", f"{backup_path} {machine}"))
        return self.chosen

    def confirm(self, title: str, text: str, ok: str, strong: bool = False) -> bool:
        self.asked.append((title, text))
        return self.ok

    def pick_sessions(self, rows: Sequence[Any], allow_replace: bool = True) -> None:
        raise AssertionError("not asked here")

    def choose_folder(self, initial: Path | None, title: str, suggestions: Sequence[Path] = ()) -> None:
        raise AssertionError("not asked here")


def messages_of(sid: str) -> int:
    conn = f.connect(paths.opencode_data_dir() / "opencode.db")
    try:
        return int(conn.execute("SELECT count(*) FROM message WHERE session_id = ?", (sid,)).fetchone()[0])
    finally:
        conn.close()


def test_the_version_chosen_is_restored_after_the_same_confirmation(backed_up: config.Settings) -> None:
    assert backed_up.machine_dir is not None
    older = history(backed_up.machine_dir, "ses_a", paths.app_data_dir()).copies[1]
    db = paths.opencode_data_dir() / "opencode.db"
    cancelled = Host(Browsed(session_id="ses_a", machine="m1", copy=older.rel), ok=False)
    assert flows.restore_version(backed_up, cancelled, db, restore_on(None)) is flows.CANCELLED
    assert messages_of("ses_a") == 3
    host = Host(Browsed(session_id="ses_a", machine="m1", copy=older.rel))
    outcome = flows.restore_version(backed_up, host, db, restore_on(None))
    assert outcome.done and not outcome.error and outcome.title == "Restore finished", outcome
    [(_b, _where), (title, text)] = host.asked
    assert title == "Confirm restore" and text.startswith("Version 2 of 2, backed up ")
    assert "Replace 1 session in opencode with the backed-up version (“Fix the login bug”)" in text
    assert messages_of("ses_a") == 2
    gone = Host(Browsed(session_id="ses_a", machine="m1", copy="versions/2020-01-01T000000.000Z/x.json"))
    outcome = flows.restore_version(backed_up, gone, db, restore_on(None))
    assert outcome.error and "no longer in the backup" in outcome.text


def browsing(settings: config.Settings, clock: Callable[[], float] = time.monotonic) -> Backup:
    """What a Browse window over ``settings``' backup folder reads through."""
    request = BrowseRequest(backup_path=settings.backup_path, machine="m1", source=settings.source)
    return Backup(request, clock)


def test_a_sessions_versions_then_its_snapshots_read_each_file_copy_once(
    backed_up: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = browsing(backed_up)
    [hit] = backup.search("zebra", lambda _p: None).hits
    read = count_reads(monkeypatch)
    files = backup.versions(hit, complete=False)  # what the window asks for a session selected
    whole = backup.versions(hit, complete=True)
    assert len(read) == len(files.history.copies) == 2 and len(set(read)) == 2
    assert whole.complete and whole.history == history(
        backed_up.machine_dir or Path(), "ses_a", backup.work_dir
    )
    read.clear()
    backup.versions(hit, complete=True)  # without the files first (not what the window does): read all
    assert len(read) == 2


def test_search_as_you_type_brings_the_index_up_to_date_once_every_few_seconds(
    backed_up: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    backup = browsing(backed_up, lambda: now[0])
    refreshed: list[Path] = []
    refresh = sr.refresh_index

    def counted(index: Any, *args: Any, **kwargs: Any) -> Any:
        refreshed.append(index.backup_path)
        return refresh(index, *args, **kwargs)

    monkeypatch.setattr(sr, "refresh_index", counted)
    assert [h.session_id for h in backup.search("", lambda _p: None).hits] == ["ses_a", "ses_b"]
    now[0] += 1
    assert [h.session_id for h in backup.search("zeb", lambda _p: None).hits] == ["ses_a"]
    assert backup.search("!", lambda _p: None).hits == []  # no word: the index not refreshed either
    now[0] += REFRESH_EVERY - 1.5
    backup.search("zebra", lambda _p: None)
    assert refreshed == [backed_up.backup_path]  # the window's first search alone
    now[0] += 0.5
    assert [h.session_id for h in backup.search("sprockets", lambda _p: None).hits] == ["ses_b"]
    assert len(refreshed) == 2  # REFRESH_EVERY after the first
    assert len(backup.search("widgets", lambda _p: None).hits) == 1 and len(refreshed) == 2
    assert browsing(backed_up, lambda: now[0]).search("zebra", lambda _p: None).hits
    assert len(refreshed) == 3  # another window's first search


@pytest.fixture
def browser(
    desktop: Desktop, backed_up: config.Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    trace = tmp_path / "browse.trace.jsonl"
    request = {"backup_path": str(backed_up.backup_path), "machine": "m1", "source": str(backed_up.source)}
    env = dict(desktop.env, **{TRACE_ENV: str(trace)})
    (tmp_path / "browse.request.json").write_text(json.dumps(request))
    with open(tmp_path / "browse.request.json", "rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.ui.dialog", "browse"],
            env=env,
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    try:
        yield proc, trace
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def event(trace: Path, name: str, test: Any = lambda _e: True, after: int = 0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((e for e in trace_events(trace)[after:] if e["event"] == name and test(e)), None)

    return wait_for(found, 20, what=f"a {name} event")


def test_search_select_a_version_save_it_as_markdown_and_answer_it_by_keyboard_alone(
    desktop: Desktop, browser: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, trace = browser
    ready = event(trace, "ready")
    assert ready["title"] == TITLE_PREFIX + "Browse backups" and ready["focus"] == "search"
    assert set(ready["buttons"]) == {"Save as Markdown…", "Restore this version", "Close"}
    window = desktop.wait_window("Browse backups$")
    assert event(trace, "hits", lambda e: e["query"] == "")["ids"] == ["ses_a", "ses_b"]  # newest first
    desktop.type(window, "zeb")  # as you type: the last word matches the start of a word
    assert event(trace, "hits", lambda e: e["query"] == "zeb")["ids"] == ["ses_a"]
    desktop.key(window, "Down")  # into the sessions: the first is selected, its versions listed
    assert event(trace, "versions", lambda e: e["complete"])["numbers"] == [1, 2]
    shown = event(trace, "shown")
    assert shown["session"] == "ses_a" and shown["copy"].startswith("sessions/")
    desktop.shot("browse.png", window)

    seen = len(trace_events(trace))
    desktop.key(window, "alt+s")  # Save as Markdown…: Tk's file dialog, its name entry focused
    event(trace, "ready", after=seen)
    dialog = desktop.wait_window("Save as Markdown$")
    target = tmp_path / "saved" / "login bug.md"
    target.parent.mkdir()
    desktop.type(dialog, str(target))
    desktop.key(dialog, "Return")
    assert event(trace, "saved")["path"] == str(target)
    saved = target.read_text()
    assert saved.startswith("# Fix the login bug\n") and "and then a zebra walked in" in saved

    seen = len(trace_events(trace))
    desktop.key(window, "Tab", "Down")  # to the versions, and the older one
    older = event(trace, "shown", lambda e: e["copy"].startswith("versions/"), after=seen)
    desktop.key(window, "alt+r")  # Restore this version: the tray asks for confirmation next
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"session_id": "ses_a", "machine": "m1", "copy": older["copy"]}
