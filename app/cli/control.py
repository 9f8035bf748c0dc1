"""``opencode-backup pause``, ``resume`` and ``sync-now``: reach the running service."""

from __future__ import annotations

import argparse
from typing import Any

from app import paths
from app.cli.common import add_settings_flags, error
from app.service import client

_COMMANDS = {
    "pause": ("ask the running service to stop backing up for now", "the backup service is paused", True),
    "resume": ("ask the running service to back up again", "the backup service resumed", False),
    "sync-now": (
        "ask the running service to back up now, without waiting",
        "asked the backup service to sync now",
        None,
    ),
}


def register(sub: Any) -> None:
    for name, (help_text, _done, _wait) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        add_settings_flags(p, ())
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _help, done, wait = _COMMANDS[args.command]
    if not client.command(paths.app_state_dir(), args.command, wait_paused=wait):
        error(client.NOT_RUNNING)
        return 1
    print(done)
    return 0
