"""What the agent tools do to a real backup and a real opencode database (built without opencode): what
the model reads back, what changes on disk, and the one line it gets when something is wrong."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app import paths
from app.backup import manifest as mf
from app.backup.progress import Step
from app.backup.restore import SAFETY_DIR
from app.backup.search_index import Hit
from app.mcp import wording
from app.mcp.calls import ToolResult
from app.mcp.tools import Tools
from app.service.status import ServiceState, read_status
from tests import dbfactory as f

# A tool call imports the engine, and with it watchdog, whose inotify thread starts at import. Import it
# here, once, so the thread-leak check does not blame the first test that calls a tool.
importlib.import_module("app.service.watcher")

ROOT = Path(__file__).resolve().parent.parent
MACHINE = {"machineName": "m1"}


class Ctx:
    """A CallContext that records the progress messages."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self.messages: list[str] = []

    @property
    def cancel(self) -> threading.Event:
        return self._cancel

    def progress(self, message: str) -> None:
        self.messages.append(message)


def call(name: str, arguments: dict[str, Any] | None = None, **flags: object) -> ToolResult:
    return Tools({**MACHINE, **flags}).call(name, arguments or {}, Ctx())


def ok(result: ToolResult) -> str:
    assert not result.is_error, result.text
    return result.text


def one_line_error(result: ToolResult) -> str:
    assert result.is_error and "\n" not in result.text, result
    return result.text


@pytest.fixture
def world(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    db = isolated_home / ".local/share/opencode/opencode.db"
    conn = f.create_db(db)
    for sid in ("ses_a", "ses_b", "ses_c"):
        f.add_session(conn, sid, title=f"about {sid}")
    conn.close()
    backup = tmp_path / "backup"
    backup.mkdir()
    monkeypatch.setenv("OPENCODE_BACKUP_PATH", str(backup))
    return {"db": db, "backup": backup, "machine": backup / "m1", "data": db.parent}


def db_state(db: Path) -> tuple[bytes, bytes]:
    wal = Path(f"{db}-wal")
    return db.read_bytes(), wal.read_bytes() if wal.exists() else b""


def sessions_in(db: Path) -> set[str]:
    conn = f.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM session")}
    finally:
        conn.close()


STEP_WORDS = tuple(step.value for step in Step)


def test_a_sync_and_a_restore_tell_opencode_how_far_they_have_got(world: dict[str, Path]) -> None:
    ctx = Ctx()
    ok(Tools(MACHINE).call("sync", {}, ctx))
    assert ctx.messages[0] == "backing up"
    assert any(re.fullmatch(r"backing up sessions: 3 of 3, \d+\.\d KiB", m) for m in ctx.messages)  # the last
    f.delete_session(world["db"], "ses_a")
    ctx = Ctx()
    ok(Tools(MACHINE).call("restore", {"confirm": True}, ctx))
    assert any(re.fullmatch(r"restoring sessions: 1 of 1, \d+\.\d KiB", m) for m in ctx.messages)


def test_without_a_backup_folder_every_tool_says_how_to_choose_one(isolated_home: Path) -> None:
    for name, args in (("status", {}), ("sync", {}), ("restore", {"confirm": True})):
        assert "No backup folder is set" in one_line_error(call(name, args))


def test_an_unreachable_backup_folder_is_one_error_line(world: dict[str, Path], tmp_path: Path) -> None:
    gone = str(tmp_path / "unmounted-drive" / "backup")
    assert "not reachable" in one_line_error(call("status", backupPath=gone))
    assert "not reachable" in one_line_error(call("restore", backupPath=gone))
    assert "does not exist" in one_line_error(call("sync", backupPath=gone))


def test_a_damaged_backup_is_one_error_line_and_nothing_is_restored(world: dict[str, Path]) -> None:
    ok(call("sync"))
    (world["machine"] / "manifest.json").write_text('{"format": "opencode-session-backup-manifest/1", ')
    f.delete_session(world["db"], "ses_a")
    before = db_state(world["db"])
    assert "damaged" in one_line_error(call("status"))
    assert "damaged" in one_line_error(call("restore", {"confirm": True}))
    assert db_state(world["db"]) == before


def test_restore_offers_deleted_sessions_even_after_their_deletion_was_backed_up(
    world: dict[str, Path],
) -> None:
    db = world["db"]
    ok(call("sync"))
    f.delete_session(db, "ses_b")
    ok(call("sync"))  # the deletion reached the backup: ses_b's last copy is in versions/ now
    assert not list((world["machine"] / "sessions").rglob("ses_b.json"))
    f.delete_session(db, "ses_c")  # deleted a moment ago, not backed up since
    before = db_state(db)
    plan = ok(call("restore"))
    assert "add ses_b 'about ses_b'" in plan and "add ses_c 'about ses_c'" in plan
    assert "2 session(s) would be restored" in plan and "confirm: true" in plan
    assert "opencode-backup restore --all --replace" in plan  # the full replace is elsewhere
    assert db_state(db) == before  # byte for byte: a plan changes nothing
    assert not (paths.app_data_dir() / SAFETY_DIR).exists()
    done = ok(call("restore", {"confirm": True}))
    assert "Restored 2 session(s)" in done and "safety copy of opencode's database was saved" in done
    assert sessions_in(db) == {"ses_a", "ses_b", "ses_c"}
    assert list((paths.app_data_dir() / SAFETY_DIR).glob("opencode-before-restore-*.db"))
    assert "Nothing to restore: opencode has every one of the 3" in ok(call("restore", {"confirm": True}))


def test_a_named_session_is_restored_over_its_newer_state(world: dict[str, Path]) -> None:
    db = world["db"]
    ok(call("sync"))
    conn = f.connect(db)
    conn.execute("DELETE FROM message WHERE session_id = 'ses_a'")  # the mistake to undo
    conn.close()
    plan = ok(call("restore", {"sessions": ["ses_a"]}))
    assert "replace ses_a" in plan
    assert "Restored 1 session(s)" in ok(call("restore", {"sessions": ["ses_a"], "confirm": True}))
    conn = f.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM message WHERE session_id = 'ses_a'").fetchone() == (2,)
    finally:
        conn.close()
    unknown = one_line_error(call("restore", {"sessions": ["ses_zz"]}))
    assert "no backed-up session matches 'ses_zz'" in unknown


def test_arguments_outside_the_schema_are_an_error_the_model_can_read(world: dict[str, Path]) -> None:
    before = db_state(world["db"])
    assert "unknown argument 'replace_all'" in one_line_error(call("restore", {"replace_all": True}))
    assert "confirm must be true or false" in one_line_error(call("restore", {"confirm": "yes"}))
    assert "sessions must be a list" in one_line_error(call("restore", {"sessions": "ses_a"}))
    assert db_state(world["db"]) == before


def test_status_counts_the_changes_a_backup_would_take_when_no_service_runs(world: dict[str, Path]) -> None:
    first = ok(call("status"))
    assert "Sessions backed up: 0" in first and "Last backup: none yet" in first
    assert "Pending changes: 3 session(s)" in first and "no backup service is running" in first
    ok(call("sync"))
    conn = f.connect(world["db"])
    f.add_session(conn, "ses_new")
    conn.close()
    f.delete_session(world["db"], "ses_a")
    after = ok(call("status"))
    assert "Sessions backed up: 3" in after and "Last result: ok" in after
    assert "Pending changes: 2 session(s) changed since the last backup" in after


def test_sync_refuses_to_mirror_a_mass_deletion_and_the_agent_cannot_override_it(
    world: dict[str, Path],
) -> None:
    conn = f.connect(world["db"])
    for n in range(20):
        f.add_session(conn, f"ses_more{n:02d}")
    conn.close()
    ok(call("sync"))
    conn = f.connect(world["db"])
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("DELETE FROM session WHERE id != 'ses_a'")
    conn.close()
    error = one_line_error(call("sync", {"force": True}))
    assert error.startswith("the backup failed: opencode has lost 22 of the 23 sessions")
    assert len(mf.load(world["machine"], "m1").sessions) == 23


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_status_and_sync_go_through_the_running_service(world: dict[str, Path]) -> None:
    args = ["--backup-path", str(world["backup"]), "--source", str(world["data"]), "--machine-name", "m1"]
    service = subprocess.Popen(
        [sys.executable, "-m", "app", "run", "--headless", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            live = read_status(paths.app_state_dir())
            if live is not None and live.syncs >= 1 and live.state is ServiceState.IDLE:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no start-up sync: {read_status(paths.app_state_dir())}")
        status = ok(call("status"))
        assert f"Syncs this session: 1 (backup service running, pid {service.pid}, idle)" in status
        assert "Pending changes: 0" in status
        ctx = Ctx()
        synced = Tools(MACHINE).call("sync", {}, ctx)
        assert "Backup done by the running backup service (ok)" in ok(synced)
        assert ctx.messages[0] == "the backup service is backing up"
        assert all(m.startswith(STEP_WORDS) for m in ctx.messages[1:])  # the service's own progress
        assert "Syncs this session: 2" in ok(call("status"))
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)


def test_a_search_answer_shows_titles_and_machine_names_from_the_backup_folder_inert_on_one_line() -> None:
    """Both come from the backup folder, which anyone may write: a line break cannot add a line to what the
    model reads, and a title is cut as everywhere else."""
    hit = Hit("ses_a", "t" * 500 + "\u202e", "m1\n- ses_fake 'forged'", "/x", None, True, "the **word**")
    lines = wording.search_text([hit], "m1", []).split("\n")
    assert len(lines) == 4 and lines[1].startswith("- ses_a 'ttt") and "…'" in lines[1], lines
    assert "m1\\n- ses_fake 'forged' (another computer)" in lines[1] and len(lines[1]) < 400
