"""What the status, sync and restore tools do, through the engine. Imported on the first tool call, never
at start-up.

Each function runs on a call thread of the server, loads the settings afresh (the user may have chosen a
backup folder since opencode started the server) and answers a ToolResult. Errors a user can act on (not
configured, backup folder unreachable, damaged backup, opencode's database unusable) come back as error
results of one line; anything else is a bug, which the server turns into an error result too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from app import config, paths, wiring
from app.backup import catalog
from app.backup import manifest as mf
from app.backup import restore as rs
from app.backup.progress import Sink, Throttled
from app.backup.remote.view import Parts
from app.backup.result import Outcome
from app.backup.sync import SyncOptions
from app.errors import BackupDamaged, BackupError, ConfigError
from app.mcp import wording
from app.mcp.calls import CallContext, ToolResult
from app.opencode.locate import locate, restore_target
from app.opencode.sessions import Reader
from app.service import client
from app.status_report import gather

logger = logging.getLogger(__name__)


def status(flags: Mapping[str, object]) -> ToolResult:
    """The backup's state, from the running service when there is one, else from the backup folder."""
    return answer(lambda: _status(flags))


def sync(flags: Mapping[str, object], force: bool, ctx: CallContext) -> ToolResult:
    """One backup now: by the running service when it backs up this folder, else in this process.
    ``force``: also take a database snapshot. ``ctx.cancel`` stops an in-process sync."""
    return answer(lambda: _sync(flags, force, ctx))


def restore(
    flags: Mapping[str, object], confirm: bool, sessions: Sequence[str], ctx: CallContext
) -> ToolResult:
    """The plan for restoring ``sessions`` (default: every backed-up session opencode does not have);
    with ``confirm`` apply it, after a safety copy of opencode's database. Never a full replace."""
    return answer(lambda: _restore(flags, confirm, sessions, ctx))


def answer(work: Callable[[], ToolResult]) -> ToolResult:
    """``work()``, or the one line an error a user can act on comes back as (the call's thread)."""
    try:
        return work()
    except BackupError as exc:  # ConfigError, BackupDamaged, RestoreRefused, NoSuchSession...
        return error(str(exc))
    except sqlite3.Error as exc:
        return error(f"opencode's database cannot be used: {exc}")
    except OSError as exc:
        detail = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        return error(f"a folder or file it needs cannot be used: {detail}")


def error(message: str) -> ToolResult:
    """An error result of one line."""
    line = "".join(c if c.isprintable() else " " for c in message)
    return ToolResult(line, is_error=True)


def settings_of(flags: Mapping[str, object], *, check: bool) -> tuple[config.Settings, Path, Path]:
    """Settings, the backup folder and this machine's folder in it; ConfigError when none is set."""
    settings = config.load({k: v for k, v in flags.items() if v is not None}, check_destination=False)
    if settings.backup_path is None or settings.machine_dir is None:
        raise ConfigError(config.not_configured_message(settings))
    if check:
        config.validate_destination(settings)
    return settings, settings.backup_path, settings.machine_dir


def reachable(settings: config.Settings, backup_path: Path) -> None:
    """Raise the one line a model can relay when the backup folder is not there (a remote is reached
    when it is read)."""
    if settings.remote is None and not backup_path.is_dir():
        raise BackupError(
            f"the backup folder {backup_path} is not reachable (a drive not mounted, or the folder was "
            "removed)"
        )


def _status(flags: Mapping[str, object]) -> ToolResult:
    settings, backup_path, machine_dir = settings_of(flags, check=False)
    reachable(settings, backup_path)
    report = gather(settings)
    if report.backup_damaged:
        raise BackupDamaged(f"the backup is damaged: {report.backup_damaged}")
    changed = None if report.service_pid else _changed_since_backup(settings, machine_dir)
    return ToolResult(wording.status_text(report, changed, datetime.now(UTC)))


def _changed_since_backup(settings: config.Settings, machine_dir: Path) -> int | None:
    """Sessions added, changed or deleted in opencode since the last backup (None: cannot tell)."""
    try:
        man = mf.load(machine_dir, settings.machine_name)
        backed = mf.marks(man)
        live: dict[str, str] = {}
        for db in locate(settings.source, settings.opencode_db).databases:
            with Reader(db) as reader:
                live.update(reader.live(man.store_of).marks)
    except (BackupError, sqlite3.Error, OSError) as exc:
        logger.info("cannot count the changes waiting: %s", exc)
        return None
    return sum(1 for sid, t in live.items() if backed.get(sid) != t) + sum(1 for s in backed if s not in live)


def _told(ctx: CallContext, every: float = 2.0) -> Sink:
    """The engine's progress as the call's progress messages ('backing up sessions: 640 of 1,800'), at
    most one per ``every`` seconds besides each step's first and last (opencode shows the latest)."""
    throttled = Throttled(lambda p: ctx.progress(p.words()), every=every)
    return lambda p: throttled.report(p.step, p.done, p.total, p.nbytes)


def _sync(flags: Mapping[str, object], force: bool, ctx: CallContext) -> ToolResult:
    settings, _backup_path, machine_dir = settings_of(flags, check=True)
    state_dir = paths.app_state_dir()
    live = client.live_status(state_dir)
    result = None
    if live is not None and client.same_backup(live, settings.source, machine_dir):
        # the running service owns this backup: ask it for the sync instead of racing it for the lock
        ctx.progress("the backup service is backing up")
        result = client.sync_via_service(state_dir, force, allow_deletions=False, progress=_told(ctx))
    via_service = result is not None
    if result is None:
        ctx.progress("backing up")
        result = wiring.sync_once(
            settings, SyncOptions(snapshot=force), progress=_told(ctx), cancel=ctx.cancel
        )
    if result.outcome is Outcome.FAILED:
        return error(f"the backup failed: {result.error or 'see the log'}")
    held = None
    if result.outcome is not Outcome.NOTHING_YET:
        try:
            held = len(mf.load(machine_dir, settings.machine_name).sessions)
        except BackupError as exc:
            logger.warning("cannot count the backed-up sessions: %s", exc)
    return ToolResult(wording.sync_text(result, via_service, held))


def _restore(
    flags: Mapping[str, object], confirm: bool, sessions: Sequence[str], ctx: CallContext
) -> ToolResult:
    settings, backup_path, _machine_dir = settings_of(flags, check=False)
    reachable(settings, backup_path)
    with wiring.reading(settings, parts=Parts.SESSIONS) as machine_dir:
        return _restore_from(settings, machine_dir, confirm, sessions, ctx)


def _restore_from(
    settings: config.Settings, machine_dir: Path, confirm: bool, sessions: Sequence[str], ctx: CallContext
) -> ToolResult:
    ids = tuple(sessions)
    if not ids:
        ctx.progress("looking for sessions opencode does not have")
        rows = catalog.session_rows(
            machine_dir, settings.machine_name, settings.source, settings.opencode_db, wiring.keys()
        )
        ids = tuple(r.id for r in rows if not r.in_opencode)
        if not ids:
            return ToolResult(wording.nothing_missing_text(len(rows), sessions))
    work_dir = paths.app_data_dir()
    db = restore_target(settings.source, settings.opencode_db)
    req = rs.RestoreRequest(machine_dir=machine_dir, db=db, work_dir=work_dir, ids=ids, seal=wiring.keys())
    return planned(req, confirm, sessions, ctx)


def planned(
    req: rs.RestoreRequest, confirm: bool, sessions: Sequence[str], ctx: CallContext, lead: str = ""
) -> ToolResult:
    """The plan of ``req`` (nothing changed), or with ``confirm`` the restore itself; ``lead``: a line
    put first (which version a restore "at" a time is)."""
    ctx.progress("checking the backup")
    plan = rs.make_plan(req)
    with plan:  # its decrypted copies go with the answer (a plan alone, or the restore)
        if not plan.actionable and not plan.items:
            return ToolResult(wording.nothing_missing_text(0, sessions))
        first = f"{lead}\n" if lead else ""
        if not confirm:
            return ToolResult(first + wording.plan_text(plan, req.work_dir / rs.SAFETY_DIR))
        ctx.progress("restoring")
        result = rs.apply_plan(plan, req, progress=_told(ctx))
        titles = {i.session_id: i.title for i in plan.items}
        text = first + wording.restored_text(result, titles)
        return ToolResult(text, is_error=not result.restored and not result.ok)
