"""Helpers shared by the tests that back up a small opencode and then damage, heal or read the backup: a
sync context of one install, and the real command line on one machine folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app import paths
from app.backup.sync import SyncContext
from app.transfer import make_engine

ROOT = Path(__file__).resolve().parent.parent
TAKES_SOURCE = ("sync", "status", "list", "restore")  # the commands that read opencode's data folder


def sync_context(
    backup: Path, machine: str, source: Path, state: Path | None = None, **kw: Any
) -> SyncContext:
    """A sync into ``backup/machine`` with the native engine; ``state``: the install's own state folder
    (its own install id; default: this test's app state folder, the command line's)."""
    state = paths.app_state_dir() if state is None else state
    return SyncContext(
        backup_path=backup,
        machine=machine,
        source=source,
        opencode_db=None,
        staging_dir=state / "staging",
        state_dir=state,
        engine=make_engine("native"),
        **kw,
    )


def run_cli(
    backup: Path, machine: str, source: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` on ``backup/machine`` (``--source`` for the commands that take it), with no
    terminal on stdin; stdout and stderr as text (undecodable bytes kept as surrogates)."""
    flags = ["--backup-path", str(backup), "--machine-name", machine]
    if args[0] in TAKES_SOURCE:
        flags += ["--source", str(source)]
    return subprocess.run(
        [sys.executable, "-m", "app", *args, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
