"""``opencode-backup status``: what the backup holds and how the last backup went.

Read-only, so it works exactly when it is needed: with the backup folder unreachable (a drive not
mounted yet) or damaged it says so, and exits 0 either way.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import codec, config, paths
from app.backup import manifest as mf
from app.backup.result import Outcome, SyncResult
from app.backup.state import load_results
from app.cli.common import READ, add_json_flag, add_settings_flags, emit, load_settings, size, table
from app.errors import BackupDamaged
from app.service import client
from app.service.status import Status


@dataclass(frozen=True)
class BackupStatus:
    """``status --json``: ``last_backup`` is the end of the last sync that backed everything up (None:
    none yet); ``last_attempt`` and ``last_result`` describe the last sync, whatever its outcome."""

    backup_path: str | None
    machine: str
    machine_dir: str | None
    configured: bool
    backup_reachable: bool
    backup_damaged: str | None
    sessions_backed_up: int | None
    storage_files: int
    snapshots: int
    backup_bytes: int
    last_backup: datetime | None
    last_attempt: datetime | None
    last_result: Outcome | None
    last_error: str | None
    service: str
    service_pid: int | None = None
    syncs_this_session: int = 0
    pending: int | None = None
    next_sync: datetime | None = None
    next_retry: datetime | None = None
    failing_since: datetime | None = None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="what the backup holds and how the last backup went",
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


def gather(settings: config.Settings) -> BackupStatus:
    """Everything ``status`` reports, from the backup folder, this install's state and the live service."""
    machine_dir = settings.machine_dir
    reachable = machine_dir is not None and machine_dir.is_dir()
    man, damaged = None, None
    if machine_dir is not None and reachable:
        try:
            man = mf.load(machine_dir, settings.machine_name)
        except BackupDamaged as exc:
            damaged = str(exc)
    attempt, backup = _results(settings, machine_dir, man)
    report = BackupStatus(
        backup_path=str(settings.backup_path) if settings.backup_path else None,
        machine=settings.machine_name,
        machine_dir=str(machine_dir) if machine_dir else None,
        configured=settings.backup_path is not None,
        backup_reachable=reachable,
        backup_damaged=damaged,
        sessions_backed_up=len(man.sessions) if man else None,
        storage_files=man.storage_files if man else 0,
        snapshots=len(man.snapshots()) if man else 0,
        backup_bytes=man.total_bytes if man else 0,
        last_backup=backup.ended if backup else None,
        last_attempt=attempt.ended if attempt else None,
        last_result=attempt.outcome if attempt else None,
        last_error=(attempt.error or None) if attempt and not attempt.ok else None,
        service="not running",
    )
    live = client.live_status(paths.app_state_dir())
    if live is None:
        return report
    if not client.same_backup(live, settings.source, machine_dir):
        return replace(report, service=f"running for another backup ({live.destination or '?'})")
    return _with_live(report, live)


def _results(
    settings: config.Settings, machine_dir: Path | None, man: mf.Manifest | None
) -> tuple[SyncResult | None, SyncResult | None]:
    """(last attempt, last backup): this install's own record when it is about this folder, else the
    manifest's last result (a backup made by another computer, or before this install kept one)."""
    kept = load_results(paths.app_state_dir())
    mine = [r for r in (kept.attempt, kept.backup) if r is None or r.destination == str(machine_dir)]
    if len(mine) == 2 and mine[0] is not None:
        return mine[0], mine[1]
    if man is None or not man.last_result:
        return None, None
    try:
        recorded = codec.from_json(SyncResult, man.last_result)
    except codec.CodecError:
        return None, None  # written by an older version
    return recorded, recorded if recorded.backed_up else None


def _with_live(report: BackupStatus, live: Status) -> BackupStatus:
    """The running service knows better than the files about the last sync and what comes next."""
    return replace(
        report,
        service=live.state.value,
        service_pid=live.pid or None,
        last_backup=live.last_backup or report.last_backup,
        last_attempt=live.last_attempt or report.last_attempt,
        last_result=live.last_outcome or report.last_result,
        last_error=live.last_error if live.last_outcome else report.last_error,
        syncs_this_session=live.syncs,
        pending=live.pending,
        next_sync=live.next_sync,
        next_retry=live.next_retry,
        failing_since=live.failing_since,
    )


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "none yet"
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    seconds = max(0, round((now - moment).total_seconds()))
    if seconds < 60:
        rel = f"{seconds} s ago"
    elif seconds < 3600:
        rel = f"{seconds // 60} min ago"
    elif seconds < 48 * 3600:
        rel = f"{seconds // 3600} h ago"
    else:
        rel = f"{seconds // 86400} days ago"
    return f"{local} ({rel})"


def text(r: BackupStatus, now: datetime) -> str:
    """The human report: aligned rows in words, as ``config`` prints its settings."""
    folder = r.machine_dir or "-"
    if not r.backup_reachable:
        folder += " (not reachable: not mounted, or not created yet)"
    rows = [("backup folder", folder)]
    if r.backup_damaged:
        rows.append(("backup damaged", r.backup_damaged))
    if r.sessions_backed_up is not None:
        held = f"{r.sessions_backed_up:,}"
        extra = [size(r.backup_bytes), f"{r.snapshots} snapshot(s)"]
        if r.storage_files:
            extra.append(f"{r.storage_files:,} legacy file(s)")
        rows.append(("sessions backed up", f"{held} ({', '.join(extra)})"))
    elif r.backup_reachable and not r.backup_damaged:
        rows.append(("sessions backed up", "none yet"))
    rows.append(("last backup", _when(r.last_backup, now)))
    if r.last_attempt is not None and r.last_attempt != r.last_backup:
        result = r.last_result.value if r.last_result else "?"
        rows.append(("last attempt", f"{_when(r.last_attempt, now)}: {result}"))
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
    return table(rows)
