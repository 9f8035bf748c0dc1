"""``opencode-backup adopt``: this machine's backup folder is this install's, after a reinstall the app
could not recognise by itself (see app.backup.adopt).

Exit codes: 0 adopted (or nothing to adopt), 1 cancelled or the folder cannot be reached, 2 usage (also:
no terminal to ask and no ``--yes``; nothing is written).
"""

from __future__ import annotations

import argparse
from typing import Any

from app import paths
from app.backup import adopt
from app.cli.common import add_settings_flags, confirm, say
from app.cli.mending import machine_folder, tell_service, upload_mended
from app.cli.parser import COMMANDS
from app.platform.machine_id import account_once


def register(sub: Any) -> None:
    p = sub.add_parser(
        "adopt",
        help=COMMANDS["adopt"][1],
        description="Make this machine's folder in the backup this install's own, after a reinstall, a "
        "wiped state folder or a new user account, when backups refuse it as another install's. Shows "
        "whose it is first; without --yes an interactive terminal is asked to confirm.",
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_settings_flags(p, ("backup_path", "machine_name"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, machine_dir = machine_folder(args)
    state_dir = paths.app_state_dir()
    plan = adopt.plan(machine_dir, state_dir)
    if not plan.needed:
        say(plan.text())
        return 0
    no_terminal = "no terminal to confirm the adoption; add --yes once you are sure it is this computer's"
    if not args.yes and not confirm(plan.text(), "Adopt this backup folder?", no_terminal):
        say("adopt cancelled; nothing was changed", err=True)
        return 1
    adopt.adopt(machine_dir, state_dir, account_once(paths.current_platform()))
    lines = [f"adopted: {settings.machine_text} is this install's backup folder now"]
    uploaded = upload_mended(settings, compare=False)
    told = tell_service(state_dir, machine_dir)
    say("\n".join([*lines, *([uploaded] if uploaded else []), *([told] if told else [])]))
    return 0
