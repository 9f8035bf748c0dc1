"""``opencode-backup show``: a backed-up session read from the backup alone, as Markdown or JSON.

opencode is not touched (it need not be installed). The Markdown is printed as it is made, message by
message, so the start of a long session shows at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app import paths, wiring
from app.backup import asof, lookup, transcript
from app.backup.history import history
from app.cli.common import READ, add_settings_flags, load_settings, require_destination
from app.cli.parser import COMMANDS
from app.safe_text import safe_json


def register(sub: Any) -> None:
    p = sub.add_parser(
        "show",
        help=COMMANDS["show"][1],
        description="Print a backed-up session from the backup alone: its title, project and times, then "
        "each message with its role and time, text in full and each tool call on one line. The newest "
        "version by default; --at or --version another (see 'history'). Looks in this machine's folder, "
        "then in the other machine folders of the backup.",
    )
    p.add_argument("session", metavar="SESSION", help="a session id, the start of one, or an exact title")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--at", metavar="TIME", help="as it was then: ISO 8601, local time unless it has an offset"
    )
    which.add_argument(
        "--version", type=int, metavar="N", help="version N as 'history' numbers them (1 = newest)"
    )
    p.add_argument("--from", dest="from_machine", metavar="MACHINE", help="only this machine folder")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown", help="default: markdown")
    p.add_argument("--reasoning", action="store_true", help="include the model's reasoning")
    add_settings_flags(p, READ)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, check=False)
    require_destination(settings)
    assert settings.backup_path is not None
    at = asof.parse_time(args.at) if args.at else None
    keys = wiring.keys()
    target = lookup.find_session(
        settings.backup_path, settings.machine_name, args.session, args.from_machine, keys
    )
    work_dir = paths.app_data_dir()
    # every copy is read only for a version by time or number: the newest is its file alone
    whole = at is not None or args.version is not None
    h = history(target.machine_dir, target.session_id, work_dir, newest_only=not whole, seal=keys)
    copy = asof.pick(h, at=at, version=args.version)
    doc = asof.read_copy(h, copy, work_dir)
    source = asof.source(h, copy)
    if args.format == "json":
        print(safe_json(transcript.to_json(doc, source, reasoning=args.reasoning), indent=2))
        return 0
    out = sys.stdout
    for line in transcript.markdown(doc, source, reasoning=args.reasoning):
        out.write(line + "\n")
    out.flush()
    return 0
