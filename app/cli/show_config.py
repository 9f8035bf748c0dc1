"""``opencode-backup config``: the effective settings and where each came from."""

from __future__ import annotations

import argparse
from typing import Any

from app import config
from app.cli.common import ALL, add_json_flag, add_settings_flags, emit, load_settings
from app.cli.parser import COMMANDS
from app.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help=COMMANDS["config"][1],
        description="Show every setting's effective value and where it came from (flag, environment, "
        "file, default), and whether the backup folder can be used.",
    )
    add_settings_flags(p, ALL)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, check=False)
    rows = config.describe(settings)
    width = max(len(k) for k, _v, _o in rows)
    lines = [f"{k:<{width}}  {v}  ({o})" for k, v, o in rows]
    data = config.as_json(settings)
    try:
        config.validate_destination(settings, allow_unmounted=True)
        data["backupPathProblem"] = None
    except ConfigError as exc:  # shown, not fatal: this command is how the user finds out
        lines.append(f"note: {exc}")
        data["backupPathProblem"] = str(exc)
    emit(args, data, "\n".join(lines))
    return 0
