"""Plan and apply restores of sessions into opencode's database, always after a safety copy.

``make_plan`` reads and validates everything it will use (the backup is hostile input) and writes
nothing; ``apply_plan`` takes the safety copy and then changes opencode's database. Named sessions and
``--missing`` go through :mod:`.sessions` (one transaction per session, while opencode runs); a full
replace through :mod:`.full` (a database rebuilt from opencode's own schema, opencode stopped).
Both run on the caller's thread (the CLI's, or the service's worker).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup.progress import Sink, nowhere
from app.backup.restore import full, sessions
from app.backup.restore.model import (
    Action,
    Mode,
    NoSuchSession,
    Plan,
    PlanItem,
    RestoreFailed,
    RestoreRefused,
    RestoreRequest,
    RestoreResult,
)
from app.backup.restore.safety import SAFETY_DIR, safety_copy
from app.backup.restore.sessions import newest_doc, versioned_files
from app.errors import BackupError, BackupMoved

logger = logging.getLogger(__name__)

__all__ = [
    "SAFETY_DIR",
    "Action",
    "Mode",
    "NoSuchSession",
    "Plan",
    "PlanItem",
    "RestoreFailed",
    "RestoreRefused",
    "RestoreRequest",
    "RestoreResult",
    "apply_plan",
    "make_plan",
    "newest_doc",
    "safety_copy",
    "versioned_files",
]


# Pauses before planning again when a file went away while the backup was read: a sync running beside
# the restore (the service's, while the tray's Restore… dialog plans) moves a session file into versions/
# now and then. Damage is never retried.
REPLAN_AFTER = (0.2, 0.5, 1.0)


def make_plan(req: RestoreRequest, sleep: Callable[[float], None] = time.sleep) -> Plan:
    """Validate the backup and decide what to restore; writes nothing. Raises BackupError subclasses."""
    if not req.db.is_file():
        raise RestoreRefused(
            f"opencode's database {req.db} does not exist; start opencode once so it creates it, then retry"
        )
    for pause in REPLAN_AFTER:
        try:
            return _plan(req)
        except BackupMoved as exc:
            logger.info("%s (a sync moved it?): planning the restore again", exc)
            sleep(pause)
    return _plan(req)


def _plan(req: RestoreRequest) -> Plan:
    br.check_tree(req.machine_dir)
    if req.files:  # a kept version, or a snapshot's copy this app wrote out itself (plain, local)
        req = replace(req, seal=req.seal.for_folder(False))
        return replace(sessions.plan_sessions(req, {sid: [path] for sid, path in req.files}), seal=req.seal)
    req = replace(req, seal=req.seal.for_folder(_sealed(req)))
    files = br.session_files(req.machine_dir)
    opened = sessions.opened_dir(req.work_dir)
    try:
        if req.replace_all:
            return replace(full.plan_full(req, files, opened), seal=req.seal, opened=opened)
        return replace(sessions.plan_sessions(req, files, opened), seal=req.seal, opened=opened)
    except BaseException:
        shutil.rmtree(opened, ignore_errors=True)
        raise


def _sealed(req: RestoreRequest) -> bool:
    """Whether the manifest says every file of the folder is encrypted (a plain one is then refused)."""
    try:
        return mf.load(req.machine_dir, req.machine_dir.name).encryption.sealed
    except BackupError:
        return False  # the files themselves say whether they are encrypted


def apply_plan(
    plan: Plan, req: RestoreRequest, clock: Callable[[], datetime] | None = None, progress: Sink = nowhere
) -> RestoreResult:
    """Take the safety copy, then change opencode's database as planned."""
    now = (clock or (lambda: datetime.now(UTC)))()
    req = replace(req, seal=plan.seal)
    result = RestoreResult(notes=list(plan.notes))
    result.failed.extend((i.session_id, i.reason) for i in plan.items if i.action is Action.FAIL)
    try:
        if plan.mode is Mode.ALL:
            full.apply_full(plan, req, now, result, progress)
        else:
            sessions.apply_sessions(plan, req, now, result, progress)
    finally:
        plan.discard()
    return result
