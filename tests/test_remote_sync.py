"""A backup to an rclone remote, end to end with the real rclone against its own sftp and WebDAV servers on
127.0.0.1: what goes up (counted as the server's writes), that the remote is a backup ``verify`` passes,
and what keeps one writer per machine folder and the mirror this remote's."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app import paths
from app.backup import manifest as mf
from app.backup.remote.view import Parts, view
from app.backup.result import Outcome
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.errors import FailureKind
from app.transfer import rclone as rc
from tests import dbfactory as f
from tests.backups import Env, make_env
from tests.remotes import Remote, Servers, remote_context, remote_for, use_config, writes, written
from tests.test_crash_points import home_env

DIRTY = SyncOptions(dirty=("opencode.db",))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@pytest.fixture
def config_file(rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_config(rclone_servers, tmp_path, monkeypatch)


def sessions(env: Env, n: int = 3) -> None:
    conn = f.create_db(env.db)
    for i in range(n):
        f.add_session(conn, f"ses_{i}")
    conn.close()


def backed_up(
    env: Env, servers: Servers, name: str = "t-sftp", n: int = 3, **kw: Any
) -> tuple[Remote, SyncContext]:
    """``n`` sessions in opencode, backed up by a first sync to a folder of its own on ``name``; ``kw``:
    as remote_context takes them."""
    remote = remote_for(servers, name)
    sessions(env, n)
    ctx = remote_context(env.data, remote, **kw)
    sync(ctx)
    return remote, ctx


def in_another_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on the test is another install: this HOME and its app folders (cache, state, data)."""
    for var, value in home_env(home).items():
        monkeypatch.setenv(var, value)


def checked(remote: Remote, machine: str = "laptop") -> None:
    """``verify`` of the remote's machine folder, read where the server keeps it, passes."""
    report = verify(remote.served / machine, machine, remote.served.parent / "verify-work")
    assert report.ok, report.problems


def sync(ctx: SyncContext, options: SyncOptions | None = None) -> None:
    result = run_sync(ctx, options)
    assert result.ok, result.error


@pytest.mark.parametrize("name", ["t-sftp", "t-dav"])
def test_the_first_sync_uploads_the_backup_and_later_ones_only_what_changed(
    env: Env, rclone_servers: Servers, config_file: Path, name: str
) -> None:
    remote, ctx = backed_up(env, rclone_servers, name)
    served = writes(remote.served)
    mirror = {p.relative_to(ctx.backup_path).as_posix() for p in ctx.backup_path.rglob("*") if p.is_file()}
    assert set(served) == (mirror - {"laptop/sync.log"}) | {"laptop/writer.lease"}
    checked(remote)

    conn = f.connect(env.db)
    f.add_message(conn, "ses_1", "a reply")
    before = writes(remote.served)
    sync(ctx, DIRTY)
    changed = written(before, writes(remote.served))
    assert changed == {
        "laptop/manifest.json",
        "laptop/sessions/proj1/ses_1.json",
        *(rel for rel in changed if rel.startswith("laptop/versions/") and rel.endswith("/ses_1.json")),
    }
    assert sum(rel.startswith("laptop/versions/") for rel in changed) == 1  # the old copy, kept
    checked(remote)

    before = writes(remote.served)
    f.delete_session(env.db, "ses_2")
    sync(ctx, DIRTY)
    after = writes(remote.served)
    assert set(before) - set(after) == {"laptop/sessions/proj1/ses_2.json"}
    assert {rel for rel in written(before, after) if not rel.startswith("laptop/versions/")} == {
        "laptop/manifest.json"
    }
    assert not (remote.served / "laptop/manifest.d/intent.json").exists()
    checked(remote)


def test_the_live_services_uploads_go_through_one_resident_rclone_and_survive_its_end(
    env: Env, rclone_servers: Servers, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm upload starts no rclone command (one request a file to the resident one); one that died is
    started again, and where none can be, commands do the work: the remote stays a backup verify passes."""
    remote, ctx = backed_up(env, rclone_servers, "t-dav", resident=True)
    assert ctx.remote is not None and ctx.remote.client.daemon is not None
    commands: list[str] = []
    real = rc.Rclone._call

    def call(self: rc.Rclone, argv: list[str], data: bytes | None, cancel: threading.Event) -> Any:
        commands.append(argv[1])
        return real(self, argv, data, cancel)

    monkeypatch.setattr(rc.Rclone, "_call", call)
    for i in range(3):
        f.add_message(f.connect(env.db), "ses_1", f"reply {i}")
        sync(ctx, DIRTY)
    assert commands == []  # put, replace, commit and clean: all through the resident rclone
    checked(remote)
    daemon = ctx.remote.client.daemon
    assert daemon is not None and daemon._proc is not None
    first = daemon._proc
    first.kill()  # it died (the OOM killer, say)
    first.wait()
    f.add_message(f.connect(env.db), "ses_1", "after its end")
    sync(ctx, DIRTY)
    assert commands == [] and daemon._proc is not None and daemon._proc.pid != first.pid  # started again
    checked(remote)
    daemon._proc.kill()
    daemon._proc.wait()
    daemon.binary = "/nonexistent/rclone"  # and now none can start
    f.add_message(f.connect(env.db), "ses_1", "by commands")
    sync(ctx, DIRTY)
    assert commands  # commands did the work
    checked(remote)
    ctx.remote.release()
    assert daemon._proc is None


def test_legacy_files_go_up_and_come_off_with_the_index(
    env: Env, rclone_servers: Servers, config_file: Path
) -> None:
    remote = remote_for(rclone_servers)
    sessions(env, 1)
    legacy = env.data / "storage" / "session_diff"
    legacy.mkdir(parents=True)
    for i in range(3):
        (legacy / f"d{i}.json").write_text(json.dumps({"n": i}))
    ctx = remote_context(env.data, remote)
    sync(ctx)
    assert (remote.served / "laptop/storage/session_diff/d2.json").read_text() == '{"n": 2}'
    (legacy / "d1.json").write_text(json.dumps({"n": "changed"}))
    (legacy / "d2.json").unlink()
    before = writes(remote.served)
    sync(ctx, SyncOptions(dirty=("storage/session_diff/d1.json", "storage/session_diff/d2.json")))
    after = writes(remote.served)
    assert not (remote.served / "laptop/storage/session_diff/d2.json").exists()
    assert (remote.served / "laptop/storage/session_diff/d1.json").read_text() == '{"n": "changed"}'
    assert {rel for rel in written(before, after) if not rel.startswith("laptop/versions/")} == {
        "laptop/manifest.json",
        "laptop/storage/session_diff/d1.json",
    }
    checked(remote)


def test_a_purged_mirror_is_filled_from_the_remote_and_nothing_goes_up_twice(
    env: Env, rclone_servers: Servers, config_file: Path
) -> None:
    remote, ctx = backed_up(env, rclone_servers)
    f.add_message(f.connect(env.db), "ses_0", "kept in versions/")
    sync(ctx, DIRTY)
    versions = {rel for rel in writes(remote.served) if "/versions/" in rel}
    assert ctx.remote is not None
    ctx.remote.close()
    shutil.rmtree(paths.app_cache_dir())  # what a cache clean-up does
    before = writes(remote.served)
    ctx = remote_context(env.data, remote)
    sync(ctx, DIRTY)
    after = writes(remote.served)
    assert written(before, after) <= {"laptop/manifest.json", "laptop/writer.lease"}
    assert versions <= set(after)  # the history stays
    assert (ctx.machine_dir / next(iter(versions)).removeprefix("laptop/")).is_file()  # and is in the mirror
    checked(remote)


def test_a_lost_ledger_is_rebuilt_from_the_remote_by_hash(
    env: Env, rclone_servers: Servers, config_file: Path
) -> None:
    remote, ctx = backed_up(env, rclone_servers)
    assert ctx.remote is not None
    ctx.remote.close()
    shutil.rmtree(ctx.remote.cache / "ledgers")
    before = writes(remote.served)
    ctx = remote_context(env.data, remote)
    sync(ctx, DIRTY)
    assert written(before, writes(remote.served)) <= {"laptop/manifest.json", "laptop/writer.lease"}
    checked(remote)


def test_a_second_install_with_the_same_machine_name_is_refused_before_downloading(
    env: Env, rclone_servers: Servers, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, _ctx = backed_up(env, rclone_servers)
    in_another_home(tmp_path / "other-home", monkeypatch)
    ctx = remote_context(env.data, remote, identity=lambda: "another computer")
    result = run_sync(ctx)
    assert result.kind is FailureKind.FOREIGN, result.error
    assert "machineName" in result.error
    assert not (ctx.machine_dir / "sessions").exists()  # its backup was not downloaded
    checked(remote)


def test_a_reinstall_carries_on_once_the_old_install_gave_its_lease_back(
    env: Env, rclone_servers: Servers, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = remote_for(rclone_servers)
    sessions(env)
    first = remote_context(env.data, remote)
    sync(first)
    assert first.remote is not None
    first.remote.release()  # the old install's service stopped
    assert not (remote.served / "laptop" / "writer.lease").exists()
    in_another_home(tmp_path / "reinstalled", monkeypatch)  # this computer and account, a new install
    sync(remote_context(env.data, remote), DIRTY)
    checked(remote)


def test_a_lease_another_install_holds_on_the_remote_holds_this_one_off(
    env: Env, rclone_servers: Servers, config_file: Path, tmp_path: Path
) -> None:
    remote = remote_for(rclone_servers)
    sessions(env)
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    lease = {"format": "opencode-session-backup-owner/1", "install": "f" * 32, "host": "desk", "until": until}
    (tmp_path / "writer.lease").write_text(json.dumps(lease))
    binary = rc.find_binary()
    assert binary is not None
    there = f"t-sftp:{remote.path}/laptop/writer.lease"
    subprocess.run([binary, "copyto", str(tmp_path / "writer.lease"), there], check=True, env=os.environ)
    result = run_sync(remote_context(env.data, remote))
    assert result.kind is FailureKind.LOCKED
    assert "another install (on computer 'desk') is writing" in result.error


def test_uploads_wait_while_held_back_and_go_up_after(
    env: Env, rclone_servers: Servers, config_file: Path
) -> None:
    remote = remote_for(rclone_servers)
    sessions(env)
    ctx = remote_context(env.data, remote)
    assert ctx.remote is not None
    held = dataclasses.replace(ctx, remote=dataclasses.replace(ctx.remote, held=lambda: "on battery"))
    result = run_sync(held)
    assert (result.outcome, result.kind) == (Outcome.FAILED, FailureKind.HELD_BACK)
    assert "backed up on this computer" in result.error and "on battery" in result.error
    assert (ctx.machine_dir / "manifest.json").is_file()
    assert not (remote.served / "laptop" / "manifest.json").exists()
    sync(ctx, DIRTY)
    checked(remote)


def test_another_machines_folder_is_read_through_one_view_and_removed_after(
    env: Env, rclone_servers: Servers, config_file: Path
) -> None:
    _remote, ctx = backed_up(env, rclone_servers, "t-dav", machine="old-laptop")
    assert ctx.remote is not None
    with view(ctx.remote, "old-laptop", Parts.INDEX, threading.Event()) as folder:
        assert len(mf.load(folder, "old-laptop").sessions) == 3
        assert not (folder / "sessions").exists()  # the index only
        kept = folder
    assert not kept.exists()
    with view(ctx.remote, "old-laptop", Parts.SESSIONS) as folder:
        assert len(list((folder / "sessions").rglob("*.json"))) == 3
        assert not (folder / "snapshots").exists()


def test_encryption_turned_on_leaves_nothing_in_clear_on_the_remote_versions_included(
    env: Env, rclone_servers: Servers, config_file: Path
) -> None:
    """A plain remote backup with a kept version, then encryption on: every file the server holds is age
    (the versions/ copies the re-encryption rewrote went up again), the remote passes verify, and the
    sessions' words are in no byte of it."""
    from app.crypt import age
    from app.crypt.seal import Seal

    remote, ctx = backed_up(env, rclone_servers)
    conn = f.connect(env.db)
    f.add_message(conn, "ses_1", "the zanzibar merger, in clear until now")
    conn.close()
    sync(ctx, DIRTY)
    served = remote.served / "laptop"
    assert list((served / "versions").rglob("ses_1.json"))
    secret, public = age.new_identity()
    sync(dataclasses.replace(ctx, seal=Seal([public], lambda: [secret])))
    ctx.remote.release()  # type: ignore[union-attr]
    data = [p for p in served.rglob("*") if p.is_file() and p.relative_to(served).parts[0] in
            ("sessions", "snapshots", "storage", "versions")]  # fmt: skip
    assert data and all(age.is_sealed(p.read_bytes()) for p in data), [
        p for p in data if not age.is_sealed(p.read_bytes())
    ]
    for path in served.rglob("*"):
        if path.is_file():
            assert b"zanzibar" not in path.read_bytes() and b"title of ses_" not in path.read_bytes(), path
    checked(remote)


def test_a_lost_ledger_stages_a_file_the_mirror_changed_before_it_went_up(
    env: Env, rclone_servers: Servers, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mirror holds a newer (longer) session file than the remote's manifest names, and the ledger is
    gone: the file is replaced (staged, moved in under the intent), never written over in place."""
    from app.backup.remote import site as site_module

    remote = _ahead_without_ledger(env, rclone_servers)
    uploads: list[Any] = []
    monkeypatch.setattr(site_module, "compare", _recording(site_module.compare, uploads))
    sync(remote_context(env.data, remote), DIRTY)
    rel = "sessions/proj1/ses_1.json"
    assert [rel in up.new for up in uploads] == [False]
    assert [rel in up.replaced for up in uploads] == [True]
    checked(remote)


def _ahead_without_ledger(env: Env, servers: Servers) -> Remote:
    """A backup whose mirror is a sync ahead of the remote (uploads held back), its ledger gone."""
    remote, ctx = backed_up(env, servers)
    assert ctx.remote is not None
    f.add_message(f.connect(env.db), "ses_1", "a reply the remote has not seen")
    held = dataclasses.replace(ctx, remote=dataclasses.replace(ctx.remote, held=lambda: "on battery"))
    assert run_sync(held, DIRTY).kind is FailureKind.HELD_BACK
    ctx.remote.close()
    shutil.rmtree(ctx.remote.cache / "ledgers")
    return remote


def test_a_lost_ledger_is_rebuilt_once_without_a_false_warning(
    env: Env,
    rclone_servers: Servers,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The mirror ahead of the remote is the usual case: the comparison that rebuilt the ledger is not
    followed by a second one, nor by a warning that the remote holds another manifest."""
    remote = _ahead_without_ledger(env, rclone_servers)
    real, hashed = rc.Rclone.listing, []

    def listing(self: rc.Rclone, target: str, cancel: threading.Event, *, hashes: bool = False) -> str:
        hashed.append(hashes)
        return real(self, target, cancel, hashes=hashes)

    monkeypatch.setattr(rc.Rclone, "listing", listing)
    caplog.set_level(logging.INFO)
    sync(remote_context(env.data, remote), DIRTY)
    assert hashed.count(True) == 1
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    checked(remote)


def _recording(compare: Any, uploads: list[Any]) -> Any:
    def recorded(*args: Any) -> Any:
        uploads.append(compare(*args))
        return uploads[-1]

    return recorded


class _Killed(BaseException):
    """The process ended here (a kill between rclone's work and the ledger's write)."""


def test_a_delete_cut_before_its_record_puts_the_same_file_up_again_when_it_comes_back(
    env: Env, rclone_servers: Servers, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone deleted a session file and the upload ended before the ledger said so; the session comes
    back byte for byte: the next upload puts it up again, so the remote's manifest names no missing file."""
    remote = remote_for(rclone_servers)
    conn = f.create_db(env.db)
    for sid in ("ses_0", "ses_1"):
        f.add_session(conn, sid)
    f.add_session(conn, "ses_2", time_updated=1_700_000_000_000)
    conn.close()
    ctx = remote_context(env.data, remote)
    sync(ctx)
    f.delete_session(env.db, "ses_2")
    real = rc.Rclone.delete

    def delete(self: rc.Rclone, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise _Killed

    monkeypatch.setattr(rc.Rclone, "delete", delete)
    with pytest.raises(_Killed):
        run_sync(ctx, DIRTY)
    monkeypatch.setattr(rc.Rclone, "delete", real)
    assert ctx.remote is not None
    ctx.remote.close()
    assert not (remote.served / "laptop/sessions/proj1/ses_2.json").exists()
    f.add_session(f.connect(env.db), "ses_2", time_updated=1_700_000_000_000)
    sync(remote_context(env.data, remote), DIRTY)
    assert (remote.served / "laptop/sessions/proj1/ses_2.json").is_file()
    checked(remote)


class _Listed(rc.Rclone):
    """A remote whose listing is ``text`` and whose downloads bring nothing."""

    text = "[]"

    def download(self, *args: Any, **kwargs: Any) -> rc.Said:
        return rc.Said()

    def listing(self, *args: Any, **kwargs: Any) -> str:
        return self.text


def test_a_remote_folder_that_lists_only_what_a_reader_refuses_holds_no_backup(tmp_path: Path) -> None:
    from app.backup.remote.site import RemoteSite
    from app.errors import BackupDamaged

    spec = rc.parse_spec("rclone:nas:backups")
    client = _Listed("rclone", spec, rc.Options())
    client.text = '[{"Path":"../escape.json","Size":1,"IsDir":false}]'
    site = RemoteSite(spec, client, tmp_path / "cache")
    with pytest.raises(BackupDamaged, match="no backup for machine"), view(site, "laptop", Parts.INDEX):
        pass
