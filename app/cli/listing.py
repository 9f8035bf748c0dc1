"""``opencode-backup list``: the backed-up sessions, and whether opencode still has each."""

from __future__ import annotations

import argparse
from typing import Any

from app import wiring
from app.backup.catalog import session_rows
from app.backup.remote.view import Parts
from app.cli.common import READ, add_json_flag, add_settings_flags, emit, load_settings, reading
from app.cli.parser import COMMANDS
from app.safe_text import clean


def register(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help=COMMANDS["list"][1],
        description="List every backed-up session, newest first, including sessions deleted in opencode "
        "whose deletion was already backed up (their last copy is kept in versions/).",
    )
    add_settings_flags(p, READ)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, check=False)
    with reading(settings, parts=Parts.LISTING) as machine_dir:
        rows = session_rows(
            machine_dir, settings.machine_name, settings.source, settings.opencode_db, wiring.keys()
        )
    lines = [  # a title and a folder are the backup folder's (or opencode's) words: one line each, inert
        f"{r.id}  {r.time_updated:%Y-%m-%d %H:%M}  {' ' if r.in_opencode else '✗'} {clean(r.title)}  "
        f"({clean(r.directory)})" + ("" if r.in_backup else "  [deleted; last copy in versions/]")
        for r in rows
    ]
    lines.append(
        f"{len(rows)} session(s) backed up; ✗ = no longer in opencode (restore --missing brings them back)"
    )
    emit(args, rows, "\n".join(lines))
    return 0
