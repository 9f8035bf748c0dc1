"""The whole service in-process (real watcher, worker, rsync) and the commands that reach it."""

from __future__ import annotations

import json
import queue
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import paths
from app.__main__ import main
from app.backup.progress import Progress, Sink, Step
from app.backup.result import Outcome, SyncResult
from app.backup.sync import SyncContext, SyncOptions
from app.errors import FailureKind
from app.service import client, control
from app.service.events import Quit
from app.service.retry import Backoff, EpisodeEvent, FailingSince, Grace, Recovered
from app.service.runtime import Runtime
from app.service.service import Service, Timing
from app.service.status import ServiceState, Status, StatusFile, read_status
from app.service.worker import Job, Worker
from tests import dbfactory as f
from tests.backups import Env

FAST = Timing(delay=0.2, interval=0.6, backoff=Backoff(0.2, 0.4), grace=Grace(seconds=1.5, failures=1000))


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Recorder:
    def __init__(self) -> None:
        self.events: list[EpisodeEvent] = []

    def episode(self, event: EpisodeEvent) -> None:
        self.events.append(event)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = Env(tmp_path)
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    conn.close()
    return env


def make_ctx(env: Env) -> SyncContext:
    """As the app wires it (this user's state folder), with real rsync."""
    return env.context(paths.app_state_dir(), engine="rsync")


@pytest.fixture
def service(env: Env) -> Iterator[tuple[Runtime, Recorder]]:
    """A running service, holding the instance lock as ``run`` does."""
    lock = control.InstanceLock(paths.app_state_dir())
    assert lock.acquire()
    rec = Recorder()
    rt = Runtime(make_ctx(env), timing=FAST, notifier=rec, control_poll=0.05)
    rt.start()
    try:
        wait_until(
            lambda: rt.status.syncs >= 1 and rt.status.state is ServiceState.IDLE, what="start-up sync"
        )
        yield rt, rec
    finally:
        assert rt.stop()
        lock.release()


def session_file(env: Env) -> Path:
    return env.dest / "laptop" / "sessions" / "proj1" / "ses_a.json"


def backup_text(env: Env) -> str:
    """The session's backup file ('' while a sync swaps it)."""
    try:
        return session_file(env).read_text()
    except FileNotFoundError:
        return ""


def add_message(env: Env, text: str) -> None:
    conn = sqlite3.connect(env.db, isolation_level=None)
    try:
        f.add_message(conn, "ses_a", text)
    finally:
        conn.close()


def cli(capsys: pytest.CaptureFixture[str], env: Env, *argv: str) -> tuple[int, str, str]:
    """Run a command; the settings flags go where they apply (the service commands take none)."""
    capsys.readouterr()
    flags = ["--backup-path", str(env.dest), "--source", str(env.data), "--machine-name", "laptop"]
    rc = main([*argv] if argv[0] in ("pause", "resume", "sync-now") else [*flags, *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_change_is_backed_up_and_status_shows_the_live_service(
    service: tuple[Runtime, Recorder], env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    rt, _ = service
    add_message(env, "first change")
    wait_until(lambda: "first change" in backup_text(env), what="change in the backup")
    wait_until(lambda: rt.status.state is ServiceState.IDLE)
    rc, out, _ = cli(capsys, env, "status", "--json")
    data = json.loads(out)
    assert rc == 0 and data["service"] == "idle" and data["syncs_this_session"] >= 2
    assert data["last_result"] == "ok" and data["pending"] == 0 and data["next_retry"] is None
    assert data["sessions_backed_up"] == 1


def test_pause_resume_and_sync_reach_the_running_service(
    service: tuple[Runtime, Recorder], env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    rt, _ = service
    rc, out, _ = cli(capsys, env, "pause")
    assert rc == 0 and rt.status.state is ServiceState.PAUSED
    add_message(env, "while paused")
    time.sleep(1.5)
    assert "while paused" not in backup_text(env)
    assert rt.status.pending >= 1
    rc, _, _ = cli(capsys, env, "resume")
    assert rc == 0
    wait_until(lambda: "while paused" in backup_text(env), what="sync after resume")
    before = rt.status.syncs
    add_message(env, "synced by the command line")
    rc, out, err = cli(capsys, env, "sync")
    assert rc == 0 and out.startswith("ok: "), (out, err)
    assert "synced by the command line" in backup_text(env)
    assert rt.status.syncs > before  # the service ran it: no race for the sync lock
    rc, out, _ = cli(capsys, env, "sync-now")
    assert rc == 0


def test_a_second_run_says_one_line_and_exits_1(
    service: tuple[Runtime, Recorder], env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = cli(capsys, env, "run", "--headless")
    assert rc == 1 and out == ""
    assert err.strip().count("\n") == 0 and "already running" in err


def test_commands_without_a_service_say_so_and_status_falls_back_to_the_manifest(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = cli(capsys, env, "pause")
    assert rc == 1 and "no backup service is running" in err
    assert cli(capsys, env, "sync")[0] == 0  # runs the sync itself
    rc, out, _ = cli(capsys, env, "status", "--json")
    data = json.loads(out)
    assert data["service"] == "not running" and data["last_result"] == "ok"
    assert data["sessions_backed_up"] == 1


def test_an_unwritable_destination_retries_alerts_once_and_recovers(
    service: tuple[Runtime, Recorder], env: Env
) -> None:
    rt, rec = service
    target = session_file(env)
    if subprocess.run(["chattr", "+i", str(target)], check=False, capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        add_message(env, "blocked change")
        wait_until(lambda: rt.status.state is ServiceState.RETRYING, what="retrying")
        assert rt.status.next_retry is not None and rt.status.last_outcome is Outcome.FAILED
        live = read_status(paths.app_state_dir())
        assert live is not None and live.state in (ServiceState.RETRYING, ServiceState.SYNCING)
        wait_until(lambda: rec.events != [], timeout=10, what="the alert")
        time.sleep(1.5)  # several more failed retries: still one alert
        assert [type(e) for e in rec.events] == [FailingSince]
        assert rec.events[0].failures >= 2
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    wait_until(lambda: len(rec.events) == 2, what="recovered")
    assert isinstance(rec.events[1], Recovered)
    wait_until(lambda: rt.status.state is ServiceState.IDLE)
    assert "blocked change" in target.read_text()
    assert rt.status.failing_since is None and rt.status.last_outcome is Outcome.OK


def test_quit_cancels_a_running_sync_and_every_thread_stops() -> None:
    cancel = threading.Event()
    started = threading.Event()

    def slow_sync(options: SyncOptions, _progress: Sink) -> SyncResult:
        started.set()
        cancel.wait(60)  # the real engine's runner signals rsync and waits for it the same way
        return SyncResult.failure(datetime.now(UTC), FailureKind.FATAL, "the sync was cancelled")

    jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
    svc = Service(jobs.put, cancel=cancel.set)
    worker = Worker(slow_sync, svc.post, cancel)
    svc.start()
    worker.submit(jobs.get(timeout=5))
    worker.start()
    assert started.wait(5)
    t0 = time.monotonic()
    svc.post(Quit())
    assert svc.join(5)
    worker.stop()
    assert worker.join(5)
    assert time.monotonic() - t0 < 5 and svc.status.state is ServiceState.STOPPED


def test_before_opencode_ever_ran_the_service_waits_calmly_and_backs_up_the_first_session(
    tmp_path: Path,
) -> None:
    """A user installs the backup before using opencode: no failure, no notification, no retry timer;
    the first session opencode saves is in the backup within the usual delay."""
    env = Env(tmp_path)  # opencode's data folder does not exist yet
    rec = Recorder()
    rt = Runtime(make_ctx(env), timing=FAST, notifier=rec, control_poll=0.05)
    rt.start()
    try:
        wait_until(lambda: rt.status.state is ServiceState.NO_DATA_YET, what="the calm waiting state")
        st = rt.status
        assert st.last_outcome is Outcome.NOTHING_YET and st.next_retry is None and st.failing_since is None
        assert st.last_backup is None and st.last_error is None
        time.sleep(FAST.grace.seconds + 0.5)  # longer than any failure would take to be announced
        assert rec.events == [] and rt.status.state is ServiceState.NO_DATA_YET
        conn = f.create_db(env.db)  # opencode's first start: mkdir -p, then the database
        f.add_session(conn, "ses_a")
        conn.close()
        wait_until(lambda: session_file(env).is_file(), what="the first session in the backup")
        wait_until(lambda: rt.status.state is ServiceState.IDLE and rt.status.last_backup is not None)
        assert rec.events == []
    finally:
        assert rt.stop()


def test_data_that_was_backed_up_and_is_gone_is_a_failure_that_names_the_folder(
    env: Env,
) -> None:
    rec = Recorder()
    rt = Runtime(make_ctx(env), timing=FAST, notifier=rec, control_poll=0.05)
    rt.start()
    try:
        wait_until(lambda: rt.status.last_backup is not None, what="the first backup")
        for name in ("opencode.db", "opencode.db-wal", "opencode.db-shm"):
            (env.data / name).unlink(missing_ok=True)
        env.data.rmdir()
        wait_until(lambda: bool(rec.events), timeout=15, what="the failure alert")
        alert = rec.events[0]
        assert isinstance(alert, FailingSince) and alert.kind is FailureKind.SOURCE_MISSING
        assert str(env.data) in alert.message
        assert rt.status.state in (ServiceState.RETRYING, ServiceState.SYNCING)
    finally:
        assert rt.stop()


def test_a_command_for_another_backup_does_its_own_work_and_reports_only_that(
    service: tuple[Runtime, Recorder],
    env: Env,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The running service backs up to env.dest; a sync named for another folder must go there."""
    rt, _ = service
    other = tmp_path / "elsewhere"
    syncs = rt.status.syncs
    capsys.readouterr()
    args = ["--backup-path", str(other), "--source", str(env.data), "--machine-name", "m2"]
    assert main(["sync", *args]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    assert (other / "m2" / "sessions" / "proj1" / "ses_a.json").is_file()
    assert rt.status.syncs == syncs  # the service did not do it
    assert main(["status", "--json", *args]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["service"].startswith("running for another backup") and data["syncs_this_session"] == 0
    assert data["sessions_backed_up"] == 1 and data["machine_dir"] == str(other / "m2")


def test_status_works_while_the_backup_drive_is_unplugged_and_the_service_retries(
    env: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    drive = tmp_path / "GoogleDrive"
    env = replace(env, backup=drive / "opencode-sessions")
    lock = control.InstanceLock(paths.app_state_dir())
    assert lock.acquire()
    rt = Runtime(make_ctx(env), timing=FAST, notifier=Recorder(), control_poll=0.05)
    rt.start()
    try:
        wait_until(lambda: rt.status.state is ServiceState.RETRYING, what="retrying")
        for argv in (["status"], ["status", "--json"]):
            capsys.readouterr()
            assert main([*argv, "--backup-path", str(env.dest), "--source", str(env.data),
                         "--machine-name", "laptop"]) == 0  # fmt: skip
            out = capsys.readouterr().out
            assert "not reachable" in out or '"backup_reachable": false' in out, out
        assert not drive.exists()  # nothing was created in the drive's place
    finally:
        assert rt.stop()
        lock.release()


def test_a_first_sync_shows_how_far_it_has_got_in_the_status_and_the_status_file(
    env: Env,
) -> None:
    conn = sqlite3.connect(env.db, isolation_level=None)
    for i in range(30):
        f.add_session(conn, f"ses_{i:02d}")
    conn.close()
    seen: list[Progress] = []
    in_file: list[Progress] = []

    def listen(status: Status) -> None:
        if status.progress is not None:
            seen.append(status.progress)
            written = read_status(paths.app_state_dir())  # the status file is written first
            if written is not None and written.progress is not None:
                in_file.append(written.progress)

    lock = control.InstanceLock(paths.app_state_dir())
    assert lock.acquire()
    rt = Runtime(make_ctx(env), timing=FAST, listeners=[listen], control_poll=0.05)
    rt.start()
    try:
        wait_until(lambda: rt.status.syncs >= 1 and rt.status.state is ServiceState.IDLE, what="first sync")
        assert rt.status.progress is None  # nothing runs: nothing to show
    finally:
        assert rt.stop()
        lock.release()
    sessions = [p for p in seen if p.step is Step.SESSIONS]
    assert sessions and sessions[-1].done == sessions[-1].total == 31
    assert Step.COPYING in {p.step for p in seen}
    assert in_file and in_file[-1] == seen[-1]


def test_a_sync_asked_of_the_service_shows_the_services_progress_while_the_caller_waits(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """`opencode-backup sync` with a service running: the waiting command sees how far the service's
    sync has got, and so does `status` (the sync goes on only once the caller has seen it, so nothing
    here is timed)."""
    state_dir = paths.app_state_dir()
    seen = threading.Event()
    halfway = Progress(Step.SESSIONS, 900, 1800, 20.0)

    def long_sync(options: SyncOptions, progress: Sink) -> SyncResult:
        progress(halfway)
        assert seen.wait(10), "the caller never saw the progress"
        now = datetime.now(UTC)
        return SyncResult(Outcome.OK, now, now, sessions_total=1800)

    cancel = threading.Event()
    jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
    svc = Service(
        jobs.put,
        cancel=cancel.set,
        reply=lambda rid, result: control.write_reply(state_dir, rid, result),
        listeners=[StatusFile(state_dir)],
        startup_sync=False,
        source=str(env.data),
        destination=str(env.dest / "laptop"),
    )
    worker = Worker(long_sync, svc.post, cancel)
    inbox = control.ControlThread(state_dir, svc.post, 0.05)
    lock = control.InstanceLock(state_dir)
    assert lock.acquire()
    shown: list[Progress] = []

    said: list[tuple[int, str, str]] = []

    def show(progress: Progress) -> None:
        shown.append(progress)
        if not seen.is_set():
            said.append(cli(capsys, env, "status"))
        seen.set()

    try:
        for part in (svc, worker, inbox):
            part.start()
        threading.Thread(target=lambda: worker.submit(jobs.get(timeout=10)), daemon=True).start()
        result = client.sync_via_service(state_dir, False, False, timeout=20, progress=show)
    finally:
        svc.post(Quit())
        assert svc.join(5)
        worker.stop()
        inbox.stop()
        lock.release()
    assert result is not None and result.ok and result.sessions_total == 1800
    assert shown and shown[0] == halfway
    rc, out, _err = said[0]
    assert rc == 0 and re.search(
        r"^progress +backing up sessions: 900 of 1,800, about 20 s left$", out, re.M
    ), out


def test_a_command_file_nested_100000_deep_is_dropped_and_the_inbox_keeps_working(tmp_path: Path) -> None:
    """A RecursionError in the control thread would have ended it: the service deaf to every command."""
    state_dir = tmp_path / "state"
    posted: list[object] = []
    inbox = control.ControlThread(state_dir, posted.append, 0.02)
    inbox.start()
    try:
        deep = control.service_dir(state_dir) / "inbox" / "0-deep.json"
        deep.write_text("[" * 100_000 + "]" * 100_000)
        control.send(state_dir, "pause")
        wait_until(lambda: bool(posted), what="the pause after the deep file")
    finally:
        inbox.stop()
    assert not deep.exists() and len(posted) == 1
