"""``opencode-backup autostart enable|disable|status``: start the tray app at login.

Exit codes: 0 done (``status`` always 0), 1 the entry could not be changed or the platform has no
autostart, 2 usage.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import add_json_flag, add_settings_flags, emit, error
from app.cli.parser import COMMANDS
from app.platform import autostart


def register(sub: Any) -> None:
    p = sub.add_parser(
        "autostart",
        help=COMMANDS["autostart"][1],
        description="Manage the login entry that starts 'opencode-backup run' (the tray app).",
    )
    p.add_argument("action", choices=["enable", "disable", "status"], help="what to do")
    add_settings_flags(p, ())
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Apply ``args.action`` and report the resulting state."""
    entry = autostart.for_platform()
    try:
        if args.action == "enable":
            entry.enable()
        elif args.action == "disable":
            entry.disable()
    except autostart.AutostartError as exc:
        error(str(exc))
        return 1
    enabled = entry.is_enabled()
    data = {
        "enabled": enabled,
        "supported": entry.supported,
        "location": entry.location or None,
        "command": entry.command,
    }
    if not entry.supported:
        text = "start at login: not supported on this platform"
    else:
        text = f"start at login: {'enabled' if enabled else 'disabled'} ({entry.location})"
    emit(args, data, text)
    return 0
