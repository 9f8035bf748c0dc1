"""The ``encryption`` command's words and refusals through the real command line: what it says when
encryption is turned on again, one line (exit 2) for a damaged key file or an unwritable output, and
``enable`` replacing a damaged recipients file as the refusal says."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.crypt import age
from app.crypt.keys import IDENTITY_FILE, RECIPIENTS_FILE
from tests import test_encryption_keys as tk
from tests.backups import ROOT
from tests.test_encryption_keys import cli

world = tk.world  # the fixture: an encrypted backup made by this install (home ``a``), its recovery key


def test_enable_after_disable_says_the_keys_made_before_are_used_again(world: dict[str, object]) -> None:
    tmp, env = world["tmp"], world["env"]
    assert isinstance(tmp, Path) and isinstance(env, dict)
    assert cli(env, tmp, "encryption", "disable", "--yes").returncode == 0
    again = cli(env, tmp, "encryption", "enable", "--yes")
    assert again.returncode == 0, again.stderr
    assert "the keys this computer made before" in again.stdout
    assert "unlocked with" not in again.stdout  # it never was
    assert "AGE-SECRET-KEY" not in again.stdout  # no new recovery key


def one_line_refusal(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1 and words in out.stderr, out.stderr


def test_a_damaged_key_file_or_an_unwritable_output_is_one_line_with_exit_2(world: dict[str, object]) -> None:
    tmp, env = world["tmp"], world["env"]
    assert isinstance(tmp, Path) and isinstance(env, dict)
    one_line_refusal(
        cli(env, tmp, "encryption", "export-key", "--output", str(tmp / "recovery.txt" / "keys.txt")),
        "cannot write the keys to",
    )
    (tmp / "a" / ".config" / "opencode-session-backup" / IDENTITY_FILE).write_text(
        "AGE-SECRET-KEY-1NOTAKEY\n"
    )
    for args in (("export-key", "--output", str(tmp / "keys.txt")), ("status",)):
        one_line_refusal(cli(env, tmp, "encryption", *args), "not an age secret key")


def test_a_damaged_recipients_file_is_one_line_and_enable_replaces_it_as_it_says(
    world: dict[str, object],
) -> None:
    tmp, env = world["tmp"], world["env"]
    assert isinstance(tmp, Path) and isinstance(env, dict)
    (tmp / "a" / ".config" / "opencode-session-backup" / RECIPIENTS_FILE).write_text("{not json")
    _secret, friend = age.new_identity()
    one_line_refusal(cli(env, tmp, "encryption", "add-recipient", friend), "encryption enable' again")
    assert "add any other recipient again" in cli(env, tmp, "encryption", "add-recipient", friend).stderr
    recovery = tmp / "new-recovery.txt"
    again = cli(env, tmp, "encryption", "enable", "--yes", "--recovery-file", str(recovery))
    assert again.returncode == 0, again.stderr
    secret = recovery.read_text().split("AGE-SECRET-KEY-1", 1)[1].split()[0]
    for path in (tmp / "backup" / "box" / "sessions").rglob("*.json"):  # the new recovery key opens them
        assert age.decrypt(path.read_bytes(), ["AGE-SECRET-KEY-1" + secret], path.name)
    assert cli(env, tmp, "encryption", "add-recipient", friend).returncode == 0


def test_export_key_never_writes_over_an_existing_name_a_dangling_link_included(
    world: dict[str, object],
) -> None:
    tmp, env = world["tmp"], world["env"]
    assert isinstance(tmp, Path) and isinstance(env, dict)
    link = tmp / "keys.txt"
    link.symlink_to(tmp / "elsewhere.txt")  # exists() says no: only creating it exclusively tells
    one_line_refusal(cli(env, tmp, "encryption", "export-key", "--output", str(link)), "exists")
    assert link.is_symlink() and not (tmp / "elsewhere.txt").exists()


def test_unlock_reads_the_recovery_key_piped_on_stdin(world: dict[str, object]) -> None:
    """On a terminal the key is read unechoed (getpass); piped, it is read from stdin as it comes."""
    tmp, recovery = world["tmp"], world["recovery"]
    assert isinstance(tmp, Path) and isinstance(recovery, Path)
    other = tk.home_env(tmp / "b", **tk.NO_KEYRING)
    unlock = cli(other, tmp, "encryption", "unlock", stdin=recovery.read_text())
    assert unlock.returncode == 0, unlock.stderr
    assert "a title nobody may read" in cli(other, tmp, "list", "--json").stdout


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="a pseudo-terminal (POSIX)")
def test_unlock_on_a_terminal_does_not_echo_the_key(tmp_path: Path) -> None:
    """A terminal (a pty, the child's stdin, no controlling terminal so getpass uses it) gets the prompt
    and none of the key typed: nothing of it is left in the scrollback."""
    master, slave = os.openpty()
    argv = [sys.executable, "-m", "app", "encryption", "unlock", "--backup-path", str(tmp_path / "backup")]
    child = subprocess.Popen(
        argv, cwd=ROOT, env=tk.home_env(tmp_path / "h", **tk.NO_KEYRING), stdin=slave,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    assert child.stderr is not None
    prompt, deadline = b"", time.monotonic() + 60
    while b"press Enter" not in prompt and time.monotonic() < deadline:
        if select.select([child.stderr], [], [], 1)[0]:
            prompt += os.read(child.stderr.fileno(), 4096)
    assert b"press Enter" in prompt
    os.write(master, b"AGE-SECRET-KEY-1TYPEDSECRET\n")  # not a key: refused, but never shown
    child.communicate(timeout=60)
    shown = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert child.returncode == 2 and b"TYPEDSECRET" not in shown, shown
