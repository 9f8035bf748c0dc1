"""``opencode-backup status``: what the backup holds and how the last backup went.

Read-only, so it works exactly when it is needed: with the backup folder unreachable (a drive not
mounted yet) or damaged it says so, and exits 0 either way.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from app import config
from app.cli.common import READ, add_json_flag, add_settings_flags, emit, load_settings, table
from app.cli.parser import COMMANDS
from app.errors import REPAIR_HINT
from app.status_report import BackupStatus, gather
from app.words import size, when

__all__ = ["BackupStatus", "gather", "register", "run", "text"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help=COMMANDS["status"][1],
        description="Show the backup folder, what it holds, the last successful backup and the last "
        "attempt, and what the running service is doing. Works with the backup folder unreachable.",
    )
    add_settings_flags(p, READ)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, check=False)
    report = gather(settings)
    if settings.backup_path is None:
        emit(args, report, config.not_configured_message(settings))
    else:
        emit(args, report, text(report, datetime.now(UTC)))
    return 0


def text(r: BackupStatus, now: datetime) -> str:
    """The human report: aligned rows in words, as ``config`` prints its settings."""
    folder = r.machine_dir or "-"
    if r.backup_problem:
        folder += f" (cannot be used: {r.backup_problem})"
    elif not r.backup_reachable:
        folder += (
            " (nothing backed up from this computer yet)"
            if r.remote
            else " (not reachable: not mounted, or not created yet)"
        )
    rows = [("backup folder", folder)]
    if r.remote is not None:
        rows.append(("remote", f"{r.remote}: (rclone), uploaded from the local mirror {r.mirror}"))
    if r.backup_damaged:
        rows.append(("backup damaged", f"{r.backup_damaged}; {REPAIR_HINT}"))
    if r.sessions_backed_up is not None:
        held = f"{r.sessions_backed_up:,}"
        extra = [size(r.backup_bytes), f"{r.snapshots} snapshot(s)"]
        if r.storage_files:
            extra.append(f"{r.storage_files:,} legacy file(s)")
        rows.append(("sessions backed up", f"{held} ({', '.join(extra)})"))
    elif r.backup_reachable and not r.backup_damaged:
        rows.append(("sessions backed up", "none yet"))
    if r.encryption != "off":
        rows.append(("encryption", r.encryption))
    if r.remote is not None:
        rows.append(("backed up locally", when(r.committed, now)))
        uploaded = when(r.uploaded, now)
        if r.upload_pending:
            uploaded += " (the newest backup is on this computer only: it goes up with the next sync)"
        rows.append(("uploaded", uploaded))
    else:
        rows.append(("last backup", when(r.last_backup, now)))
    if r.last_attempt is not None and r.last_attempt != r.last_backup:
        result = r.last_result.value if r.last_result else "?"
        rows.append(("last attempt", f"{when(r.last_attempt, now)}: {result}"))
    if r.last_error:
        rows.append(("last error", r.last_error))
    service = r.service
    if r.service_pid:
        service = f"running (pid {r.service_pid}): {r.service}"
        if r.pending:
            service += f", {r.pending} change(s) waiting"
        if r.next_retry:
            service += f", next retry at {r.next_retry.astimezone():%H:%M:%S}"
        if r.failing_since:
            service += f", failing since {r.failing_since.astimezone():%H:%M:%S}"
        service += f", {r.syncs_this_session} backup(s) since it started"
    rows.append(("service", service))
    if r.progress is not None:
        rows.append(("progress", r.progress.sentence()))
    return table(rows)
