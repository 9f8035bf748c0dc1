"""The command-line commands: turn parsed arguments into calls on the engine and print results.

The only module that prints. Every command returns an exit code: 0 ok, 1 failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import cli_restore, config, paths
from app.backup import manifest as mf
from app.backup import restore
from app.backup.state import load_last_result
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.errors import BackupError, ConfigError
from app.opencode.locate import locate
from app.opencode.sessions import Reader
from app.transfer import make_engine

logger = logging.getLogger(__name__)


def load_settings(args: argparse.Namespace, *, service: bool = False, check: bool = True) -> config.Settings:
    """Settings from flags, environment and files. For the ``service`` a backup folder whose parent is
    missing (a drive not mounted yet) is accepted: the service retries instead of refusing to start.
    ``check=False`` skips the backup folder's checks (the tray shows their failure itself)."""
    flags = {
        "backupPath": getattr(args, "backup_path", None),
        "source": getattr(args, "source", None),
        "machineName": getattr(args, "machine_name", None),
        "engine": getattr(args, "engine", None),
        "debug": getattr(args, "debug", None),
    }
    settings = config.load(
        {k: v for k, v in flags.items() if v is not None}, check_destination=check and not service
    )
    if service and check:
        config.validate_destination(settings, allow_unmounted=True)
    return settings


def require_destination(settings: config.Settings) -> Path:
    if settings.machine_dir is None:
        raise ConfigError(config.not_configured_message(settings))
    return settings.machine_dir


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(text)


def cmd_config(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    rows = config.describe(settings)
    width = max(len(k) for k, _v, _o in rows)
    _emit(args, config.as_json(settings), "\n".join(f"{k:<{width}}  {v}  ({o})" for k, v, o in rows))
    return 0


def context_for(settings: config.Settings) -> SyncContext:
    assert settings.backup_path is not None
    return SyncContext(
        backup_path=settings.backup_path,
        machine=settings.machine_name,
        source=settings.source,
        opencode_db=settings.opencode_db,
        staging_dir=paths.app_data_dir() / "staging" / settings.machine_name,
        state_dir=paths.app_state_dir(),
        engine=make_engine(settings.engine),
        snapshot_every_hours=settings.snapshot_every_hours,
        keep_snapshots=settings.keep_snapshots,
        keep_versions_days=settings.keep_versions_days,
    )


def cmd_sync(args: argparse.Namespace) -> int:
    from app import cli_service

    settings = load_settings(args)
    require_destination(settings)
    # a running service owns the backup: ask it for this sync instead of racing it for the lock
    result = cli_service.sync_via_service(paths.app_state_dir(), args.snapshot, args.allow_deletions)
    if result is None:
        result = run_sync(
            context_for(settings), SyncOptions(snapshot=args.snapshot, allow_deletions=args.allow_deletions)
        )
    text = f"{result.result}: {result.summary()}"
    if result.result == "failed":
        if getattr(args, "json", False):
            _emit(args, result.to_dict(), text)
        print(f"opencode-backup: sync failed: {result.error}", file=sys.stderr)
        return 1
    for warning in result.skipped:
        print(f"warning: not copied (empty or damaged in opencode's storage): {warning}", file=sys.stderr)
    _emit(args, result.to_dict(), text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from app import cli_service

    settings = load_settings(args)
    machine_dir = settings.machine_dir
    reachable = machine_dir is not None and machine_dir.is_dir()
    man = mf.load(machine_dir, settings.machine_name) if machine_dir is not None and reachable else None
    last = load_last_result(paths.app_state_dir()) or (man.last_result if man else None) or {}
    data = {
        "backup_path": str(settings.backup_path) if settings.backup_path else None,
        "machine": settings.machine_name,
        "configured": settings.backup_path is not None,
        "backup_reachable": reachable,
        "sessions_backed_up": len(man.sessions) if man else None,
        "storage_files": man.storage_files if man else 0,
        "snapshots": sum(1 for rel in man.files if rel.startswith("snapshots/")) if man else 0,
        "backup_bytes": man.total_bytes if man else 0,
        "last_sync": last.get("finished") or last.get("started"),
        "last_result": last.get("result"),
        "last_error": last.get("error") or None,
        "syncs_this_session": 0,
        "pending": None,
        "service": "not running",
    }
    live = cli_service.live_status(paths.app_state_dir())
    if live is not None:  # a running service knows better than the files
        data.update(
            {
                "service": live.state,
                "service_pid": live.pid,
                "last_sync": live.last_sync or data["last_sync"],
                "last_result": live.last_result or data["last_result"],
                "last_error": live.last_error if live.last_result else data["last_error"],
                "syncs_this_session": live.syncs,
                "pending": live.pending,
                "next_sync": live.next_sync,
                "next_retry": live.next_retry,
                "failing_since": live.failing_since,
            }
        )
    if settings.backup_path is None:
        text = config.not_configured_message(settings)
    else:
        text = "\n".join(f"{k}: {'-' if v is None else v}" for k, v in data.items())
        if not reachable:  # not "0 sessions": nothing can be said about a folder that is not there
            text = f"backup folder not reachable (not mounted, or not created yet): {machine_dir}\n" + text
    _emit(args, data, text)
    return 0


def session_rows(settings: config.Settings, machine_dir: Path) -> list[dict[str, Any]]:
    """Every backed-up session of ``machine_dir``, newest first, and whether opencode still has it
    (what ``list`` prints and the tray's restore picker shows). A session deleted in opencode and
    then synced away lives on in ``versions/``; it is listed too (``in_backup`` False)."""
    man = mf.load(machine_dir, settings.machine_name)
    live: set[str] = set()
    for db in locate(settings.source, settings.opencode_db).databases:
        with Reader(db) as reader:
            live.update(reader.sessions())
    rows = [
        _row(
            sid, e.title, e.project_id, e.directory, e.time_updated, size=e.size, live=sid in live, kept=True
        )
        for sid, e in man.sessions.items()
    ]
    for sid, files in restore.versioned_files(machine_dir).items():
        if sid in man.sessions:
            continue
        try:
            doc = restore.newest_doc(sid, files)
        except BackupError as exc:
            logger.warning("skipping an unreadable old copy of %s: %s", sid, exc)
            continue
        session = (doc.rows.get("session") or [{}])[0]
        directory = str(session.get("directory") or "")
        rows.append(
            _row(
                sid,
                doc.title,
                doc.project_id,
                directory,
                doc.time_updated,
                size=doc.size,
                live=sid in live,
                kept=False,
            )
        )
    rows.sort(key=lambda r: r["time_updated"], reverse=True)
    return rows


def _row(
    sid: str,
    title: str,
    project: str,
    directory: str,
    updated_ms: int,
    *,
    size: int,
    live: bool,
    kept: bool = True,
) -> dict[str, Any]:
    return {
        "id": sid,
        "title": title,
        "project_id": project,
        "directory": directory,
        "time_updated": datetime.fromtimestamp(updated_ms / 1000, UTC).isoformat(timespec="seconds"),
        "bytes": size,
        "in_opencode": live,
        "in_backup": kept,
    }


def cmd_list(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    rows = session_rows(settings, require_destination(settings))
    lines = [
        f"{r['id']}  {r['time_updated']}  {' ' if r['in_opencode'] else '✗'} {r['title']}  ({r['directory']})"
        + ("" if r["in_backup"] else "  [deleted; last copy in versions/]")
        for r in rows
    ]
    lines.append(f"{len(rows)} session(s) backed up; ✗ = no longer in opencode")
    _emit(args, rows, "\n".join(lines))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    machine_dir = require_destination(settings)
    report = verify(machine_dir, settings.machine_name, paths.app_data_dir() / "verify")
    text = "\n".join(
        [
            *report.problems,
            f"{'OK' if report.ok else 'FAILED'}: {report.checked} files checked, "
            f"{len(report.problems)} problem(s)",
        ]
    )
    _emit(args, {"ok": report.ok, "checked": report.checked, "problems": report.problems}, text)
    return 0 if report.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "config": cmd_config,
    "sync": cmd_sync,
    "status": cmd_status,
    "list": cmd_list,
    "verify": cmd_verify,
    "restore": cli_restore.cmd_restore,
}
