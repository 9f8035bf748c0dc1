"""``opencode-backup autostart enable|disable|status``: start the tray app at login (CLI layer; prints).

Exit codes: 0 done (``status`` always 0), 1 the entry could not be changed or the platform has no
autostart, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.platform import autostart


def add_parser(sub: Any) -> None:
    """Register ``autostart`` on the subcommand parser of app.__main__."""
    p = sub.add_parser(
        "autostart",
        help="start the tray app at login: enable, disable or show the status",
        description="Manage the login entry that starts 'opencode-backup run' (the tray app).",
    )
    p.add_argument("action", choices=["enable", "disable", "status"], help="what to do")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--debug", action="store_true", default=None, help="verbose logging")


def cmd_autostart(args: argparse.Namespace) -> int:
    """Apply ``args.action`` and report the resulting state."""
    entry = autostart.for_platform()
    try:
        if args.action == "enable":
            entry.enable()
        elif args.action == "disable":
            entry.disable()
    except autostart.AutostartError as exc:
        print(f"opencode-backup: {exc}", file=sys.stderr)
        return 1
    enabled = entry.is_enabled()
    if args.json:
        data = {
            "enabled": enabled,
            "supported": entry.supported,
            "location": entry.location or None,
            "command": entry.command,
        }
        print(json.dumps(data, indent=2))
    elif not entry.supported:
        print("start at login: not supported on this platform")
    else:
        print(f"start at login: {'enabled' if enabled else 'disabled'} ({entry.location})")
    return 0
