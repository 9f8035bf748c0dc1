"""``opencode-backup repair``: rebuild this machine folder's index from the files present (see
app.backup.repair); the plan first, then, confirmed, the repair.

Exit codes: 0 repaired (or nothing to repair, or a dry run), 1 cancelled or failed (nothing changed), 2
usage (also: no terminal to ask and no ``--yes``; nothing is written).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from app import paths, wiring
from app.backup import repair
from app.cli.common import add_json_flag, add_settings_flags, confirm, emit, say
from app.cli.mending import machine_folder, tell_service, upload_mended
from app.cli.parser import COMMANDS
from app.cli.progress import shown
from app.platform.machine_id import account_once


def register(sub: Any) -> None:
    p = sub.add_parser(
        "repair",
        help=COMMANDS["repair"][1],
        description="When the backup's index (manifest.json, manifest.d/) is damaged, or lists files that "
        "are gone or damaged, rebuild it from the files of this machine's backup folder. Each file is "
        "checked as a restore checks it; a file that fails is moved into damaged/<time>/, never deleted, "
        "and so is the index it replaces. Shows the plan first; without --yes an interactive terminal is "
        "asked to confirm.",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_settings_flags(p, ("backup_path", "machine_name"))
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, machine_dir = machine_folder(args)
    with shown(args.json) as progress:
        plan = repair.plan(
            machine_dir,
            settings.machine_name,
            paths.app_data_dir() / "verify",
            datetime.now(UTC),
            progress,
            seal=wiring.seal_for(settings),
        )
    if not plan.needed or args.dry_run:
        uploaded = upload_mended(settings, compare=True) if not args.dry_run else None
        emit(
            args,
            {"plan": plan.to_json(), "repaired": False},
            "\n".join([plan.text(), *([uploaded] if uploaded else [])]),
        )
        return 0
    no_terminal = "no terminal to confirm the repair; add --yes (or --dry-run to see the plan)"
    if not args.yes and not confirm(plan.text(), "Repair?", no_terminal):
        say("repair cancelled; nothing was changed", err=True)
        return 1
    state_dir = paths.app_state_dir()
    identity = account_once(paths.current_platform())
    repair.apply(plan, settings.machine_name, state_dir, datetime.now(UTC), identity)
    lines = [f"repaired {machine_dir}: the index lists {plan.counts()}"]
    if plan.stock.aside:
        lines.append(f"{len(plan.stock.aside)} file(s) set aside in {machine_dir / plan.aside_dir}")
    lines.append(f"the index it replaced is kept in {machine_dir / plan.aside_dir}")
    lines.append("the next backup copies again what opencode has and the backup lacks")
    uploaded = upload_mended(settings, compare=True)
    lines += [uploaded] if uploaded else []
    told = tell_service(state_dir, machine_dir)
    lines += [told] if told else []
    emit(args, {"plan": plan.to_json(), "repaired": True}, "\n".join(lines))
    return 0
