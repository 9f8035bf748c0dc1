"""What the backup holds and how the last backup went, for every face that reports it (``status``, the
agent's status tool): from the backup folder, this install's own record and the running service.

Read-only: with the backup folder unreachable (a drive not mounted yet) or damaged it says so instead
of failing. Runs on the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from app import codec, config, paths
from app.backup import manifest as mf
from app.backup.progress import Progress
from app.backup.remote.ledger import upload_state
from app.backup.result import Outcome, SyncResult
from app.backup.state import load_results
from app.errors import BackupDamaged
from app.service import client
from app.service.status import Status
from app.transfer.rclone_spec import cache_dir


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
    backup_problem: str | None  # why the backup folder cannot be used, as config and every command say
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
    progress: Progress | None = None  # how far the service's running backup or restore has got
    encryption: str = "off"  # "encrypted (age)", "re-encrypting (age)" or "off", as the backup folder says
    remote: str | None = None  # an rclone remote's name: the backup is uploaded there from a local mirror
    mirror: str | None = None  # that mirror (this machine's folder, as backed up locally)
    committed: datetime | None = None  # when the mirror last committed a backup (backed up locally)
    uploaded: datetime | None = None  # when the last upload to the remote finished
    upload_pending: bool = False  # the mirror holds a backup the remote does not have yet


def gather(settings: config.Settings) -> BackupStatus:
    """Everything ``status`` reports, from the backup folder, this install's state and the live service."""
    machine_dir = settings.machine_dir  # a remote's: its local mirror
    reachable = machine_dir is not None and machine_dir.is_dir()
    man, damaged = None, None
    if machine_dir is not None and reachable:
        try:
            man = mf.load(machine_dir, settings.machine_name)
        except BackupDamaged as exc:
            damaged = str(exc)
    attempt, backup = _results(settings, machine_dir, man)
    report = BackupStatus(
        backup_path=settings.destination_text,
        machine=settings.machine_name,
        machine_dir=settings.machine_text,
        configured=settings.backup_path is not None,
        backup_reachable=reachable,
        backup_damaged=damaged,
        backup_problem=config.destination_problem(settings),
        sessions_backed_up=len(man.sessions) if man else None,
        storage_files=man.storage_files if man else 0,
        snapshots=len(man.snapshots()) if man else 0,
        backup_bytes=man.total_bytes if man else 0,
        last_backup=backup.ended if backup else None,
        last_attempt=attempt.ended if attempt else None,
        last_result=attempt.outcome if attempt else None,
        last_error=(attempt.error or None) if attempt and not attempt.ok else None,
        service="not running",
        encryption=_encryption(man),
    )
    if settings.remote is not None and machine_dir is not None:
        state = upload_state(cache_dir(settings.remote), machine_dir)
        report = replace(
            report,
            remote=settings.remote.remote,
            mirror=str(machine_dir),
            committed=_time(man.updated) if man else None,
            uploaded=state.uploaded,
            upload_pending=state.pending,
        )
    live = client.live_status(paths.app_state_dir())
    if live is None:
        return report
    if not client.same_backup(live, settings.source, machine_dir):
        return replace(report, service=f"running for another backup ({live.destination or '?'})")
    return _with_live(report, live)


def _encryption(man: mf.Manifest | None) -> str:
    if man is None or (not man.encryption.recipients and man.encryption.rekey_to is None):
        return "off"
    if man.encryption.rekey_to is not None:
        return "re-encrypting (age)" if man.encryption.rekey_to else "decrypting"
    return "encrypted (age)"


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


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
    public = {k: v for k, v in man.last_result.items() if k != "private"}  # sealed in an encrypted folder
    try:
        recorded = codec.from_json(SyncResult, public)
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
        progress=live.progress,
    )
