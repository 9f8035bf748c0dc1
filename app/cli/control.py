"""``opencode-backup pause``, ``resume`` and ``sync-now``: reach the running service."""

from __future__ import annotations

import argparse
from typing import Any

from app import paths
from app.cli.common import add_settings_flags, error
from app.cli.parser import COMMANDS
from app.service import client

# command -> (what it prints when done, the paused state it waits for); its help line is in COMMANDS
_COMMANDS: dict[str, tuple[str, bool | None]] = {
    "pause": ("the backup service is paused", True),
    "resume": ("the backup service resumed", False),
    "sync-now": ("asked the backup service to sync now", None),
}


def register(sub: Any) -> None:
    for name in _COMMANDS:
        help_text = COMMANDS[name][1]
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        add_settings_flags(p, ())
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    done, wait = _COMMANDS[args.command]
    if not client.command(paths.app_state_dir(), args.command, wait_paused=wait):
        error(client.NOT_RUNNING)
        return 1
    print(done)
    return 0
