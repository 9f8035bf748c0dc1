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
    folders = [paths.opencode_config_dir()]
    second = paths.opencode2_config_dir()
    if second is not None:
        folders.append(second)
    change = ac.apply(args.action, folders, ac.mcp_command())
    emit(args, change, _text(args.action, change))
    return 0


def _text(action: str, change: ac.Change) -> str:
    changes = (change, *change.also)
    lines = [_line(c.state) for c in changes]
    for c in changes:
        if c.changed and c.copy is not None:
            lines.append(f"the file as it was is kept in {c.copy}")
    if any(c.changed for c in changes):
        lines.append("restart opencode to " + ("load the tools" if action == "enable" else "drop them"))
    elif action != "status":
        lines.insert(0, f"nothing to change: already {'on' if action == 'enable' else 'off'}")
    return "\n".join(lines)


def _line(state: ac.AgentTools) -> str:
    where = str(state.config_file)
    key = ".".join(ac.NATIVE_PATH if state.shape == "servers" else ac.PATH)
    if not state.present:
        return f"agent tools in opencode: off (no {key} in {where})"
    if not state.enabled:
        switch = "disabled: true" if state.shape == "servers" else "enabled: false"
        return f"agent tools in opencode: disabled in {where} ({switch})"
    if state.this_install:
        return f"agent tools in opencode: on ({key} in {where})"
    other = " ".join(state.command) or "?"
    return (
        f"agent tools in opencode: on in {where}, but for another command: {other}\n"
        "'opencode-backup agent-tools enable' points them at this install"
    )
