"""``opencode-backup sync``: one backup now."""

from __future__ import annotations

import argparse
from typing import Any

from app import config, paths, wiring
from app.backup.progress import Sink
from app.backup.result import Outcome, SyncResult
from app.backup.sync import SyncOptions
from app.cli.common import (
    ALL,
    add_json_flag,
    add_settings_flags,
    emit,
    error,
    load_settings,
    require_destination,
    say,
)
from app.cli.parser import COMMANDS
from app.cli.progress import shown
from app.service import client


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sync",
        help=COMMANDS["sync"][1],
        description="Back up what changed since the last backup, now. When the running service backs up "
        "the same folder, it does this sync and this command prints its result.",
    )
    add_settings_flags(p, ALL)
    add_json_flag(p)
    p.add_argument("--snapshot", action="store_true", help="also take a full database snapshot now")
    p.add_argument(
        "--allow-deletions",
        action="store_true",
        help="mirror even when opencode lost most of its sessions (the guard's override)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    with shown(args.json) as progress:
        result = backup_now(settings, progress, snapshot=args.snapshot, allow_deletions=args.allow_deletions)
    if result.outcome is Outcome.FAILED:
        if args.json:
            emit(args, result, "")
        error(f"sync failed: {result.error}")
        return 1
    for warning in result.skipped:
        say(f"warning: not copied (empty or damaged in opencode's storage): {warning}", err=True)
    if result.outcome is Outcome.NOTHING_YET:
        emit(args, result, f"nothing to back up yet: {result.summary()}")
    else:
        emit(args, result, f"{result.outcome.value}: {result.summary()}")
    return 0


def backup_now(
    settings: config.Settings, progress: Sink, *, snapshot: bool = False, allow_deletions: bool = False
) -> SyncResult:
    """One sync of ``settings``' backup now: by the running service when it backs up this folder (instead
    of racing it for the lock), else here."""
    machine_dir = require_destination(settings)
    state_dir = paths.app_state_dir()
    live = client.live_status(state_dir)
    if live is not None and client.same_backup(live, settings.source, machine_dir):
        result = client.sync_via_service(state_dir, snapshot, allow_deletions, progress=progress)
        if result is not None:
            return result
    options = SyncOptions(snapshot=snapshot, allow_deletions=allow_deletions)
    return wiring.sync_once(settings, options, progress=progress)  # the search index follows it
