"""``opencode-backup config``: the effective settings and where each came from."""

from __future__ import annotations

import argparse
from typing import Any

from app import config
from app.cli.common import ALL, add_json_flag, add_settings_flags, emit, load_settings
from app.cli.parser import COMMANDS


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
    """Every setting, then (exit 2) why the backup folder cannot be used, as every other command says it;
    a folder that is only not there yet (a drive not mounted) is not a wrong setting."""
    settings = load_settings(args, check=False)
    rows = config.describe(settings)
    width = max(len(k) for k, _v, _o in rows)
    lines = [f"{k:<{width}}  {v}  ({o})" for k, v, o in rows]
    data = config.as_json(settings)
    problem = config.destination_problem(settings)
    data["backupPathProblem"] = problem
    if problem is not None:  # shown with the settings (this command is how the user finds out), and wrong
        lines.append(f"error: {problem}")
    emit(args, data, "\n".join(lines))
    return 2 if problem is not None else 0
