"""The live service on a backup to an rclone remote: the server stops in the middle of its work, the service
keeps backing up locally, says "retrying" (once, after its grace) and catches up by itself when the
server is back; a stopped service gives the remote's writer lease back; uploads held back as the user
asked are never alerted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import paths
from app.backup.verify import verify
from app.errors import FailureKind
from app.service import control
from app.service.retry import Episodes, FailingSince, Grace, Recovered
from app.service.runtime import Runtime
from app.service.status import ServiceState
from app.transfer.rclone_log import Said, problem
from app.ui.notify import episode_note
from app.ui.presenter import tooltip
from tests import dbfactory as f
from tests.backups import make_env
from tests.remotes import Servers, remote_context, remote_for, use_config
from tests.test_service_live import FAST, Recorder, wait_until


def test_the_server_stops_mid_work_the_service_retries_and_catches_up_when_it_is_back(
    rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(rclone_servers, tmp_path, monkeypatch)
    remote = remote_for(rclone_servers, "t-sftp")
    env = make_env(tmp_path)
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    ctx = remote_context(env.data, remote, resident=True)  # as runtime_for builds it
    lock = control.InstanceLock(paths.app_state_dir())
    assert lock.acquire()
    rec = Recorder()
    rt = Runtime(ctx, timing=FAST, notifier=rec, control_poll=0.05)
    rt.start()
    server = rclone_servers.sftp
    try:
        wait_until(
            lambda: rt.status.syncs >= 1 and rt.status.state is ServiceState.IDLE, what="start-up sync"
        )
        assert (remote.served / "laptop" / "writer.lease").is_file()  # held while the service runs
        server.stop()
        f.add_message(conn, "ses_a", "written while the server is down")
        wait_until(lambda: rt.status.state is ServiceState.RETRYING, what="retrying")
        assert rt.status.last_kind is FailureKind.OFFLINE
        words = tooltip(rt.status, True, False, datetime.now(UTC))
        assert words.startswith("Backup remote not reachable — retrying"), words
        mirror_copy = ctx.machine_dir / "sessions" / "proj1" / "ses_a.json"
        assert "written while the server is down" in mirror_copy.read_text()  # backed up locally
        wait_until(lambda: rec.events != [], what="the alert")
        assert [type(e) for e in rec.events] == [FailingSince] and rec.events[0].kind is FailureKind.OFFLINE
    finally:
        if server.proc is None:
            server.start()
    try:
        wait_until(lambda: len(rec.events) == 2, what="recovered")
        assert isinstance(rec.events[1], Recovered)
        wait_until(lambda: rt.status.state is ServiceState.IDLE, what="idle")
        served = remote.served / "laptop" / "sessions" / "proj1" / "ses_a.json"
        assert "written while the server is down" in served.read_text()
        assert verify(remote.served / "laptop", "laptop", tmp_path / "verify").ok
    finally:
        assert rt.stop()
        lock.release()
        conn.close()
    assert not (remote.served / "laptop" / "writer.lease").exists()  # given back when it stopped


def test_uploads_held_back_as_asked_are_retried_and_never_alerted() -> None:
    grace = Grace(seconds=1.0, failures=2)
    episodes = Episodes(grace)
    wall = datetime.now(UTC)
    for i in range(5):
        assert episodes.failure(i * 60.0, wall, FailureKind.HELD_BACK, "on battery") is None
    assert episodes.alert_due_at() is None and episodes.check(1e6) is None
    assert episodes.success(wall) is None  # nothing was said, so no "works again" either
    assert FailureKind.HELD_BACK.retryable and not FailureKind.HELD_BACK.needs_a_person


def test_a_sign_in_that_failed_is_said_at_once_with_what_to_run() -> None:
    # what rclone logs when Google Drive revoked its token (its words, as its JSON log carries them)
    said = Said(errors=('couldn\'t fetch token: invalid_grant: maybe token expired? - try refreshing with '
                        '"rclone config reconnect gdrive:"',))  # fmt: skip
    told = problem(1, said, "gdrive", "gdrive:opencode-backup")
    assert told is not None
    kind, line = told
    assert kind is FailureKind.SIGN_IN and "run 'rclone config reconnect gdrive:'" in line
    episodes = Episodes(Grace())
    alert = episodes.failure(0.0, datetime.now(UTC), kind, line)
    assert isinstance(alert, FailingSince)  # a person must act: no grace
    note = episode_note(alert)
    assert note.title == "rclone cannot sign in to the backup remote" and note.body == line
