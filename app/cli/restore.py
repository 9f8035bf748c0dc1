"""``opencode-backup restore``: the command-line face of app.backup.restore.

Exit codes: 0 restored (or nothing to do, or a dry run), 1 refused or a session failed, 2 usage.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import paths, wiring
from app.backup import asof, lookup
from app.backup import restore as rs
from app.backup import restore_legacy as rl
from app.backup.remote.view import Parts
from app.cli.common import (
    READ,
    add_json_flag,
    add_settings_flags,
    confirm,
    emit,
    error,
    load_settings,
    reading,
    require_destination,
    say,
)
from app.cli.parser import COMMANDS
from app.cli.progress import shown
from app.errors import UsageError
from app.opencode.locate import restore_target
from app.safe_text import clean
from app.words import size


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help=COMMANDS["restore"][1],
        description="Restore sessions from the backup. Without --yes an interactive terminal is asked "
        "to confirm; without a terminal --yes is required.",
    )
    p.add_argument("session_ids", nargs="*", metavar="SESSION_ID", help="sessions to restore (id or prefix)")
    p.add_argument(
        "--missing",
        action="store_true",
        help="every backed-up session opencode does not have (also those whose deletion was backed up)",
    )
    p.add_argument("--all", action="store_true", help="with --replace: rebuild opencode's whole database")
    p.add_argument("--replace", action="store_true", help="confirms --all: replace the database's content")
    p.add_argument("--legacy", action="store_true", help="restore the legacy JSON storage/ tree")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--at",
        metavar="TIME",
        help="one session as it was then (ISO 8601, local time unless it has an offset; a date: its end)",
    )
    which.add_argument(
        "--version", type=int, metavar="N", help="one session's version N, as 'history' numbers them"
    )
    p.add_argument("--from", dest="from_machine", metavar="MACHINE", help="another machine's backup folder")
    p.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_settings_flags(p, READ)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan, confirm and apply a restore; returns the exit code."""
    try:
        return _restore(args)
    except (sqlite3.Error, OSError) as exc:  # opencode's database or a folder we need is unusable
        detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename else exc
        error(f"restore failed: {detail}")
        return 1


def _restore(args: argparse.Namespace) -> int:
    modes = [bool(args.session_ids), args.missing, args.all, args.legacy]
    if sum(modes) != 1:
        raise UsageError("restore needs exactly one of: SESSION_ID..., --missing, --all --replace, --legacy")
    if args.all != args.replace:
        raise UsageError("--all and --replace go together: 'restore --all --replace' rebuilds the database")
    as_of = args.at is not None or args.version is not None
    if as_of and len(args.session_ids) != 1:
        raise UsageError("--at and --version take exactly one SESSION_ID")
    settings = load_settings(args, check=False)
    require_destination(settings)
    assert settings.backup_path is not None
    work_dir = paths.app_data_dir()
    if as_of:
        db = restore_target(settings.source, settings.opencode_db)
        at = asof.parse_time(args.at) if args.at is not None else None
        where = (settings.backup_path, settings.machine_name, args.from_machine)
        req, chosen = asof.restore_request(
            where, args.session_ids[0], db, work_dir, at=at, version=args.version, seal=wiring.keys()
        )
        say(chosen, err=bool(args.json))  # stdout: the JSON alone
        return _planned(args, req)
    parts = Parts.ALL if args.all or args.legacy else Parts.SESSIONS
    with reading(settings, args.from_machine, parts) as machine_dir:
        if args.legacy:
            return _legacy(args, machine_dir, settings.source, work_dir)
        req = rs.RestoreRequest(
            machine_dir=machine_dir,
            db=restore_target(settings.source, settings.opencode_db),
            work_dir=work_dir,
            ids=lookup.by_title(machine_dir, tuple(args.session_ids), wiring.keys()),
            missing=args.missing,
            replace_all=args.all,
            seal=wiring.keys(),
        )
        return _planned(args, req)


def _planned(args: argparse.Namespace, req: rs.RestoreRequest) -> int:
    """Plan ``req``, show it, confirm and apply it; the exit code."""
    with rs.make_plan(req) as plan:  # its decrypted copies go when it is applied, declined or shown
        return _decided(args, req, plan)


def _decided(args: argparse.Namespace, req: rs.RestoreRequest, plan: rs.Plan) -> int:
    if not plan.items and not plan.snapshot:
        emit(
            args,
            {"plan": plan.to_dict(), "result": None},
            "nothing to restore: every backed-up session is in opencode",
        )
        return 0
    if args.dry_run:
        emit(
            args,
            {"plan": plan.to_dict(), "result": None},
            _plan_text(plan) + "\ndry run: nothing was changed",
        )
        return 0
    if not args.yes and not _confirm(_plan_text(plan)):
        print("restore cancelled; nothing was changed", file=sys.stderr)
        return 1
    with shown(args.json) as progress:
        result = rs.apply_plan(plan, req, progress=progress)
    emit(args, {"plan": plan.to_dict(), "result": result.to_dict()}, _result_text(result))
    for sid, why in result.failed:
        error(f"session {sid}: {why}")
    return 0 if result.ok else 1


def _legacy(args: argparse.Namespace, machine_dir: Path, data_dir: Path, work_dir: Path) -> int:
    plan = rl.plan_legacy(machine_dir, data_dir, wiring.keys())
    text = (
        f"legacy storage/: {len(plan.add)} file(s) to add, {len(plan.replace)} to replace "
        f"({size(plan.bytes)}) into {data_dir / 'storage'}"
    )
    if not plan.add and not plan.replace:
        emit(args, {"plan": plan.to_dict(), "result": None}, "nothing to restore in storage/")
        return 0
    if args.dry_run:
        emit(args, {"plan": plan.to_dict(), "result": None}, text + "\ndry run: nothing was changed")
        return 0
    if not args.yes and not _confirm(text):
        print("restore cancelled; nothing was changed", file=sys.stderr)
        return 1
    aside = rl.apply_legacy(
        plan, machine_dir, data_dir, work_dir / rs.SAFETY_DIR, datetime.now(UTC), seal=wiring.keys()
    )
    done = f"restored {len(plan.add) + len(plan.replace)} file(s) into {data_dir / 'storage'}"
    if aside is not None:
        done = f"files it replaced were copied to {aside}\n" + done
    emit(args, {"plan": plan.to_dict(), "result": {"aside": str(aside) if aside else None}}, done)
    return 0


def _confirm(plan_text: str) -> bool:
    return confirm(
        plan_text, "Restore?", "no terminal to confirm the restore; add --yes (or --dry-run to see the plan)"
    )


def _plan_text(plan: rs.Plan) -> str:
    lines = [f"restore plan ({plan.mode.value}) into {plan.db}:"]
    lines += [f"  note: {n}" for n in plan.notes]
    for i in sorted(plan.items, key=lambda i: i.session_id):
        extra = f"  ({i.reason})" if i.reason else ""
        head = f"  {i.action.value:<8} {i.session_id}  {i.rows} rows  {size(i.bytes)}"
        lines.append(f"{head}  {clean(i.title)}{extra}")
    act = plan.actionable
    lines.append(
        f"{len(act)} session(s), {sum(i.rows for i in act)} rows, {size(sum(i.bytes for i in act))}"
        + (" on top of the snapshot" if plan.snapshot else "")
    )
    return "\n".join(lines)


def _result_text(result: rs.RestoreResult) -> str:
    lines = []
    if result.safety_copy is not None:
        lines.append(f"safety copy of opencode's database: {result.safety_copy}")
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"restored {sid} ({n} rows added)" for sid, n in result.restored]
    lines.append(f"{len(result.restored)} session(s) restored, {len(result.failed)} failed")
    return "\n".join(lines)
