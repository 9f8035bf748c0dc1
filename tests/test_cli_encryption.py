"""The ``encryption`` command's words and refusals through the real command line: what it says when
encryption is turned on again, one line (exit 2) for a damaged key file or an unwritable output, and
``enable`` replacing a damaged recipients file as the refusal says."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.crypt import age
from app.crypt.keys import IDENTITY_FILE, RECIPIENTS_FILE
from tests import test_encryption_keys as tk
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
