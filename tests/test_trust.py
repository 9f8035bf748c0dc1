"""The backup folder is untrusted and the disk can fill: hostile manifests, bombs, secrets, two installs,
a full disk, honest answers. Each test names the issue-9 item it holds to."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard

from app import paths
from app.__main__ import main
from app.backup import manifest as mf
from app.backup import ownership
from app.backup.backup_reader import SMALL_SNAPSHOT_CAP
from app.backup.result import Outcome
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.errors import FailureKind
from tests import dbfactory as f
from tests.backups import Env
from tests.files import tree
from tests.test_restore_hostile import db_digest

ROOT = Path(__file__).resolve().parent.parent
MACHINE = "laptop"
SNAP = "snapshots/opencode-2026-01-01T000000.000Z.db.zst"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = Env(tmp_path, MACHINE)
    conn = f.create_db(env.db)
    for i in range(3):
        f.add_session(conn, f"ses_{i}")
    conn.close()
    return env


def ctx_for(env: Env, install: str | None = None, **kw: Any) -> SyncContext:
    """A sync of this install (the one the CLI is), or of another ``install`` with its own state."""
    return env.context(paths.app_state_dir() if install is None else env.tmp / install, **kw)


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--backup-path", str(env.dest), "--machine-name", MACHINE]
    if args[0] not in ("verify",):
        flags += ["--source", str(env.data)]
    return subprocess.run(
        [sys.executable, "-m", "app", *flags, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ---------------------------------------------------------------------------------------- item 5
def _plant(machine: Path, edit: str) -> Path:
    """A manifest that names a path outside the machine folder, validly committed (hashes match)."""
    victim = machine.parent.parent / "victim-1999-01-01T000000.000Z.db.zst"
    victim.write_bytes(b"precious")
    man = mf.load(machine, MACHINE)
    if edit == "session":
        sid, e = next(iter(man.sessions.items()))
        man.sessions[sid] = mf.SessionEntry(**{**vars(e), "path": "sessions/../../../victim.json"})
    elif edit == "snapshot":
        man.files["snapshots/../../victim-1999-01-01T000000.000Z.db.zst"] = mf.FileEntry(8, "0" * 64)
    else:
        bad = "storage/../../x"
        mf.save(machine, man, {mf.shard_of(bad): {bad: mf.FileEntry(1, "0" * 64)}})
        return victim
    mf.save(machine, man)
    return victim


@pytest.mark.parametrize("edit", ["session", "snapshot", "storage"])
def test_a_path_outside_the_machine_folder_in_the_manifest_is_refused_before_anything_is_touched(
    env: Env, edit: str
) -> None:
    machine = env.dest / MACHINE
    (env.data / "storage" / "x").mkdir(parents=True)  # a legacy tree: syncs read the storage index
    (env.data / "storage" / "x" / "a.json").write_text("{}")
    assert run_sync(ctx_for(env, keep_snapshots=1), SyncOptions(snapshot=True)).ok
    victim = _plant(machine, edit)
    before = tree(env.dest)
    commands = [["sync", "--snapshot"], ["verify"]] + ([] if edit == "storage" else [["list"], ["status"]])
    for args in commands:  # list and status do not read the storage index
        done = cli(env, *args)
        assert done.returncode == (0 if args == ["status"] else 1), (args, done.stderr)
        assert done.stderr.count("\n") <= 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert "refusing" in done.stdout + done.stderr, (args, done.stdout, done.stderr)
    assert victim.read_bytes() == b"precious" and tree(env.dest) == before


# ---------------------------------------------------------------------------------------- item 8
def _bomb(snapshot: Path, size: int) -> None:
    """A valid SQLite header page followed by ``size`` bytes of zeros: a few dozen KB compressed."""
    with open(snapshot, "rb") as fh:
        real = zstandard.ZstdDecompressor().stream_reader(fh).read(4096)
    header = bytearray(real)
    pages = (size // 4096) + 1
    header[28:32] = pages.to_bytes(4, "big")  # declares the whole size, consistently
    header[92:96] = header[24:28]
    cctx = zstandard.ZstdCompressor(level=1)
    with open(snapshot, "wb") as out, cctx.stream_writer(out) as w:
        w.write(bytes(header))
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            w.write(chunk)


def test_a_decompression_bomb_is_refused_within_seconds_and_never_fills_the_disk(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_sync(ctx_for(env), SyncOptions(snapshot=True)).ok
    snap = next((env.dest / MACHINE / "snapshots").glob("*.db.zst"))
    _bomb(snap, 1 << 30)  # 1 GiB of zeros
    assert snap.stat().st_size < 200_000
    monkeypatch.setenv("OPENCODE_BACKUP_PATH", str(env.dest))
    before = db_digest(env.db)
    t0 = time.monotonic()
    args = ["restore", "--all", "--replace", "--yes", "--source", str(env.data), "--machine-name", MACHINE]
    code = main(args)
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 1 and "expands to more than" in err and err.count("\n") == 1, err
    assert took < 30, took  # it stopped at the cap, it did not write a gigabyte first
    assert db_digest(env.db) == before
    work = paths.app_data_dir() / "restore-work"
    assert sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) == 0
    assert SMALL_SNAPSHOT_CAP < 1 << 30


# ---------------------------------------------------------------------------------------- item 9
def test_legacy_share_records_never_reach_the_backup_and_old_copies_are_purged(
    env: Env,
) -> None:
    storage = env.data / "storage"
    for rel in ("share/ses_0.json", "session/share/ses_0.json"):
        (storage / rel).parent.mkdir(parents=True, exist_ok=True)
        (storage / rel).write_text(json.dumps({"id": "ses_0", "secret": "s3cr3t-share", "url": "https://x"}))
    (storage / "session" / "info").mkdir(parents=True)
    (storage / "session" / "info" / "ses_0.json").write_text(json.dumps({"id": "ses_0", "title": "t"}))
    machine = env.dest / MACHINE
    ctx = ctx_for(env)
    assert run_sync(ctx).ok
    assert (machine / "storage" / "session" / "info" / "ses_0.json").is_file()
    assert not list(machine.rglob("share"))
    # a backup made by an older version holds one, and an old copy of it
    man = mf.load(machine, MACHINE)
    rel = "storage/share/ses_0.json"
    for where in (machine / rel, machine / "versions" / "2026-01-01T000000.000Z" / rel):
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text('{"secret": "s3cr3t-share"}')
    entry = mf.FileEntry(27, "1" * 64)
    index = mf.load_shard(machine, man, mf.shard_of(rel))
    mf.save(machine, man, {mf.shard_of(rel): {**index, rel: entry}})
    man = mf.load(machine, MACHINE)
    ctx = ctx_for(env)  # a fresh process: no cached manifest
    assert run_sync(ctx).ok  # a start-up sync walks everything
    found = [p for p in machine.rglob("*") if p.is_file() and b"s3cr3t-share" in p.read_bytes()]
    assert found == [], found
    assert verify(machine, MACHINE, env.tmp / "v").ok


# ---------------------------------------------------------------------------------------- item 10
def test_a_second_install_with_the_same_machine_name_refuses_in_one_line_and_changes_nothing(
    env: Env,
) -> None:
    assert run_sync(ctx_for(env, "install-a")).ok
    before = tree(env.dest)
    result = run_sync(ctx_for(env, "install-b"))  # another computer, same host name, same Drive folder
    assert result.outcome is Outcome.FAILED and result.kind is FailureKind.FOREIGN
    assert "two computers use the machineName 'laptop'" in result.error and "\n" not in result.error
    assert tree(env.dest) == before
    assert run_sync(ctx_for(env, "install-a")).ok  # the owner goes on


def test_a_writer_lease_holds_off_a_second_writer_until_it_expires(env: Env) -> None:
    machine = env.dest / MACHINE
    assert run_sync(ctx_for(env)).ok

    def lease(until: datetime) -> None:
        doc = {"format": ownership.FORMAT, "install": "f" * 32, "host": "desk", "until": until.isoformat()}
        (machine / ownership.LEASE).write_text(json.dumps(doc))

    lease(datetime.now(UTC) + timedelta(minutes=10))  # another computer is writing
    held = run_sync(ctx_for(env))
    assert held.kind is FailureKind.LOCKED and "another install (on computer 'desk')" in held.error
    lease(datetime.now(UTC) - timedelta(minutes=1))  # it crashed an hour ago: its lease ran out
    assert run_sync(ctx_for(env)).ok
    assert not (machine / ownership.LEASE).exists()  # released after the sync


# ---------------------------------------------------------------------------------------- item 12
def test_a_restore_before_any_sync_makes_private_folders_and_sweeps_what_a_killed_one_left(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.umask(0)
    try:
        assert run_sync(ctx_for(env)).ok
        data_dir = paths.app_data_dir()
        assert not data_dir.exists()
        safety = data_dir / "before-restore"
        work = data_dir / "restore-work"
        safety.mkdir(parents=True)
        dead = 2**22 + 17  # no such process
        left = [safety / f".opencode-before-restore-x.db.tmp-{dead}", work / f"tmp{dead}-ab" / "snapshot.db"]
        for p in left:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"token-bearing leftovers")
        for p in (data_dir, safety):
            p.chmod(0o777)
        f.delete_session(env.db, "ses_0")
        monkeypatch.setenv("OPENCODE_BACKUP_PATH", str(env.dest))
        assert main(["restore", "ses_0", "--yes", "--source", str(env.data), "--machine-name", MACHINE]) == 0
        copy = next(safety.glob("opencode-before-restore-*.db"))
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert not left[0].exists()
    finally:
        os.umask(0o022)


# ---------------------------------------------------------------------------------------- item 13
@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda d: json.dumps({**d, "storage_files": 12345}).replace("12345", "1e999"), "storage_files"),
        (lambda d: {**d, "files": {SNAP: {"size": "abc", "sha256": "0" * 64}}}, "size"),
        (lambda d: "[" * 100_000 + "]" * 100_000, "not valid JSON"),
        (lambda d: {**d, "session_count": 2**70}, "out of range"),
    ],
    ids=["1e999", "size abc", "100k deep", "huge int"],
)
def test_a_damaged_manifest_is_one_line_for_every_command_never_a_traceback(
    env: Env, damage: object, words: str
) -> None:
    assert run_sync(ctx_for(env)).ok
    path = env.dest / MACHINE / mf.MANIFEST
    doc = json.loads(path.read_bytes())
    new = damage(doc)  # type: ignore[operator]
    path.write_text(new if isinstance(new, str) else json.dumps(new))
    for args, code in ((["sync"], 1), (["verify"], 1), (["list"], 1), (["status"], 0)):
        done = cli(env, *args)
        assert done.returncode == code and "Traceback" not in done.stderr, (args, done.stderr)
        assert words in done.stdout + done.stderr, (args, done.stdout, done.stderr)


def test_a_storage_entry_in_the_wrong_shard_is_damage_not_an_internal_error(env: Env) -> None:
    (env.data / "storage" / "x").mkdir(parents=True)
    (env.data / "storage" / "x" / "a.json").write_text("{}")
    assert run_sync(ctx_for(env)).ok
    machine = env.dest / MACHINE
    man = mf.load(machine, MACHINE)
    wrong = next(s for s in mf.all_shards() if s != mf.shard_of("storage/x/a.json"))
    mf.save(machine, man, {wrong: {"storage/x/a.json": mf.FileEntry(2, "0" * 64)}})
    done = cli(env, "sync")
    assert done.returncode == 1 and "belongs in another shard" in done.stderr
    assert "internal error" not in done.stderr


def test_a_huge_manifest_is_refused_unread(env: Env) -> None:
    assert run_sync(ctx_for(env)).ok
    path = env.dest / MACHINE / mf.MANIFEST
    with open(path, "ab") as fh:
        fh.truncate(300 << 20)  # 300 MB (sparse)
    done = cli(env, "status", "--json")
    assert done.returncode == 0 and "more than it can be" in json.loads(done.stdout)["backup_damaged"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("snapshotEveryHours", 1e300), ("keepVersionsDays", 10**9), ("backupPath", "/tmp/a\u0000b")],
)
def test_settings_out_of_bounds_are_refused_up_front(env: Env, setting: str, value: object) -> None:
    cfg = env.tmp / "cfg.json"
    settings = {"backupPath": str(env.dest), setting: value}
    cfg.write_text(json.dumps(settings))
    done = subprocess.run(
        [sys.executable, "-m", "app", "sync", "--source", str(env.data)],
        env={**os.environ, "OPENCODE_BACKUP_CONFIG": str(cfg)},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and setting in done.stderr, done.stderr


def test_a_settings_file_that_never_ends_is_refused(env: Env) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "config"],
        env={**os.environ, "OPENCODE_BACKUP_CONFIG": "/dev/zero"},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a regular file" in done.stderr


# ---------------------------------------------------------------------------------------- item 14
def test_a_failed_sync_says_so_once_and_the_record_has_real_times(env: Env) -> None:
    assert cli(env, "sync").returncode == 0
    log = (env.dest / MACHINE / "sync.log").read_text().splitlines()
    assert "in 0.00s" not in log[-1]
    last = json.loads((env.dest / MACHINE / mf.MANIFEST).read_text())["last_result"]
    assert last["finished"] and last["duration_s"] > 0
    env.db.write_bytes(b"garbage " * 1000)
    done = cli(env, "sync")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr


# ---------------------------------------------------------------------------------------- item 16
def test_restore_missing_brings_back_a_session_whose_deletion_was_backed_up(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_sync(ctx_for(env)).ok
    f.delete_session(env.db, "ses_1")
    assert run_sync(ctx_for(env)).ok  # the deletion is backed up: ses_1 now lives in versions/ only
    monkeypatch.setenv("OPENCODE_BACKUP_PATH", str(env.dest))
    assert main(["restore", "--missing", "--yes", "--source", str(env.data), "--machine-name", MACHINE]) == 0
    conn = f.connect(env.db)
    try:
        assert conn.execute("SELECT count(*) FROM session WHERE id = 'ses_1'").fetchone()[0] == 1
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------- item 2
@pytest.mark.parametrize("engine", ["native", "rsync"])
def test_a_full_disk_mid_sync_fails_clearly_loses_no_session_and_the_next_sync_completes(
    env: Env, engine: str
) -> None:
    small = env.tmp / "drive"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=False).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        env = replace(env, backup=small / "backup")
        ctx = ctx_for(env, engine=engine)
        assert run_sync(ctx).ok
        machine = env.dest / MACHINE
        backed_up = sorted(p.relative_to(machine) for p in (machine / "sessions").rglob("*.json"))
        filler = small / "filler"
        free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
        filler.write_bytes(b"\0" * (free - 60_000))  # room for the small files, not for what comes
        conn = f.connect(env.db)
        for sid in ("ses_0", "ses_1", "ses_2"):
            f.add_message(conn, sid, "x" * 30_000)  # every session grows past what is left
        conn.close()
        result = run_sync(ctx)
        assert result.outcome is Outcome.FAILED and "No space left on device" in result.error, result
        assert "\n" not in result.error
        after = sorted(p.relative_to(machine) for p in (machine / "sessions").rglob("*.json"))
        assert after == backed_up  # every backed-up session is still in sessions/
        assert verify(machine, MACHINE, env.tmp / "v").ok
        filler.unlink()
        assert run_sync(ctx).ok
        assert all("x" * 30_000 in (machine / rel).read_text() for rel in after)
        assert verify(machine, MACHINE, env.tmp / "v").ok
    finally:
        subprocess.run(["umount", str(small)], check=True)
