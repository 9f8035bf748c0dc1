"""``opencode-backup search``: the sessions holding every word asked for, across the whole backup folder.

The index lives in this user's cache folder and is brought up to date with the backup folder first (built,
with progress on stderr, the first time). Exit codes: 0 (also when nothing is found), 1 the backup folder
cannot be read, 2 usage (no word to look for).
"""

from __future__ import annotations

import argparse
from typing import Any

from app import wiring
from app.backup.progress import Throttled
from app.backup.search import find
from app.backup.search_index import Hit
from app.cli.common import (
    READ,
    add_json_flag,
    add_settings_flags,
    emit,
    load_settings,
    require_backup_folder,
    say,
)
from app.cli.parser import COMMANDS
from app.cli.progress import shown
from app.errors import UsageError
from app.safe_text import clean
from app.words import minutes

MAX_LIMIT = 1000
SKIPPED_SHOWN = 5  # files that could not be read, named one per line; the rest counted


def register(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help=COMMANDS["search"][1],
        description="Find backed-up sessions by their words: every machine folder of the backup, sessions "
        "opencode no longer has, both opencode stores. Every word must occur (any case, accents "
        "ignored); quotes, operators and punctuation are plain words or ignored. Best matches first.",
    )
    p.add_argument("words", nargs="+", metavar="WORD", help="what to look for")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N sessions (default 20)")
    add_settings_flags(p, READ)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit takes 1 to {MAX_LIMIT}")
    settings = load_settings(args, check=False)
    backup_path = require_backup_folder(settings)
    query = " ".join(args.words)
    with shown(args.json) as progress:
        tell = Throttled(progress)
        hits, skipped = find(
            backup_path,
            query,
            args.limit,
            (settings.source, settings.opencode_db),
            tell.report,
            seal=wiring.keys(),
        )
    for machine, rel, why in skipped[:SKIPPED_SHOWN]:
        say(f"warning: not searched, cannot be read: {machine}/{rel}: {why}", err=True)
    if len(skipped) > SKIPPED_SHOWN:
        say(f"warning: {len(skipped) - SKIPPED_SHOWN} more session file(s) cannot be read", err=True)
    emit(args, [to_json(h) for h in hits], text(hits, settings.machine_name))
    return 0


def to_json(h: Hit) -> dict[str, Any]:
    """One hit of ``search --json`` (emit() makes it JSON)."""
    return {
        "session_id": h.session_id,
        "title": h.title,
        "machine": h.machine,
        "directory": h.directory,
        "time_updated": h.time_updated,  # emit() writes it ISO 8601, to the second
        "in_opencode": h.in_opencode,
        "in_backup": h.in_backup,
        "snippet": h.snippet,
    }


def text(hits: list[Hit], this_machine: str) -> str:
    if not hits:
        return "no backed-up session holds all of these words"
    lines = []
    for h in hits:
        lines.append(f"{h.session_id}  {clean(h.title or '(untitled)')}")
        lines.append(f"    {facts(h, this_machine)}")
        lines.append(f"    {h.snippet}")
    lines.append(f"{len(hits)} session(s). Read one: 'opencode-backup show ID'; its versions: 'history ID'")
    return "\n".join(lines)


def facts(h: Hit, this_machine: str) -> str:
    """A hit's second line: 'laptop (this machine) · updated 2026-11-30 14:05 · in opencode · DIR'."""
    machine = f"{clean(h.machine)} (this machine)" if h.machine == this_machine else clean(h.machine)
    updated = minutes(h.time_updated)
    present = "in opencode" if h.in_opencode else "not in opencode"
    if not h.in_backup:
        present += " (deleted; its last copy is kept in versions/)"
    return f"{machine} · updated {updated} · {present} · {clean(h.directory)}"
