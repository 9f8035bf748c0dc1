"""The engine end to end on real files and a real SQLite database (native engine and real rsync)."""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from app import fsutil
from app.backup import guard
from app.backup import manifest as mf
from app.backup.result import Outcome
from app.backup.state import load_results
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.errors import FailureKind
from app.fsutil import sha256_file
from app.opencode.snapshot import decompress
from app.transfer import make_engine, robocopy
from app.transfer.runner import RunResult
from tests import dbfactory as f
from tests.backups import Env, make_env
from tests.files import tree

ENGINES = ["native", "rsync"]
# the module itself: the package exports its apply function under the same name
sync_apply = importlib.import_module("app.backup.sync.apply")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def make_ctx(
    env: Env, engine: Any = "native", clock: Callable[[], datetime] | None = None, **kw: Any
) -> SyncContext:
    return env.context(engine=engine, clock=clock or Clock(), **kw)


def session_file(env: Env, sid: str, project: str = "proj1") -> Path:
    return env.dest / "laptop" / "sessions" / project / f"{sid}.json"


def all_bytes_under(root: Path) -> bytes:
    out = b""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out += p.read_bytes()
            if p.name.endswith(".db.zst"):
                tmp = p.with_suffix(".plain")
                decompress(p, tmp)
                out += tmp.read_bytes()
                tmp.unlink()
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_first_sync_exports_every_session_with_its_whole_closure(env: Env, engine: str) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a", messages=3, parts=2, todos=2)
    f.add_session(conn, "ses_b", project="proj2")
    result = run_sync(make_ctx(env, engine))
    assert result.outcome is Outcome.OK, result.error
    assert result.sessions_exported == 2 and result.snapshot is not None
    doc = json.loads(session_file(env, "ses_a").read_text())
    assert doc["format"] == "opencode-session-backup/1" and doc["session_id"] == "ses_a"
    assert doc["opencode_schema"] == f.MIGRATION
    rows = doc["rows"]
    assert [r["id"] for r in rows["project"]] == ["proj1"]
    assert len(rows["message"]) == 3 and len(rows["part"]) == 6 and len(rows["todo"]) == 2
    assert {r["session_id"] for r in rows["part"]} == {"ses_a"}
    assert session_file(env, "ses_b", "proj2").exists()
    man = mf.load(env.dest / "laptop", "laptop")
    assert set(man.sessions) == {"ses_a", "ses_b"}
    assert verify(env.dest / "laptop", "laptop", env.app / "v").ok


@pytest.mark.parametrize("engine", ENGINES)
def test_a_second_sync_touches_only_the_changed_session(env: Env, engine: str) -> None:
    conn = f.create_db(env.db)
    for i in range(5):
        f.add_session(conn, f"ses_{i}")
    ctx = make_ctx(env, engine)
    assert run_sync(ctx).ok
    machine = env.dest / "laptop"
    watched = [*(machine / "sessions").rglob("*.json"), *(machine / "manifest.d").glob("sessions-*.json")]
    before = {p: p.stat().st_mtime_ns for p in watched}
    f.add_message(conn, "ses_3", "a new question")
    result = run_sync(ctx)
    assert result.sessions_exported == 1 and result.snapshot is None
    after = {p: p.stat().st_mtime_ns for p in before}
    changed = [p.name for p in before if before[p] != after[p]]
    # the session file is replaced and its new entry kept in manifest.json's delta: no shard is rewritten
    assert changed == ["ses_3.json"]
    new = {p.name for p in (machine / "manifest.d").glob("sessions-*.json")} - {p.name for p in before}
    assert not new
    delta = json.loads((machine / mf.MANIFEST).read_text())["delta"]
    assert delta["sessions"]["ses_3"]["sha256"] == sha256_file(session_file(env, "ses_3"))
    assert mf.load(machine, "laptop").sessions["ses_3"].sha256 == sha256_file(session_file(env, "ses_3"))
    assert "a new question" in session_file(env, "ses_3").read_text()
    # the replaced copy went to versions/
    old = list((env.dest / "laptop" / "versions").rglob("ses_3.json"))
    assert len(old) == 1 and "a new question" not in old[0].read_text()
    assert run_sync(ctx).sessions_exported == 0


def test_a_reply_that_streams_without_touching_the_session_row_is_still_noticed(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    ctx = make_ctx(env)
    run_sync(ctx)
    f.add_message(conn, "ses_a", "streamed later", bump_session=False)
    assert run_sync(ctx).sessions_exported == 1
    assert "streamed later" in session_file(env, "ses_a").read_text()


def test_deleted_session_moves_to_versions_and_is_never_lost(env: Env) -> None:
    conn = f.create_db(env.db)
    for i in range(4):
        f.add_session(conn, f"ses_{i}")
    ctx = make_ctx(env)
    run_sync(ctx)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("DELETE FROM session WHERE id='ses_1'")
    result = run_sync(ctx)
    assert result.ok and result.sessions_removed == 1
    assert not session_file(env, "ses_1").exists()
    kept = list((env.dest / "laptop" / "versions").rglob("ses_1.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["session_id"] == "ses_1"
    assert "ses_1" not in mf.load(env.dest / "laptop", "laptop").sessions


@pytest.mark.parametrize("wipe", ["empty-db", "no-db", "no-data-dir"])
def test_guard_refuses_to_mirror_a_source_that_lost_most_sessions(env: Env, wipe: str) -> None:
    conn = f.create_db(env.db)
    for i in range(6):
        f.add_session(conn, f"ses_{i}")
    ctx = make_ctx(env)
    run_sync(ctx)
    conn.close()
    before = tree(env.dest)
    for suffix in ("", "-wal", "-shm"):
        Path(str(env.db) + suffix).unlink(missing_ok=True)
    if wipe == "empty-db":
        f.create_db(env.db).close()
    elif wipe == "no-data-dir":
        env.data.rmdir()
    result = run_sync(ctx)
    assert result.outcome is Outcome.FAILED
    assert result.kind is (FailureKind.GUARD if wipe == "empty-db" else FailureKind.SOURCE_MISSING)
    after = tree(env.dest)
    assert after == before  # not a byte changed at the destination
    last = json.loads((env.app / "state" / "last_result.json").read_text())
    assert last["outcome"] == "failed" and last["error"]


def test_allow_deletions_overrides_the_guard_and_keeps_copies_in_versions(env: Env) -> None:
    conn = f.create_db(env.db)
    for i in range(4):
        f.add_session(conn, f"ses_{i}")
    ctx = make_ctx(env)
    run_sync(ctx)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("DELETE FROM session")
    assert run_sync(ctx).kind is FailureKind.GUARD
    result = run_sync(ctx, SyncOptions(allow_deletions=True))
    assert result.ok and result.sessions_removed == 4
    assert len(list((env.dest / "laptop" / "versions").rglob("ses_*.json"))) == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_no_secret_reaches_the_destination(env: Env, engine: str) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    tokens = f.plant_secrets(conn, "ses_a", env.data)
    (env.data / "storage" / "session").mkdir(parents=True)
    (env.data / "storage" / "session" / "x.json").write_text("{}")
    assert run_sync(make_ctx(env, engine)).ok
    blob = all_bytes_under(env.dest)
    assert b"ses_a" in blob  # the grep can find things at all
    for token in tokens:
        assert token.encode() not in blob, token
    doc = json.loads(session_file(env, "ses_a").read_text())
    assert doc["rows"]["session_share"][0]["secret"] == ""
    snap = next((env.dest / "laptop" / "snapshots").glob("*.db.zst"))
    plain = env.app / "snap.db"
    decompress(snap, plain)
    check = sqlite3.connect(plain)
    assert check.execute("SELECT count(*) FROM account").fetchone()[0] == 0
    assert check.execute("SELECT count(*) FROM session").fetchone()[0] == 1
    check.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_backup_files_are_private(env: Env, engine: str) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    legacy = env.data / "storage" / "session" / "p1" / "ses_old.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("{}")
    legacy.chmod(0o644)
    assert run_sync(make_ctx(env, engine)).ok
    assert (env.dest / "laptop" / "storage" / "session" / "p1" / "ses_old.json").exists()
    for p in (env.dest / "laptop").rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


@pytest.mark.parametrize("engine", ENGINES)
def test_legacy_tree_is_mirrored_and_a_torn_file_never_replaces_a_good_copy(env: Env, engine: str) -> None:
    storage = env.data / "storage"
    good = storage / "message" / "ses_x" / "msg_1.json"
    good.parent.mkdir(parents=True)
    good.write_text('{"id": "msg_1", "text": "precious"}')
    (storage / "session" / "p1").mkdir(parents=True)
    (storage / "session" / "p1" / "ses_x.json").write_text('{"id": "ses_x"}')
    ctx = make_ctx(env, engine)
    assert run_sync(ctx).storage_copied == 2
    dest_copy = env.dest / "laptop" / "storage" / "message" / "ses_x" / "msg_1.json"
    assert dest_copy.read_text() == good.read_text()
    good.write_bytes(b"\x00" * 40)  # a crash mid-write
    result = run_sync(ctx)
    assert result.outcome is Outcome.WARNING and result.skipped == ("storage/message/ses_x/msg_1.json",)
    assert "precious" in dest_copy.read_text()
    good.write_bytes(b"")
    run_sync(ctx, SyncOptions(dirty=("storage/message/ses_x/msg_1.json",)))
    assert "precious" in dest_copy.read_text()


def test_a_copy_robocopy_left_short_is_neither_placed_nor_recorded(env: Env) -> None:
    """A first sync from C: to a Drive letter copies opencode's legacy files with robocopy. A robocopy ended
    mid-file from outside leaves a cut copy and exits with code 1, "one or more files were copied
    successfully" (Microsoft Learn, "robocopy", exit codes). The cut copy must reach neither the backup nor
    the manifest, which would record the planned size and digest for it."""
    folder = env.data / "storage" / "message" / "ses_x"
    folder.mkdir(parents=True)
    (folder / "msg_1.json").write_text('{"id": "msg_1", "text": "' + "x" * 5000 + '"}')
    (folder / "msg_2.json").write_text('{"id": "msg_2"}')

    def cutting_robocopy(argv: Sequence[str], **_: object) -> RunResult:
        src, dst, names = Path(argv[1]), Path(argv[2]), argv[3 : -len(robocopy.FLAGS)]
        dst.mkdir(parents=True, exist_ok=True)
        for name in names:
            data = (src / name).read_bytes()
            (dst / name).write_bytes(data[:100] if name == "msg_1.json" else data)
        return RunResult(1, "", "")

    result = run_sync(make_ctx(env, engine=robocopy.RobocopyEngine(runner=cutting_robocopy)))
    assert result.outcome is Outcome.FAILED and result.kind is FailureKind.FATAL
    machine = env.dest / "laptop"
    cut, whole = "storage/message/ses_x/msg_1.json", "storage/message/ses_x/msg_2.json"
    assert not (machine / cut).exists()
    assert (machine / whole).read_bytes() == (env.data / whole).read_bytes()
    man = mf.load(machine, "laptop")
    recorded = {rel for path in (cut, whole) for rel in mf.load_shard(machine, man, mf.shard_of(path))}
    assert recorded == {whole}
    assert verify(machine, "laptop", env.app / "v").ok


def test_dirty_list_copies_only_the_listed_legacy_files(env: Env) -> None:
    storage = env.data / "storage" / "part" / "m1"
    storage.mkdir(parents=True)
    for i in range(20):
        (storage / f"p{i}.json").write_text(f'{{"n": {i}}}')
    ctx = make_ctx(env)
    run_sync(ctx)
    (storage / "p3.json").write_text('{"n": "three"}')
    (storage / "p4.json").write_text('{"n": "four"}')
    (storage / "p5.json").unlink()
    result = run_sync(ctx, SyncOptions(dirty=("storage/part/m1/p3.json", "storage/part/m1/p5.json")))
    dest = env.dest / "laptop" / "storage" / "part" / "m1"
    assert (dest / "p3.json").read_text() == '{"n": "three"}'
    assert (dest / "p4.json").read_text() == '{"n": 4}'  # not listed: left for the next reconcile
    assert not (dest / "p5.json").exists() and result.storage_removed == 1
    assert run_sync(ctx).storage_copied == 1  # the full reconcile picks up p4
    man = mf.load(env.dest / "laptop", "laptop")
    assert man.storage_files == 19


def test_snapshots_follow_the_schedule_and_retention(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    clock = Clock()
    ctx = make_ctx(env, clock=clock, snapshot_every_hours=24, keep_snapshots=2)
    assert run_sync(ctx).snapshot is not None
    clock.advance(hours=1)
    assert run_sync(ctx).snapshot is None
    assert run_sync(ctx, SyncOptions(snapshot=True)).snapshot is not None
    clock.advance(hours=25)
    assert run_sync(ctx).snapshot is not None
    snaps = sorted((env.dest / "laptop" / "snapshots").glob("*.db.zst"))
    assert len(snaps) == 2
    assert verify(env.dest / "laptop", "laptop", env.app / "v").ok


def test_a_session_rewritten_every_30_seconds_keeps_few_versions(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    clock = Clock()
    ctx = make_ctx(env, clock=clock)
    for i in range(240):  # two hours
        f.add_message(conn, "ses_a", f"message {i}")
        clock.advance(seconds=30)
        assert run_sync(ctx).ok
    copies = list((env.dest / "laptop" / "versions").rglob("ses_a.json"))
    assert 2 <= len(copies) <= 4, len(copies)


def test_a_warm_service_thins_versions_at_most_once_a_minute_and_a_new_process_at_once(
    env: Env,
) -> None:
    """Syncs 5 s apart (a chat) each keep the replaced copy; the copies one minute made are thinned
    together at the first sync a minute later, and another process (a command line sync) thins at once."""
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    clock = Clock()
    clock.now = clock.now.replace(minute=5)  # the three minutes below stay within one hour (one kept)
    ctx = make_ctx(env, clock=clock)
    assert run_sync(ctx).ok

    def copies() -> int:
        return len(list((env.dest / "laptop" / "versions").rglob("ses_a.json")))

    seen = []
    for i in range(34):  # nearly three minutes: the last thinning was 50 s before the last sync
        f.add_message(conn, "ses_a", f"message {i}")
        clock.advance(seconds=5)
        assert run_sync(ctx).ok
        seen.append(copies())
    assert max(seen) <= 13 and seen[-1] > 1  # never more than a minute of copies; some wait for the next
    assert any(later < earlier for earlier, later in pairwise(seen))  # thinned on the way
    f.add_message(conn, "ses_a", "from the command line")
    clock.advance(seconds=5)
    assert run_sync(make_ctx(env, clock=clock)).ok  # a new process: no manifest in memory, thins now
    assert copies() == 1  # all within this hour: the newest is kept


def test_the_last_attempt_is_the_newer_of_the_last_failure_and_the_last_backup(env: Env) -> None:
    conn = f.create_db(env.db)
    for i in range(4):
        f.add_session(conn, f"ses_{i}")
    clock = Clock()
    ctx = make_ctx(env, clock=clock)
    ok = run_sync(ctx)
    kept = load_results(env.app / "state")
    assert kept.attempt == kept.backup and kept.backup is not None and kept.backup.outcome is Outcome.OK
    conn.execute("DELETE FROM session")
    conn.commit()
    clock.advance(seconds=30)
    failed = run_sync(ctx)
    assert failed.kind is FailureKind.GUARD
    kept = load_results(env.app / "state")
    assert kept.attempt is not None and kept.attempt.kind is FailureKind.GUARD
    assert kept.backup is not None and kept.backup.sessions_total == ok.sessions_total == 4
    f.add_session(conn, "ses_9")
    clock.advance(seconds=30)
    again = run_sync(ctx, SyncOptions(allow_deletions=True))
    kept = load_results(env.app / "state")
    assert again.ok and kept.attempt == kept.backup and kept.backup is not None
    assert kept.backup.sessions_total == 1


def test_verify_reports_a_damaged_file(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    run_sync(make_ctx(env))
    target = session_file(env, "ses_a")
    target.write_bytes(target.read_bytes()[:-10])
    report = verify(env.dest / "laptop", "laptop", env.app / "v")
    assert not report.ok and any("ses_a.json" in p for p in report.problems)


def test_a_locked_destination_file_is_reported_as_locked_and_nothing_is_lost(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    ctx = make_ctx(env)
    run_sync(ctx)
    f.add_message(conn, "ses_a", "second")
    target = session_file(env, "ses_a")
    original = target.read_bytes()
    if subprocess.run(["chattr", "+i", str(target)], check=False, capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        result = run_sync(ctx)
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert result.outcome is Outcome.FAILED and result.kind is FailureKind.LOCKED, result
    assert target.read_bytes() == original
    recovered = run_sync(ctx)
    assert recovered.ok and "second" in target.read_text()


def test_temp_files_left_by_a_killed_sync_are_swept_later(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    ctx = make_ctx(env)
    run_sync(ctx)
    folder = session_file(env, "ses_a").parent
    stale = [
        folder / ".ses_a.json.tmp-4242",
        folder / ".ses_b.json.Ab12Cd",
        env.dest / "laptop" / ".x.tmp-1",
    ]
    fresh = folder / ".ses_c.json.tmp-77"
    for p in [*stale, fresh]:
        p.write_text("half")
    old = time.time() - 3600
    for p in stale:
        os.utime(p, (old, old))
    run_sync(ctx)
    assert not any(p.exists() for p in stale)
    assert fresh.exists()  # could belong to a copy still running


def test_the_engine_and_cli_never_import_desktop_libraries() -> None:
    code = (
        "import sys, app.__main__, app.cli, app.backup.sync, app.backup.verify, app.transfer, app.wiring;"
        "bad = [m for m in ('pystray', 'plyer', 'tkinter', 'PIL', 'gi') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_damaged_database_fails_the_sync_clearly_and_touches_nothing(env: Env) -> None:
    conn = f.create_db(env.db)
    for i in range(3):
        f.add_session(conn, f"ses_{i}")
    ctx = make_ctx(env)
    assert run_sync(ctx).ok
    conn.close()
    before = tree(env.dest)
    for suffix in ("-wal", "-shm"):
        Path(str(env.db) + suffix).unlink(missing_ok=True)
    env.db.write_bytes(b"this is not an SQLite database" * 100)
    result = run_sync(ctx)
    assert result.outcome is Outcome.FAILED and result.kind is FailureKind.FATAL
    assert "opencode's database" in result.error
    after = tree(env.dest)
    assert after == before


def test_a_session_moved_to_another_project_leaves_no_stale_copy(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    ctx = make_ctx(env)
    run_sync(ctx)
    f.add_project(conn, "proj9")
    conn.execute("UPDATE session SET project_id='proj9', time_updated=time_updated+1 WHERE id='ses_a'")
    assert run_sync(ctx).sessions_exported == 1
    assert session_file(env, "ses_a", "proj9").exists()
    assert not session_file(env, "ses_a", "proj1").exists()
    assert list((env.dest / "laptop" / "versions").rglob("proj1/ses_a.json"))
    assert verify(env.dest / "laptop", "laptop", env.app / "v").ok


def test_verify_reports_a_snapshot_that_fails_its_integrity_check(env: Env) -> None:
    import zstandard

    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    run_sync(make_ctx(env))
    snap = next((env.dest / "laptop" / "snapshots").glob("*.db.zst"))
    with open(snap, "rb") as fh:
        raw = bytearray(zstandard.ZstdDecompressor().stream_reader(fh).read())
    raw[5000:9000] = b"\xff" * 4000  # damage pages inside the database, recompress, record the new hash:
    snap.write_bytes(zstandard.ZstdCompressor().compress(bytes(raw)))  # only integrity_check can tell
    machine = env.dest / "laptop"
    man = mf.load(machine, "laptop")
    rel = f"snapshots/{snap.name}"
    man.files[rel] = mf.FileEntry(snap.stat().st_size, sha256_file(snap))
    mf.save(machine, man)
    report = verify(machine, "laptop", env.app / "v")
    assert not report.ok
    assert any(snap.name in p and ("integrity_check" in p or "malformed" in p) for p in report.problems)


def test_a_first_sync_reports_its_progress_a_few_times_a_second_at_most(env: Env) -> None:
    from app.backup.progress import Progress, Step

    conn = f.create_db(env.db)
    for i in range(300):
        f.add_session(conn, f"ses_{i:03d}", messages=1, parts=1)
    conn.close()
    seen: list[Progress] = []
    ctx = make_ctx(env, "native", progress=seen.append)
    assert run_sync(ctx, SyncOptions(snapshot=True)).ok
    sessions = [p for p in seen if p.step is Step.SESSIONS]
    assert sessions[0].done == 0 and sessions[-1].done == sessions[-1].total == 300
    assert len(sessions) < 50  # throttled: not one report per session
    assert [p.step for p in seen].count(Step.SNAPSHOT) == 1
    assert seen[-1].step is Step.COPYING and seen[-1].done == seen[-1].total == 301  # 300 sessions + snapshot
    assert re.fullmatch(r"backing up sessions: 300 of 300, \d+\.\d KiB", sessions[-1].words())
    assert sessions[-1].nbytes == sum(
        e.size for e in mf.load(env.dest / "laptop", "laptop").sessions.values()
    )


@pytest.mark.parametrize("how", ["linked from staging", "copied by rsync", "copied by rsync, many files"])
def test_backed_up_files_reach_the_disk_before_the_manifest_that_names_them_is_committed(
    env: Env, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """rsync writes without fsync, and a linked file was written to staging without one: a power cut
    after the commit must not leave the manifest naming a session file still only in the page cache."""
    conn = f.create_db(env.db)
    for i in range(80):  # more than the in-process engine's share of `auto`: rsync copies these
        f.add_session(conn, f"ses_{i:02d}")
    conn.close()
    if how.startswith("copied by rsync"):
        refuse_links_into_sessions(monkeypatch)
    if how == "copied by rsync":
        monkeypatch.setattr(fsutil, "SYNC_ONE_BY_ONE", 1000)  # each file fsynced, not one syncfs
    before_commit = synced_before_the_commit(env, monkeypatch, "rsync")
    machine = env.dest / "laptop"
    sessions = mf.load(machine, "laptop").sessions.values()
    assert len(sessions) == 80
    if how == "copied by rsync, many files":  # one syncfs of the backup's file system instead
        assert ("syncfs", str(machine)) in before_commit
    else:
        assert all(("fsync", (machine / e.path).stat().st_ino) in before_commit for e in sessions)


def synced_before_the_commit(
    env: Env, monkeypatch: pytest.MonkeyPatch, engine: str
) -> list[tuple[str, int | str]]:
    """Run a sync that must succeed; what it fsynced (by inode) and syncfs'ed before the rename of
    manifest.json that commits it."""
    events: list[tuple[str, int | str]] = []
    real_fsync, real_replace, real_syncfs = os.fsync, os.replace, fsutil.sync_filesystem

    def syncfs(path: Path) -> bool:
        events.append(("syncfs", str(path)))
        return real_syncfs(path)

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("replace", os.fspath(dst)))
        real_replace(src, dst, **kw)

    with monkeypatch.context() as m:
        m.setattr(fsutil, "sync_filesystem", syncfs)
        m.setattr(os, "fsync", fsync)
        m.setattr(os, "replace", replace)
        assert run_sync(make_ctx(env, engine)).ok
    return events[: events.index(("replace", str(env.dest / "laptop" / mf.MANIFEST)))]


def refuse_links_into_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup folder that cannot hard link (FAT, some cloud drives); versions/ keeps its fallback."""
    real_link = os.link

    def refuse(src: Any, dst: Any, **kw: Any) -> None:
        if "versions" not in os.fspath(dst):
            raise OSError(errno.EPERM, "Operation not permitted")
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", refuse)


class Recording:
    """The native engine, noting each job it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.native = make_engine("native")
        self.jobs: list[tuple[str, ...]] = []

    def copy(self, job: Any, cancel: Any) -> Any:
        self.jobs.append(job.paths)
        return self.native.copy(job, cancel)


def test_a_first_sync_on_the_same_disk_writes_the_staged_files_once_and_the_backup_verifies(
    env: Env,
) -> None:
    conn = f.create_db(env.db)
    for i in range(30):
        f.add_session(conn, f"ses_{i:02d}")
    conn.close()
    engine = Recording()
    assert run_sync(make_ctx(env, engine=engine), SyncOptions(snapshot=True)).ok
    assert engine.jobs == []  # sessions and the snapshot were linked in from staging, not copied
    machine = env.dest / "laptop"
    assert verify(machine, "laptop", env.app / "v").ok
    for entry in mf.load(machine, "laptop").sessions.values():
        st = (machine / entry.path).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 1  # staging let go of its name


def test_what_a_crashed_sync_left_under_this_pid_does_not_stop_the_links_or_the_kept_versions(
    env: Env,
) -> None:
    """A temp name of this very pid in sessions/, and a version a retried sync already kept: both are
    replaced, the staged files are still linked (not handed to the engine) and the old content kept."""
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    ctx = make_ctx(env, engine=Recording())
    assert run_sync(ctx).ok
    old = session_file(env, "ses_a").read_bytes()
    f.add_message(conn, "ses_a", "again")
    leftover = session_file(env, "ses_a").with_name(f".ses_a.json.tmp-{os.getpid()}")
    leftover.write_bytes(b"left by a crash")
    engine = Recording()
    clock = Clock()
    ctx = make_ctx(env, engine=engine, clock=clock)
    kept = env.dest / "laptop" / "versions" / guard.stamp(clock.now) / "sessions/proj1/ses_a.json"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"kept by the sync that was retried")
    assert run_sync(ctx).ok
    assert engine.jobs == [] and not leftover.exists()
    assert b"again" in session_file(env, "ses_a").read_bytes() and kept.read_bytes() == old


def test_a_folder_that_cannot_hard_link_gets_the_staged_files_copied_by_the_engine(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = f.create_db(env.db)
    for i in range(5):
        f.add_session(conn, f"ses_{i:02d}")
    conn.close()
    refuse_links_into_sessions(monkeypatch)
    engine = Recording()
    assert run_sync(make_ctx(env, engine=engine)).ok
    man = mf.load(env.dest / "laptop", "laptop")
    assert {p for job in engine.jobs for p in job} == {e.path for e in man.sessions.values()} | set(man.files)
    assert verify(env.dest / "laptop", "laptop", env.app / "v").ok
    assert not list((env.dest / "laptop").rglob(".*.tmp-*"))


def test_a_file_a_killed_sync_left_in_place_reaches_the_disk_before_the_next_sync_commits_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_old")
    conn.close()
    assert run_sync(make_ctx(env)).ok
    conn = f.connect(env.db)
    f.add_session(conn, "ses_new")
    conn.close()
    sync_pkg = importlib.import_module("app.backup.sync")

    def killed(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("killed after its copy, before its commit")

    with monkeypatch.context() as m:
        m.setattr(sync_pkg, "record", killed)
        assert not run_sync(make_ctx(env)).ok
    left = session_file(env, "ses_new")
    assert left.exists() and "ses_new" not in mf.load(env.dest / "laptop", "laptop").sessions
    assert ("fsync", left.stat().st_ino) in synced_before_the_commit(env, monkeypatch, "native")
    assert "ses_new" in mf.load(env.dest / "laptop", "laptop").sessions


def test_on_macos_each_flush_is_a_barrier_and_the_commit_flushes_the_drive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fsync on macOS leaves data in the drive's cache in any order: F_BARRIERFSYNC orders every flush,
    F_FULLFSYNC makes the commit durable; a volume that refuses them gets fsync."""
    calls: list[object] = []

    def fcntl_call(fd: int, cmd: int) -> int:
        calls.append(cmd)
        return 0

    def refusing(fd: int, cmd: int) -> int:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    fsutil.flush_darwin(3, False, fcntl_call)
    fsutil.flush_darwin(3, True, fcntl_call)
    fsutil.flush_darwin(3, True, refusing)
    assert calls == [fsutil.F_BARRIERFSYNC, fsutil.F_FULLFSYNC, "fsync"]


def test_the_commit_of_a_sync_is_its_one_flush_that_commits_and_its_last(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """manifest.json is written with ``commit=True`` (F_FULLFSYNC on macOS), after every other flush."""
    conn = f.create_db(env.db)
    for i in range(3):
        f.add_session(conn, f"ses_{i}")
    ctx = make_ctx(env)
    assert run_sync(ctx).ok
    f.add_message(conn, "ses_1", "one more")
    flushed: list[tuple[str, bool]] = []
    real = fsutil.flush

    def recording(fd: int, *, commit: bool = False) -> None:
        flushed.append((os.readlink(f"/proc/self/fd/{fd}"), commit))
        real(fd, commit=commit)

    monkeypatch.setattr(fsutil, "flush", recording)
    assert run_sync(ctx).ok
    commits = [name for name, commit in flushed if commit]
    assert len(commits) == 1 and Path(commits[0]).name.startswith(".manifest.json.tmp")
    assert flushed[-1][1] and len(flushed) >= 3  # the intent and the session file before it
