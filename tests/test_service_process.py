"""``python -m app run --headless`` as a real process: it syncs, answers commands, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import paths
from app.service.status import ServiceState, read_status
from tests import dbfactory as f

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_run_headless_syncs_and_stops_within_5_s_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "opencode"
    f.add_session(f.create_db(data / "opencode.db"), "ses_a")
    dest = tmp_path / "backup"
    args = ["--backup-path", str(dest), "--source", str(data), "--machine-name", "laptop"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "run", "--headless", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        state_dir = paths.app_state_dir()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            live = read_status(state_dir)
            if live is not None and live.syncs >= 1 and live.state is ServiceState.IDLE:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no start-up sync: {read_status(state_dir)}")
        assert (dest / "laptop" / "sessions" / "proj1" / "ses_a.json").is_file()
        second = subprocess.run(
            [sys.executable, "-m", "app", "run", "--headless", *args],
            env=env,
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1 and second.stderr.count("\n") == 1
        assert f"already running (pid {proc.pid})" in second.stderr
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _out, err = proc.communicate()
    assert rc == 0, err
    stopped = read_status(state_dir)
    assert stopped is not None and stopped.state is ServiceState.STOPPED and stopped.syncs >= 1
    assert b"sync ok" in err  # headless mode logs what it does


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_run_starts_before_the_backup_drive_is_mounted_and_retries(tmp_path: Path) -> None:
    data = tmp_path / "opencode"
    f.add_session(f.create_db(data / "opencode.db"), "ses_a")
    drive = tmp_path / "GoogleDrive"  # not there yet, as at login before Drive has started
    args = ["--backup-path", str(drive / "opencode-sessions"), "--source", str(data), "--machine-name", "m"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "run", "--headless", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        state_dir = paths.app_state_dir()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            live = read_status(state_dir)
            if live is not None and live.state is ServiceState.RETRYING:
                break
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        else:
            raise AssertionError(f"never retrying: {read_status(state_dir)}")
        assert live is not None and live.next_retry
        assert not drive.exists()  # nothing was created on the local disk in the drive's place
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proc.communicate()


def test_the_service_never_imports_desktop_libraries() -> None:
    code = (
        "import sys, app.cli, app.cli.run, app.wiring, app.service.runtime, app.service.watcher;"
        "bad = [m for m in ('pystray', 'plyer', 'tkinter', 'PIL', 'gi') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
