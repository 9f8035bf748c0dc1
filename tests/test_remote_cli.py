"""The command line on a backup to an rclone remote, as a user runs it (``python -m app``, the real rclone,
its servers on 127.0.0.1): a setting wrong before anything is tried exits 2 in one line, a sync that failed
exits 1 in one line, and status, list, verify, restore, repair and adopt work as on a folder; so do the
agent tools."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests import dbfactory as f
from tests.backups import Env, make_env, run_cli
from tests.remotes import Remote, Servers, remote_for, use_config
from tests.test_crash_points import home_env

MACHINE = "laptop"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    conn = f.create_db(e.db)
    for i in range(3):
        f.add_session(conn, f"ses_{i}")
    conn.close()
    return e


@pytest.fixture
def remote(rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Remote:
    use_config(rclone_servers, tmp_path, monkeypatch)
    return remote_for(rclone_servers)


def cli(
    spec: str, data: Path, *args: str, machine: str = MACHINE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(spec, machine, data, *args, env=env)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_remote_that_cannot_be_used_is_refused_before_anything_is_tried(
    env: Env, remote: Remote, tmp_path: Path
) -> None:
    unknown = cli("rclone:nope:x", env.data, "sync")
    assert unknown.returncode == 2
    assert "rclone has no remote named 'nope' (yours: t-dav, t-sftp)" in one_line(unknown)
    shown = cli("rclone:nope:x", env.data, "config")
    assert shown.returncode == 2 and "rclone:nope:x  (flag)" in shown.stdout
    assert "error: backupPath rclone:nope:x: rclone has no remote named 'nope'" in shown.stdout
    assert "uploadBandwidthLimit  (not set)" in cli(remote.spec, env.data, "config").stdout
    bad = cli("rclone:t-sftp,user=x:y", env.data, "sync")
    assert bad.returncode == 2 and "connection strings are not accepted" in one_line(bad)
    bin_dir = tmp_path / "no-rclone"
    bin_dir.mkdir()
    for tool in ("rsync", "setpriv"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool) or "", bin_dir / tool)
    without = cli(remote.spec, env.data, "sync", env={"PATH": str(bin_dir)})
    assert without.returncode == 2
    line = one_line(without)
    assert "needs rclone, which is not installed" in line and "apt install rclone" in line
    assert not any(env.tmp.joinpath("home", ".cache").rglob("manifest.json"))  # nothing written


@pytest.mark.parametrize("command", ["verify", "list"])
def test_a_command_that_only_reads_a_remote_says_how_to_install_rclone(
    env: Env, tmp_path: Path, command: str
) -> None:
    """verify and list check no destination before they run; reaching the remote without rclone is the
    same one line as a sync's, with how to install it."""
    bin_dir = tmp_path / "no-rclone"
    bin_dir.mkdir()
    done = cli("rclone:nas:backups", env.data, command, env={"PATH": str(bin_dir)})
    assert done.returncode == 2
    line = one_line(done)
    assert "needs rclone, which is not installed" in line and "apt install rclone" in line
    assert "(from the command line)" in line


def test_a_sync_that_cannot_sign_in_fails_in_one_line_naming_rclone_config(env: Env, remote: Remote) -> None:
    config = Path(os.environ["RCLONE_CONFIG"])
    config.write_text(config.read_text().replace("pass = ", "pass = x", 1))
    done = cli(remote.spec, env.data, "sync")
    assert done.returncode == 1
    line = one_line(done)
    assert "rclone cannot sign in to 't-sftp:'" in line and "rclone config" in line


def test_status_tells_uploaded_from_backed_up_locally(env: Env, remote: Remote) -> None:
    assert cli(remote.spec, env.data, "sync").returncode == 0
    status = cli(remote.spec, env.data, "status").stdout
    assert f"t-sftp:{remote.path}/{MACHINE}" in status
    assert "remote" in status and "t-sftp: (rclone)" in status
    assert re.search(r"^backed up locally +20\d\d-\d\d-\d\d [\d:]+ \(\d+ s ago\)$", status, re.M), status
    assert re.search(r"^uploaded +20\d\d-\d\d-\d\d [\d:]+ \(\d+ s ago\)$", status, re.M), status
    config = Path(os.environ["RCLONE_CONFIG"])
    config.write_text(
        config.read_text().replace(f"port = {remote.server.port}", "port = 9")
    )  # the server is gone
    f.add_message(f.connect(env.db), "ses_1", "not uploaded yet")
    done = cli(remote.spec, env.data, "sync")
    assert done.returncode == 1
    assert "cannot be reached" in one_line(done) and "backed up on this computer" in done.stderr
    status = cli(remote.spec, env.data, "status").stdout
    assert "the newest backup is on this computer only" in status


def test_list_verify_and_repair_read_the_remote(env: Env, remote: Remote) -> None:
    assert cli(remote.spec, env.data, "sync").returncode == 0
    listed = cli(remote.spec, env.data, "list")
    assert listed.returncode == 0 and "3 session(s) backed up" in listed.stdout
    assert cli(remote.spec, env.data, "verify").returncode == 0
    damaged = remote.served / MACHINE / "sessions" / "proj1" / "ses_1.json"
    damaged.write_bytes(damaged.read_bytes().replace(b"hello", b"HELLO"))  # the remote's copy, not ours
    verify = cli(remote.spec, env.data, "verify")
    assert verify.returncode == 1 and "sessions/proj1/ses_1.json: content does not match" in verify.stdout
    repaired = cli(remote.spec, env.data, "repair", "--yes")
    assert repaired.returncode == 0, repaired.stderr
    assert f"uploaded to t-sftp:{remote.path}/{MACHINE}" in repaired.stdout
    assert cli(remote.spec, env.data, "verify").returncode == 0


def test_another_machine_restores_from_the_remote_and_a_reinstall_adopts_its_folder(
    env: Env, remote: Remote, tmp_path: Path
) -> None:
    assert cli(remote.spec, env.data, "sync", machine="old").returncode == 0
    f.delete_session(env.db, "ses_2")
    assert cli(remote.spec, env.data, "sync", "--allow-deletions", machine="old").returncode == 0
    new_home = tmp_path / "new-home"
    other = home_env(new_home)
    plan = cli(remote.spec, env.data, "restore", "--missing", "--dry-run", "--from", "old", env=other)
    assert plan.returncode == 0, plan.stderr
    assert "ses_2" in plan.stdout and "dry run: nothing was changed" in plan.stdout
    assert not list((new_home / ".cache").rglob("views/*"))  # what was downloaded to read it is gone
    # the old computer's folder, claimed by an install of another computer: this one must adopt it
    owner = {"format": "opencode-session-backup-owner/1", "install": "e" * 32, "host": "other-pc",
             "salt": "0" * 32, "computer": "f" * 64}  # fmt: skip
    (tmp_path / "owner.json").write_text(json.dumps(owner))
    there = f"t-sftp:{remote.path}/old/owner.json"
    subprocess.run(["rclone", "copyto", str(tmp_path / "owner.json"), there], check=True)
    refused = cli(remote.spec, env.data, "sync", machine="old", env=other)
    assert refused.returncode == 1 and "opencode-backup adopt" in one_line(refused)
    adopted = cli(remote.spec, env.data, "adopt", "--yes", machine="old", env=other)
    assert adopted.returncode == 0, adopted.stderr
    assert f"uploaded to t-sftp:{remote.path}/old" in adopted.stdout
    assert cli(remote.spec, env.data, "sync", machine="old", env=other).returncode == 0
    assert json.loads((remote.served / "old" / "owner.json").read_text())["install"] != "e" * 32


class Call:
    """A tool call's context for the agent tools run in this process."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.said: list[str] = []

    def progress(self, message: str) -> None:
        self.said.append(message)


def test_the_agent_tools_back_up_report_and_plan_a_restore_on_a_remote(
    env: Env, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.mcp import actions

    flags = {"backupPath": remote.spec, "source": str(env.data), "machineName": MACHINE}
    done = actions.sync(flags, False, Call())
    assert not done.is_error, done.text
    assert (remote.served / MACHINE / "manifest.json").is_file()
    status = actions.status(flags)
    assert f"Backup path: t-sftp:{remote.path}/{MACHINE}" in status.text
    assert "Uploaded to the remote t-sftp:" in status.text and "Backed up on this computer:" in status.text
    f.delete_session(env.db, "ses_0")
    plan = actions.restore(flags, False, (), Call())
    assert not plan.is_error and "ses_0" in plan.text and "nothing has been changed" in plan.text
