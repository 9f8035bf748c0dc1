"""What the tests that back up an opencode share: the one factory of a sync context (:func:`sync_context`),
one test's opencode and backup folders (:class:`Env`), and the real command line on one machine folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths
from app.backup.sync import SyncContext
from app.transfer import make_engine
from app.transfer.base import Engine

ROOT = Path(__file__).resolve().parent.parent
TAKES_SOURCE = ("sync", "status", "list", "restore")  # the commands that read opencode's data folder


def sync_context(
    backup: Path,
    machine: str,
    source: Path,
    state: Path | None = None,
    *,
    engine: str | Engine = "native",
    **kw: Any,
) -> SyncContext:
    """A sync of opencode's data folder ``source`` into ``backup/machine``; ``state``: the install's own
    state folder (its own install id; default: this test's app state folder, the command line's); its
    staging folder is inside. ``kw``: any other field of the context."""
    state = paths.app_state_dir() if state is None else state
    return SyncContext(
        backup_path=backup,
        machine=machine,
        source=source,
        opencode_db=None,
        staging_dir=state / "staging",
        state_dir=state,
        engine=make_engine(engine) if isinstance(engine, str) else engine,
        **kw,
    )


@dataclass(frozen=True)
class Env:
    """One test's opencode and backup, under ``tmp``: opencode's data folder and database, the backup
    path, the machine folder in it, and a folder of this install's own (``app``)."""

    tmp: Path
    machine_name: str = "laptop"
    backup: Path | None = None  # the backup path, when not tmp/backup

    @property
    def data(self) -> Path:
        return self.tmp / "opencode"

    @property
    def db(self) -> Path:
        return self.data / "opencode.db"

    @property
    def dest(self) -> Path:
        return self.tmp / "backup" if self.backup is None else self.backup

    @property
    def machine(self) -> Path:
        return self.dest / self.machine_name

    @property
    def app(self) -> Path:
        return self.tmp / "app"

    def context(self, state: Path | None = None, **kw: Any) -> SyncContext:
        """:func:`sync_context` of this opencode into this backup (``state``: default ``app/state``)."""
        return sync_context(
            self.dest, self.machine_name, self.data, self.app / "state" if state is None else state, **kw
        )


def make_env(tmp: Path, machine: str = "laptop") -> Env:
    """An :class:`Env` whose opencode data folder exists (empty)."""
    env = Env(tmp, machine)
    env.data.mkdir(parents=True, exist_ok=True)
    return env


def run_cli(
    backup: Path | str, machine: str, source: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` on ``backup/machine`` (``backup``: a folder, or ``rclone:REMOTE:PATH``;
    ``--source`` for the commands that take it), with no terminal on stdin; stdout and stderr as text
    (undecodable bytes kept as surrogates)."""
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


def count_reads(monkeypatch: Any) -> list[Path]:
    """The session files ``backup_reader.read_session`` reads from now on (in this test), in order."""
    from app.backup import backup_reader as br

    read: list[Path] = []
    reader = br.read_session

    def counted(path: Path, *args: Any, **kwargs: Any) -> Any:
        read.append(path)
        return reader(path, *args, **kwargs)

    monkeypatch.setattr(br, "read_session", counted)
    return read
