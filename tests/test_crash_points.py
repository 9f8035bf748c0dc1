"""A crash at every write, rename, link, unlink and fsync of a sync, a repair and an adopt, one run per
boundary (guarantee 7).

A first run counts the boundaries a sync crosses in the backup folder; then, for each k, the same sync
starts from the same state and the process ends with ``os._exit`` at the k-th boundary (no ``finally``,
no cleanup: what a kill -9 or a power cut leaves). After each crash: ``verify`` passes on what was left
(naming an interrupted sync, never reporting a hash mismatch), the next sync succeeds, and the backup
then holds exactly what opencode has. The sync exercises every kind of change at once: sessions replaced,
added, deleted and moved to another project, legacy files added, changed and deleted, a snapshot taken
and an old one pruned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app import paths
from app.backup import intent, ownership
from app.backup import manifest as mf
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.service.runtime import Runtime  # imports watchdog, whose shared thread starts then
from app.service.service import Timing
from app.service.status import ServiceState
from app.transfer import make_engine
from tests import dbfactory as f

ROOT = Path(__file__).resolve().parent.parent

# Runs one sync with the native engine (its writes are this process's own) and ends the process at the
# k-th file-system boundary inside the backup folder; with k = 0 it prints how many there were.
DRIVER = textwrap.dedent(
    """
    import builtins, io, os, sys
    K, DEST, COUNT_FILE = int(sys.argv[1]), os.path.realpath(sys.argv[2]), sys.argv[3]
    seen = [0]
    fds = {}

    def hit(*paths):
        if any(p is not None and os.path.realpath(os.fsdecode(p)).startswith(DEST) for p in paths):
            seen[0] += 1
            if seen[0] == K:
                os._exit(77)

    def wrap(name, n_paths):
        real = getattr(os, name)
        def inner(*args, **kwargs):
            hit(*args[:n_paths])
            return real(*args, **kwargs)
        setattr(os, name, inner)

    for name, n in (("replace", 2), ("rename", 2), ("link", 2), ("unlink", 1), ("remove", 1),
                    ("mkdir", 1), ("rmdir", 1), ("chmod", 1), ("utime", 1)):
        wrap(name, n)
    real_open, real_fsync, real_close = os.open, os.fsync, os.close

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            hit(path)
        fd = real_open(path, flags, *args, **kwargs)
        fds[fd] = path
        return fd

    def fsync(fd):
        hit(fds.get(fd if isinstance(fd, int) else fd.fileno()))
        return real_fsync(fd)

    os.open, os.fsync = os_open, fsync
    real_builtin_open = builtins.open

    def b_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
            hit(file)
        handle = real_builtin_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, bytes, os.PathLike)):
            fds[handle.fileno()] = file
        return handle

    builtins.open = io.open = b_open
    if os.environ.get("FOLD_EVERY_SAVE"):  # the manifest's delta folded into shard files at every commit
        import app.backup.manifest.write as write
        write.MAX_DELTA_BYTES = 0
    from app.cli import main
    code = main(sys.argv[4:])
    with real_builtin_open(COUNT_FILE, "w") as fh:
        fh.write(str(seen[0]))
    sys.exit(code)
    """
)


def ctx_for(base: Path) -> SyncContext:
    return SyncContext(
        backup_path=base / "backup",
        machine="box",
        source=base / "opencode",
        opencode_db=None,
        staging_dir=paths.app_data_dir() / "staging" / "box",
        state_dir=paths.app_state_dir(),
        engine=make_engine("native"),
        keep_snapshots=1,
    )


def home_env(home: Path) -> dict[str, str]:
    """HOME and the XDG folders of a test's own home (the app's state, data and config live there)."""
    return {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world after a first sync, with a change of every kind made since: ``home`` (app dirs),
    ``opencode`` and ``backup`` under one folder, copied fresh for every crash."""
    base = tmp_path_factory.mktemp("world")
    home = base / "home"
    env = home_env(home)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        config = home / ".config" / "opencode" / "session-backup.json"
        config.parent.mkdir(parents=True)
        config.write_text('{"keepSnapshots": 1}')  # so this sync also prunes the first snapshot
        conn = f.seed(base / "opencode", sessions=6, legacy=4)
        assert run_sync(ctx_for(base), SyncOptions(snapshot=True)).ok  # the first backup, with a snapshot
        f.change_every_kind(conn, base / "opencode")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return base


def world(template: Path, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    shutil.copytree(template, where, symlinks=True)
    home = where / "home"
    env = home_env(home)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def crash_at(k: int, base: Path, env: dict[str, str], fold: bool = False) -> tuple[int, int]:
    """Run the sync in a child that dies at boundary ``k``; returns (exit code, boundaries seen)."""
    counter = base / "boundaries"
    args = ["sync", "--snapshot", "--engine", "native", "--backup-path", str(base / "backup")]
    args += ["--source", str(base / "opencode"), "--machine-name", "box"]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(k), str(base / "backup"), str(counter), *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), **({"FOLD_EVERY_SAVE": "1"} if fold else {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 77), done.stderr
    return done.returncode, int(counter.read_text()) if counter.exists() else -1


def live_messages(base: Path) -> dict[str, int]:
    conn = sqlite3.connect(base / "opencode" / "opencode.db")
    try:
        return dict(conn.execute("SELECT session_id, count(*) FROM message GROUP BY session_id").fetchall())
    finally:
        conn.close()


def holds_exactly_opencode(base: Path) -> None:
    machine = base / "backup" / "box"
    man = mf.load(machine, "box")
    live = live_messages(base)
    assert set(man.sessions) == set(live)
    for sid, entry in man.sessions.items():
        doc = json.loads((machine / entry.path).read_bytes())
        assert len(doc["rows"]["message"]) == live[sid], sid
    assert man.sessions["ses_4"].path == "sessions/proj2/ses_4.json"
    assert not (machine / "sessions" / "proj1" / "ses_4.json").exists()
    assert list((machine / "versions").rglob("ses_3.json"))  # the deleted session is kept
    assert len(man.snapshots()) == 1 and intent.load(machine) is None


@pytest.mark.parametrize("commit", ["delta", "fold"])
def test_a_crash_at_every_boundary_of_a_sync_leaves_a_backup_verify_accepts_and_the_next_sync_completes(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit: str
) -> None:
    """``delta``: the commit keeps the changed entries in manifest.json; ``fold``: it writes them (and
    the delta the template's first sync left) into new shard files first."""
    fold = commit == "fold"
    env = world(template, tmp_path / "count", monkeypatch)
    code, total = crash_at(0, tmp_path / "count", env, fold)
    assert code == 0 and total > 40, total  # every kind of change crosses many boundaries
    holds_exactly_opencode(tmp_path / "count")
    interrupted = 0
    for k in range(1, total + 1):
        base = tmp_path / f"k{k}"
        env = world(template, base, monkeypatch)
        code, _ = crash_at(k, base, env, fold)
        assert code == 77, f"boundary {k} of {total} was never reached"
        machine = base / "backup" / "box"
        report = verify(machine, "box", base / "verify-work")
        assert report.ok, f"crash at boundary {k} of {total}: {report.problems}"
        interrupted += bool(report.notes)
        ctx = ctx_for(base)
        result = run_sync(ctx, SyncOptions(snapshot=True))
        assert result.ok, f"crash at boundary {k} of {total}: the next sync failed: {result.error}"
        after = verify(machine, "box", base / "verify-work")
        assert after.ok and not after.notes, (k, after.problems, after.notes)
        holds_exactly_opencode(base)
        shutil.rmtree(base)
    print(f"{total} boundaries crossed by one sync; a crash at each was survived ({interrupted} inside it)")
    assert interrupted > 0  # some crashes did land between the first change and the commit


def test_a_running_service_recovers_by_itself_from_a_crash_inside_a_sync(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old failure mode: killed between writing shards and the manifest, the service then failed on
    every start. Now it starts, completes the interrupted sync and is idle."""
    env = world(template, tmp_path / "count", monkeypatch)
    _, total = crash_at(0, tmp_path / "count", env)
    for k in range(total - 1, 0, -1):  # the last boundary before the commit that leaves an intent
        base = tmp_path / f"k{k}"
        env = world(template, base, monkeypatch)
        crash_at(k, base, env)
        if intent.load(base / "backup" / "box") is not None:
            break
        shutil.rmtree(base)
    else:
        raise AssertionError("no crash left a sync in progress")
    rt = Runtime(ctx_for(base), timing=Timing(delay=0.1, interval=0.2), watch=False, control_poll=0.05)
    rt.start()
    try:
        deadline = time.monotonic() + 30
        while not (rt.status.state is ServiceState.IDLE and rt.status.last_backup is not None):
            assert time.monotonic() < deadline, rt.status
            time.sleep(0.05)
    finally:
        assert rt.stop()
    assert verify(base / "backup" / "box", "box", base / "v").ok
    holds_exactly_opencode(base)


def test_two_interrupted_syncs_in_a_row_still_leave_a_backup_verify_accepts(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second sync's intent must cover what the first one had already replaced (with the first's
    content and its own newer one), or a crash of the second one leaves files that match neither the
    manifest nor its intent."""
    env = world(template, tmp_path / "count", monkeypatch)
    _, total = crash_at(0, tmp_path / "count", env)
    for k in (total // 2, 2 * total // 3, total - 3):
        first = tmp_path / f"k{k}"
        env = world(template, first, monkeypatch)
        crash_at(k, first, env)
        conn = f.connect(first / "opencode" / "opencode.db")
        f.add_message(conn, "ses_5", f"after the first crash at {k}")
        f.add_message(conn, "ses_1", "newer still")  # one the first sync may already have replaced
        conn.close()
        for j in range(4, 40, 3):  # the next sync dies too, somewhere after it wrote its own intent
            base = tmp_path / f"k{k}-{j}"
            env = world(first, base, monkeypatch)
            crash_at(j, base, env)
            report = verify(base / "backup" / "box", "box", base / "v")
            assert report.ok, (k, j, report.problems)
            shutil.rmtree(base)
        env = world(first, tmp_path / "last", monkeypatch)
        assert run_sync(ctx_for(tmp_path / "last"), SyncOptions(snapshot=True)).ok
        holds_exactly_opencode(tmp_path / "last")
        shutil.rmtree(tmp_path / "last")
        shutil.rmtree(first)


# ---------------------------------------------------------------------------------------- repair, adopt
def run_cli_at(k: int, base: Path, env: dict[str, str], *args: str) -> tuple[int, int]:
    """Run ``opencode-backup ARGS`` on ``base``'s world in a child that dies at boundary ``k``."""
    counter = base / "boundaries"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(k), str(base / "backup"), str(counter), *args,
         "--backup-path", str(base / "backup"), "--machine-name", "box"],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode in (0, 77), done.stderr
    return done.returncode, int(counter.read_text()) if counter.exists() else -1


def kept_files(machine: Path) -> dict[str, bytes]:
    """The backed-up files (sessions/, snapshots/, storage/), wherever a repair may have moved them."""
    out = {}
    for root in (machine, *(machine / "damaged").glob("*")):
        for folder, _dirs, files in os.walk(root):  # never through a link
            for name in files:
                path = Path(folder) / name
                rel = path.relative_to(root).as_posix()
                if rel.split("/")[0] in ("sessions", "snapshots", "storage") and not path.is_symlink():
                    out[rel] = path.read_bytes()
    return out


@pytest.fixture(scope="module", params=["torn manifest", "hostile file committed"])
def wreck(template: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The template's world after its sync, with a session file that fails a restore's checks and a
    symlink in sessions/, and either a torn manifest.json or a sound index that records the hostile
    file's hash (where setting it aside before the commit would leave the index naming a missing file)."""
    base = tmp_path_factory.mktemp("wreck") / "w"
    shutil.copytree(template, base, symlinks=True)
    env = home_env(base / "home")
    assert run_cli_at(0, base, env, "sync", "--snapshot", "--source", str(base / "opencode"))[0] == 0
    machine = base / "backup" / "box"
    man = mf.load(machine, "box")
    hostile = machine / man.sessions["ses_0"].path
    hostile.write_bytes((machine / man.sessions["ses_1"].path).read_bytes())  # another session's rows
    (machine / "sessions" / "evil").symlink_to("/etc")
    if request.param == "torn manifest":
        manifest = machine / mf.MANIFEST
        manifest.write_bytes(manifest.read_bytes()[:200])
    else:
        data = hostile.read_bytes()
        entry = {**vars(man.sessions["ses_0"]), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        man.sessions["ses_0"] = mf.SessionEntry(**entry)
        mf.save(machine, man)
    return base


def test_a_crash_at_every_boundary_of_a_repair_loses_nothing_and_the_next_repair_completes(
    wreck: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its commit a crashed repair leaves the old (damaged) index over untouched files; after it,
    an index verify accepts. Every file is where it was or set aside, the next repair completes, and the
    sync after it backs up exactly what opencode has."""
    env = world(wreck, tmp_path / "count", monkeypatch)
    damage = verify(tmp_path / "count" / "backup" / "box", "box", tmp_path / "v").problems
    before = kept_files(tmp_path / "count" / "backup" / "box")
    code, total = run_cli_at(0, tmp_path / "count", env, "repair", "--yes")
    assert code == 0 and total > 15, total
    committed_early = 0
    for k in range(1, total + 1):
        base = tmp_path / f"k{k}"
        env = world(wreck, base, monkeypatch)
        code, _ = run_cli_at(k, base, env, "repair", "--yes")
        assert code == 77, f"boundary {k} of {total} was never reached"
        machine = base / "backup" / "box"
        assert kept_files(machine) == before, f"crash at boundary {k} of {total} lost a file"
        report = verify(machine, "box", base / "v")
        assert report.ok or report.problems == damage, (k, report.problems)
        committed_early += report.ok and (machine / "sessions" / "evil").is_symlink()
        assert run_cli_at(0, base, env, "repair", "--yes")[0] == 0, k
        assert verify(machine, "box", base / "v").ok, k
        assert run_sync(ctx_for(base), SyncOptions(snapshot=True)).ok, k
        holds_exactly_opencode(base)
        shutil.rmtree(base)
    print(f"{total} boundaries crossed by one repair; a crash at each was survived")
    assert committed_early > 0  # some crashes landed between the commit and the setting aside


def test_a_crash_at_every_boundary_of_adopt_leaves_one_whole_owner_and_the_next_adopt_completes(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = {"format": ownership.FORMAT, "install": "e" * 32, "host": "old-box", "salt": "0" * 32,
             "computer": ownership.computer_hash("0" * 32, "another computer")}  # fmt: skip
    foreign = tmp_path / "foreign"
    shutil.copytree(template, foreign, symlinks=True)
    (foreign / "backup" / "box" / ownership.OWNER).write_text(json.dumps(owner))
    env = world(foreign, tmp_path / "count", monkeypatch)
    code, total = run_cli_at(0, tmp_path / "count", env, "adopt", "--yes")
    assert code == 0 and total >= 3, total
    for k in range(1, total + 1):
        base = tmp_path / f"k{k}"
        env = world(foreign, base, monkeypatch)
        assert run_cli_at(k, base, env, "adopt", "--yes")[0] == 77
        machine = base / "backup" / "box"
        claim = ownership.read_claim(machine, ownership.OWNER)  # the old owner or the new one, whole
        assert claim is not None and claim.install in ("e" * 32, ownership.install_id(paths.app_state_dir()))
        assert run_cli_at(0, base, env, "adopt", "--yes")[0] == 0
        assert run_sync(ctx_for(base), SyncOptions(snapshot=True)).ok, k
        holds_exactly_opencode(base)
        shutil.rmtree(base)
    print(f"{total} boundaries crossed by adopt; a crash at each was survived")
