"""``opencode-backup repair``: a damaged index no longer stops backups for good. The sync's error, the
tray's notification, ``verify`` and ``status`` name it; it plans first, asks (or takes ``--yes``), and
rebuilds the index from the files present, each checked as a restore checks it; what fails is moved into
``damaged/<stamp>/``, never deleted. (Each write boundary of it is crashed in tests/test_crash_points.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import paths
from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup import repair
from app.backup.result import Outcome
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.errors import BackupError, FailureKind
from app.service.retry import FailingSince
from app.service.status import ServiceState, Status
from app.ui import presenter
from app.ui.notify import episode_note
from tests import dbfactory as f
from tests.backups import Env, run_cli

MACHINE = "box"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = Env(tmp_path, MACHINE)
    f.seed(env.data, sessions=4, legacy=3, messages=2, parts=1).close()
    assert run_sync(ctx_for(env), SyncOptions(snapshot=True)).ok
    return env


def ctx_for(env: Env) -> SyncContext:
    return env.context(paths.app_state_dir())


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env.dest, MACHINE, env.data, *args)


def listing(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``, never through a link: file -> bytes, link -> its target."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = os.readlink(path)
            else:  # a pipe is never opened: reading one would wait for a writer
                out[rel] = "a pipe" if path.is_fifo() else path.read_bytes()
    return out


def damage_the_manifest(machine: Path) -> None:
    path = machine / mf.MANIFEST
    path.write_bytes(path.read_bytes()[:100])  # torn: what a cloud client's half-synced copy looks like


def test_a_damaged_manifest_is_repaired_and_backups_go_on(env: Env) -> None:
    machine = env.machine
    damage_the_manifest(machine)
    failed = run_sync(ctx_for(env))
    assert failed.outcome is Outcome.FAILED and failed.kind is FailureKind.DAMAGED
    assert "opencode-backup repair" in (failed.error or "")  # the sync's error names it
    note = episode_note(FailingSince(datetime.now(UTC), FailureKind.DAMAGED, failed.error or "", 1))
    assert "index is damaged" in note.title and "opencode-backup repair" in note.body  # so does the tray
    tip = presenter.tooltip(
        Status(ServiceState.FAILED, last_kind=failed.kind), True, False, datetime.now(UTC)
    )
    assert tip == "Backup index damaged — run opencode-backup repair"
    checked = cli(env, "verify")
    assert checked.returncode == 1 and "opencode-backup repair" in checked.stdout  # and verify
    assert "opencode-backup repair" in cli(env, "status").stdout  # and status
    done = cli(env, "repair", "--yes")
    assert done.returncode == 0, done.stderr
    assert "repaired" in done.stdout and "4 session(s), 1 snapshot(s), 3 legacy file(s)" in done.stdout
    report = verify(machine, MACHINE, env.tmp / "v")
    assert report.ok and report.checked == 8, report.problems
    kept = list((machine / "damaged").glob(f"*/{mf.MANIFEST}"))
    assert len(kept) == 1 and len(kept[0].read_bytes()) == 100  # the index it replaced, kept
    conn = f.connect(env.data / "opencode.db")
    f.add_message(conn, "ses_2", "after the repair")
    conn.close()
    assert run_sync(ctx_for(env)).ok
    man = mf.load(machine, MACHINE)
    assert set(man.sessions) == {f"ses_{i}" for i in range(4)} and man.storage_files == 3
    assert "repair" not in cli(env, "verify").stdout  # healthy: nothing to suggest


def test_files_that_fail_their_checks_are_set_aside_never_deleted(env: Env) -> None:
    machine = env.machine
    man = mf.load(machine, MACHINE)
    sessions = {sid: machine / e.path for sid, e in man.sessions.items()}
    sessions["ses_0"].write_text('{"format": "opencode-session-backup/1", "session_id": "ses_0", "ro')
    other = json.loads(sessions["ses_2"].read_bytes())
    sessions["ses_1"].write_text(json.dumps(other))  # holds another session: hostile or mixed up
    moved = machine / "sessions" / "elsewhere" / "ses_3.json"
    moved.parent.mkdir()
    os.replace(sessions["ses_3"], moved)  # a valid session file where its project's file does not go
    (machine / "sessions" / "evil").symlink_to("/etc")
    os.mkfifo(machine / "storage" / "message" / "fifo")
    snapshot = next(machine.glob("snapshots/*.zst"))
    snapshot.write_bytes(snapshot.read_bytes()[:64])
    damage_the_manifest(machine)
    before = listing(machine)
    asked = cli(env, "repair")  # no terminal, no --yes: nothing
    assert asked.returncode == 2 and len(asked.stderr.strip().splitlines()) == 1 and "--yes" in asked.stderr
    dry = cli(env, "repair", "--dry-run", "--json")
    assert dry.returncode == 0 and listing(machine) == before
    plan = json.loads(dry.stdout)["plan"]
    assert {a["path"] for a in plan["set_aside"]} == {
        "sessions/proj1/ses_0.json", "sessions/proj1/ses_1.json", "sessions/elsewhere/ses_3.json",
        "sessions/evil", "storage/message/fifo", snapshot.relative_to(machine).as_posix(),
    }  # fmt: skip
    assert cli(env, "repair", "--yes").returncode == 0
    after = listing(machine)
    (stamp,) = [
        f"damaged/{d.name}" for d in (machine / "damaged").iterdir()
    ]  # this run's (not the dry run's)
    for rel, content in before.items():  # nothing is lost: every file is where it was, or set aside
        if rel.startswith(("sessions/", "snapshots/", "storage/")):
            assert after.get(rel, after.get(f"{stamp}/{rel}")) == content, rel
    assert after[f"{stamp}/sessions/evil"] == "/etc"
    assert after[f"{stamp}/storage/message/fifo"] == "a pipe"
    report = verify(machine, MACHINE, env.tmp / "v")
    assert report.ok, report.problems
    assert set(mf.load(machine, MACHINE).sessions) == {"ses_2"}
    restored = cli(env, "restore", "--missing", "--dry-run")  # a restore reads this folder again
    assert restored.returncode == 0, restored.stderr
    assert run_sync(ctx_for(env), SyncOptions(snapshot=True)).ok  # the next sync backs up the rest
    assert set(mf.load(machine, MACHINE).sessions) == {f"ses_{i}" for i in range(4)}


def test_a_healthy_backup_has_nothing_to_repair_and_is_left_as_it_is(env: Env) -> None:
    before = listing(env.machine)
    done = cli(env, "repair", "--yes")
    assert done.returncode == 0 and "nothing to repair" in done.stdout
    assert listing(env.machine) == before


def test_an_index_that_lists_a_missing_file_is_repaired_and_verify_says_so(env: Env) -> None:
    machine = env.machine
    gone = machine / mf.load(machine, MACHINE).sessions["ses_1"].path
    gone.unlink()
    report = verify(machine, MACHINE, env.tmp / "v")
    assert not report.ok and report.repair_helps
    plan = repair.plan(machine, MACHINE, env.tmp / "w", datetime.now(UTC))
    assert plan.needed and any("missing or set aside" in c for c in plan.changes), plan.changes
    repair.apply(plan, MACHINE, paths.app_state_dir(), datetime.now(UTC))
    assert verify(machine, MACHINE, env.tmp / "v").ok
    assert run_sync(ctx_for(env)).ok and gone.exists()  # opencode still has it: backed up again


def test_a_file_that_changes_between_the_plan_and_the_repair_stops_it_before_anything_changes(
    env: Env,
) -> None:
    machine = env.machine
    damage_the_manifest(machine)
    plan = repair.plan(machine, MACHINE, env.tmp / "w", datetime.now(UTC))
    legacy = machine / "storage" / "message" / "ses_0" / "msg_1.json"
    legacy.write_text('{"id": 1, "rewritten": "by the cloud client"}')
    before = listing(machine)
    with pytest.raises(BackupError, match="changed since the repair was planned"):
        repair.apply(plan, MACHINE, paths.app_state_dir(), datetime.now(UTC))
    assert listing(machine) == before


def test_a_missing_manifest_with_files_present_is_rebuilt(env: Env) -> None:
    machine = env.machine
    (machine / mf.MANIFEST).unlink()
    report = verify(machine, MACHINE, env.tmp / "v")
    assert report.repair_helps
    done = cli(env, "repair", "--yes")
    assert done.returncode == 0 and "4 session(s)" in done.stdout, done.stderr
    assert verify(machine, MACHINE, env.tmp / "v").ok


def test_a_snapshot_too_big_for_this_computers_free_space_stops_the_repair_and_is_not_set_aside(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sound snapshot must not be set aside because this disk is full: the repair stops, asks for room."""
    damage_the_manifest(env.machine)
    room = shutil.disk_usage(env.tmp)._replace(free=br.FREE_MARGIN + 1000)  # less than one snapshot
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: room)
    with pytest.raises(BackupError, match="free some disk space"):
        repair.plan(env.machine, MACHINE, env.tmp / "w", datetime.now(UTC))
