"""A backup to a remote against the real opencode (npm opencode-ai, pinned): a session deleted on one computer
comes back on another (its own HOME, no mirror, nothing but the remote) with an identical ``opencode
export``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.peer.opencode import OpencodePeer
from tests.remotes import Servers, remote_for, use_config

pytestmark = pytest.mark.opencode
REPO = Path(__file__).resolve().parent.parent


def cli(peer: OpencodePeer, spec: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` as the user of ``peer`` runs it (its HOME, its opencode), on ``spec``."""
    env = {**peer.env, "OPENCODE_BACKUP_PATH": spec, "RCLONE_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_second_home_restores_a_deleted_session_from_the_remote(
    opencode_peer: OpencodePeer,
    make_opencode_peer: Callable[[], OpencodePeer],
    rclone_servers: Servers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = use_config(rclone_servers, tmp_path, monkeypatch)
    remote = remote_for(rclone_servers, "t-dav")
    old = opencode_peer
    kept = old.create_session("kept on the laptop", prompts=1, todo=False)
    lost = old.create_session("deleted by mistake", prompts=2, todo=True)
    before = old.export(lost)
    done = cli(old, remote.spec, config, "sync", "--machine-name", "laptop")
    assert done.returncode == 0, done.stderr
    old.delete_session(lost)
    done = cli(old, remote.spec, config, "sync", "--machine-name", "laptop", "--allow-deletions")
    assert done.returncode == 0, done.stderr
    assert not list((remote.served / "laptop" / "sessions").rglob(f"{lost}.json"))  # only in versions/ now

    new = make_opencode_peer()  # another computer: its own HOME, its own opencode, an empty cache
    listed = cli(new, remote.spec, config, "list", "--machine-name", "laptop")
    assert listed.returncode == 0, listed.stderr
    assert lost in listed.stdout and "[deleted; last copy in versions/]" in listed.stdout
    done = cli(
        new, remote.spec, config, "restore", lost, "--yes", "--from", "laptop", "--machine-name", "desk"
    )
    assert done.returncode == 0, done.stderr
    assert new.export(lost) == before
    assert kept not in {s["id"] for s in new.list_sessions()}  # only what was asked for
