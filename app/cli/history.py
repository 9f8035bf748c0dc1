"""``opencode-backup history``: every version of one session the backup holds, newest first."""

from __future__ import annotations

import argparse
from typing import Any

from app import paths, wiring
from app.backup import lookup
from app.backup.history import Copy, History, Kind, history
from app.cli.common import READ, add_json_flag, add_settings_flags, emit, load_settings, require_destination
from app.cli.parser import COMMANDS
from app.safe_text import clean
from app.words import size


def register(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help=COMMANDS["history"][1],
        description="List every version of one session the backup holds, newest first and numbered (1 = the "
        "newest): the current file, each kept version and each snapshot that holds it, with when it was "
        "backed up, its messages and size. Looks in this machine's folder, then in the other machine "
        "folders of the backup. 'restore ID --version N' and 'show ID --version N' take the numbers.",
    )
    p.add_argument("session", metavar="SESSION", help="a session id, the start of one, or an exact title")
    p.add_argument("--from", dest="from_machine", metavar="MACHINE", help="only this machine folder")
    add_settings_flags(p, READ)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, check=False)
    require_destination(settings)
    assert settings.backup_path is not None
    keys = wiring.keys()
    target = lookup.find_session(
        settings.backup_path, settings.machine_name, args.session, args.from_machine, keys
    )
    h = history(target.machine_dir, target.session_id, paths.app_data_dir(), seal=keys)
    emit(args, to_json(h), text(h, settings.machine_name))
    return 0


def to_json(h: History) -> dict[str, Any]:
    """``history --json``: the session and its versions (times ISO 8601 UTC; null when not known)."""
    return {
        "session_id": h.session_id,
        "title": h.title,
        "machine": h.machine,
        "versions": [_copy_json(c) for c in h.copies],
    }


def _copy_json(c: Copy) -> dict[str, Any]:
    """One version; emit() writes its times (ISO 8601, to the second) and its kind (by value)."""
    return {
        "number": c.number,
        "kind": c.kind,
        "path": c.rel,
        "backed_up": c.backed_up,
        "backed_up_after": c.after,
        "replaced": c.until,
        "time_updated": c.time_updated,
        "messages": c.messages,
        "size": c.size,
        "also_in": list(c.also_in),
    }


def text(h: History, this_machine: str) -> str:
    where = "this machine" if h.machine == this_machine else "another machine"
    lines = [
        f"{h.session_id}  {clean(h.title or '(untitled)')}  in machine folder {clean(h.machine)} ({where})"
    ]
    rows = [("#", "backed up", "messages", "size", "kept as")]
    rows += [(str(c.number), c.when(), str(c.messages), _size(c), _kept(c)) for c in h.copies]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines += [
        "  " + "  ".join(f"{v:<{w}}" for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows
    ]
    lines.append(
        f"{len(h.copies)} version(s). Read one: 'opencode-backup show {h.session_id} --version N'; "
        f"restore one: 'opencode-backup restore {h.session_id} --version N' (or --at TIME)"
    )
    return "\n".join(lines)


def _size(c: Copy) -> str:
    return size(c.size) if c.size is not None else "-"


def _kept(c: Copy) -> str:
    if c.kind is Kind.CURRENT:
        kept = "sessions/ (current)"
    elif c.kind is Kind.VERSION:
        kept = "/".join(c.rel.split("/")[:2]) + "/"
    else:
        kept = c.rel
    also = f"; also in {', '.join(a.removeprefix('snapshots/') for a in c.also_in)}" if c.also_in else ""
    return clean(kept + also, 400)
