"""``opencode-backup agent-tools enable|disable|status``: the backup's tools inside opencode.

Adds (or removes) ``mcp.session_backup`` in opencode's global config, so opencode starts
``opencode-backup mcp`` and its model can call ``session_backup_status``, ``_sync`` and ``_restore``.
Exit codes: 0 done (also when nothing needed changing; ``status`` always), 1 the file could not be
written, 2 the config file cannot be parsed (nothing written) or usage.
"""

from __future__ import annotations

import argparse
from typing import Any

from app import paths
from app.cli.common import add_json_flag, add_settings_flags, emit
from app.cli.parser import COMMANDS
from app.opencode import agent_config as ac


def register(sub: Any) -> None:
    p = sub.add_parser(
        "agent-tools",
        help=COMMANDS["agent-tools"][1],
        description="Register this install's MCP server ('opencode-backup mcp') in opencode's global "
        "config (mcp.session_backup in opencode.json or opencode.jsonc), or remove it. The file keeps "
        "its other settings, comments and layout, and a copy of it as it was is kept beside it. "
        "opencode loads the tools when it starts next.",
    )
    p.add_argument("action", choices=["enable", "disable", "status"], help="what to do")
    add_settings_flags(p, ())
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Apply ``args.action`` and report the resulting state (ConfigError -> exit 2 via main)."""
    config_dir = paths.opencode_config_dir()
    command = ac.mcp_command()
    if args.action == "status":
        change = ac.Change(ac.read(config_dir, command), changed=False)
    elif args.action == "enable":
        change = ac.enable(config_dir, command)
    else:
        change = ac.disable(config_dir, command)
    emit(args, change, _text(args.action, change))
    return 0


def _text(action: str, change: ac.Change) -> str:
    state = change.state
    where = str(state.config_file)
    if not state.present:
        line = f"agent tools in opencode: off (no mcp.{ac.SERVER_KEY} in {where})"
    elif not state.enabled:
        line = f"agent tools in opencode: disabled in {where} (enabled: false)"
    elif state.this_install:
        line = f"agent tools in opencode: on ({where})"
    else:
        line = f"agent tools in opencode: on, but for another command: {' '.join(state.command) or '?'}"
        line += "\n'opencode-backup agent-tools enable' points them at this install"
    lines = [line]
    if change.changed:
        if change.copy is not None:
            lines.append(f"the file as it was is kept in {change.copy}")
        lines.append("restart opencode to " + ("load the tools" if action == "enable" else "drop them"))
    elif action != "status":
        lines.insert(0, f"nothing to change: already {'on' if action == 'enable' else 'off'}")
    return "\n".join(lines)
