"""What the two commands that mend this machine's backup folder (``repair``, ``adopt``) share: the folder,
checked before anything reads it, and a word to the running service once it is mended."""

from __future__ import annotations

import argparse
from pathlib import Path

from app import config, wiring
from app.backup.backup_reader import safe_machine_dir
from app.cli.common import load_settings, require_destination
from app.service import client


def machine_folder(args: argparse.Namespace) -> tuple[config.Settings, Path]:
    """The settings and this machine's folder of the backup (a plain folder, not a link; BackupDamaged
    when it is not there)."""
    settings = load_settings(args, check=False)
    require_destination(settings)
    assert settings.backup_path is not None
    if settings.remote is not None:
        config.validate_destination(settings)  # rclone there, the remote in its config
        wiring.mirror_ready(settings)
    return settings, safe_machine_dir(settings.backup_path, settings.machine_name)


def upload_mended(settings: config.Settings, *, compare: bool) -> str | None:
    """On a remote: put the mended folder there now; the line that says how it went (None: a folder)."""
    result = wiring.upload_mended(settings, compare=compare)
    if result is None:
        return None
    if result.ok:
        return f"uploaded to {settings.machine_text}"
    return f"not uploaded yet ({result.error}); the next backup uploads it"


def tell_service(state_dir: Path, machine_dir: Path) -> str | None:
    """Ask a running service that backs up ``machine_dir`` to back up now (after a failure only a person
    could fix it waits for a change or Sync now); the line that says so, None when none runs there."""
    live = client.live_status(state_dir)
    if live is None or live.destination != str(machine_dir):
        return None
    client.command(state_dir, "sync-now")
    return "the running backup service backs up now"
