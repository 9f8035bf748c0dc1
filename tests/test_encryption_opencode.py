"""Encryption with the real opencode (npm opencode-ai, pinned) and the real command line: what the backup
folder shows to someone without the key, the standard ``age`` tool opening a session file, and a new
computer that has only the recovery key bringing a deleted session back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.crypt import age
from tests.backups import ROOT
from tests.peer.opencode import OpencodePeer
from tests.test_encryption_keys import NO_KEYRING, home_env

pytestmark = pytest.mark.opencode
TITLE = "Zanzibar quarterly plan 7731"
WORDS = "ZEBRAFISH-9127 the merger with Quokka Holdings"


@pytest.fixture(scope="module")
def sessions(opencode_peer: OpencodePeer) -> list[str]:
    peer = opencode_peer
    first = peer.create_session(TITLE, prompts=2, todo=True)
    peer.prompt(first, WORDS)
    peer.wait_settled(first)
    return [first, peer.create_session("another session", prompts=1, todo=False)]


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip


def flags(peer: OpencodePeer, dest: Path) -> list[str]:
    return ["--backup-path", str(dest), "--machine-name", "laptop", "--source", str(peer.data_dir)]


@pytest.fixture(scope="module")
def encrypted(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """This computer (the peer's own HOME) backs up with encryption on; the recovery key in a file."""
    base = tmp_path_factory.mktemp("encrypted")
    env = {**opencode_peer.env, **NO_KEYRING}
    dest = base / "backup"
    first = cli(
        env, "sync", "--snapshot", *flags(opencode_peer, dest)
    )  # a plain backup first: enable converts it
    assert first.returncode == 0, first.stderr
    out = cli(
        env,
        "encryption",
        "enable",
        "--yes",
        "--recovery-file",
        str(base / "recovery.txt"),
        *flags(opencode_peer, dest),
    )
    assert out.returncode == 0, out.stderr
    assert "re-encrypted" in out.stdout
    return {"base": base, "dest": dest, "recovery": base / "recovery.txt"}


def test_nothing_distinctive_is_in_any_byte_of_the_backup_folder(
    opencode_peer: OpencodePeer, encrypted: dict[str, Path]
) -> None:
    files = [p for p in encrypted["dest"].rglob("*") if p.is_file()]
    assert any("sessions/" in p.as_posix() for p in files) and any(
        "snapshots/" in p.as_posix() for p in files
    )
    needles = [TITLE, "Zanzibar", "ZEBRAFISH-9127", "Quokka", str(opencode_peer.project), "prompt 0"]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, (path, needle)


def test_the_age_command_decrypts_a_session_file_to_what_a_plain_backup_holds(
    opencode_peer: OpencodePeer, sessions: list[str], encrypted: dict[str, Path], tmp_path: Path
) -> None:
    peer = opencode_peer
    env = {**peer.env, **NO_KEYRING}
    assert shutil.which("age") == "/usr/bin/age", "Debian's age (see .ci/tools)"
    exported = cli(
        env,
        "encryption",
        "export-key",
        "--output",
        str(tmp_path / "key.txt"),
        *flags(peer, encrypted["dest"]),
    )
    assert exported.returncode == 0, exported.stderr
    plain_env = {**env, "OPENCODE_BACKUP_ENCRYPTION": "0"}  # the same computer, a plain backup elsewhere
    plain = cli(plain_env, "sync", *flags(peer, tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    again = cli(env, "sync", *flags(peer, encrypted["dest"]))  # both now hold the same state of opencode
    assert again.returncode == 0, again.stderr
    sid = sessions[0]
    sealed = next((encrypted["dest"] / "laptop" / "sessions").rglob(f"{sid}.json"))
    opened = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "key.txt"), str(sealed)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    clear = next((tmp_path / "plain" / "laptop" / "sessions").rglob(f"{sid}.json")).read_bytes()
    assert json.loads(opened.stdout) == json.loads(clear)
    assert json.loads(opened.stdout)["title"] == TITLE


def test_a_new_computer_with_only_the_recovery_key_restores_a_deleted_session(
    opencode_peer: OpencodePeer, sessions: list[str], encrypted: dict[str, Path], tmp_path: Path
) -> None:
    peer, sid = opencode_peer, sessions[0]
    before = peer.export(sid)
    newcomer = home_env(tmp_path / "new-laptop", **NO_KEYRING)
    where = [*flags(peer, encrypted["dest"])]
    locked = cli(newcomer, "restore", sid, "--yes", *where)
    assert locked.returncode == 2 and "encryption unlock" in locked.stderr
    wrong, _ = age.new_identity()
    refused = cli(newcomer, "encryption", "unlock", *where, stdin=wrong)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new-laptop" / ".config" / "opencode-session-backup").exists()
    unlocked = cli(newcomer, "encryption", "unlock", "--recovery-file", str(encrypted["recovery"]), *where)
    assert unlocked.returncode == 0, unlocked.stderr
    peer.delete_session(sid, via="cli")
    assert peer.count_rows("session", "id = ?", (sid,)) == 0
    listed = cli(newcomer, "list", "--json", *where)
    assert TITLE in listed.stdout
    restored = cli(newcomer, "restore", sid, "--yes", *where)
    assert restored.returncode == 0, restored.stderr
    assert peer.export(sid) == before
