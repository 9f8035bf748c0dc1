"""``opencode-backup verify``: every backup file against the manifest."""

from __future__ import annotations

import argparse
from typing import Any

from app import paths, wiring
from app.backup.remote.view import Parts
from app.backup.verify import verify
from app.cli.common import add_json_flag, add_settings_flags, emit, load_settings, reading
from app.cli.parser import COMMANDS
from app.cli.progress import shown
from app.errors import REPAIR_HINT


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help=COMMANDS["verify"][1],
        description="Check every file of the backup against its size and sha256 in the manifest, that "
        "every session file parses and that every snapshot passes SQLite's integrity_check. Reads only; "
        "a backup on an rclone remote is read from the remote itself.",
    )
    add_settings_flags(p, ("backup_path", "machine_name"))
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, check=False)
    with reading(settings, parts=Parts.ALL, fresh=True) as machine_dir, shown(args.json) as progress:
        report = verify(
            machine_dir, settings.machine_name, paths.app_data_dir() / "verify", progress, wiring.keys()
        )
    verdict = "OK" if report.ok else "FAILED"
    summary = f"{verdict}: {report.checked} files checked, {len(report.problems)} problem(s)"
    if report.repair_helps:
        summary += f"; {REPAIR_HINT} (files that fail their checks are set aside, never deleted)"
    data = {
        "ok": report.ok,
        "checked": report.checked,
        "problems": report.problems,
        "repair_would_help": report.repair_helps,
    }
    emit(args, data, "\n".join([*report.problems, summary]))
    return 0 if report.ok else 1
