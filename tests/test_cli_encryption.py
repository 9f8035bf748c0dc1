"""The ``encryption`` command's words and refusals through the real command line: what it says when
encryption is turned on again, and one line (exit 2) for a damaged key file, an unwritable output."""

from __future__ import annotations

from pathlib import Path

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
