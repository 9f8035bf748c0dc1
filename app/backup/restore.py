"""Plan and apply restores of sessions into opencode's database, always after a safety copy.

``make_plan`` reads and validates everything it will use (the backup is hostile input) and writes
nothing; ``apply_plan`` takes the safety copy and then changes opencode's database, one transaction
per session. Both run on the caller's thread (the CLI's, or the service's worker).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.backup import backup_reader as br
from app.backup import guard
from app.errors import BackupDamaged, BackupError, UsageError
from app.fsutil import PRIVATE_FILE, make_private_dirs
from app.opencode import importer
from app.opencode.sessions import Reader, open_readonly
from app.platform.process import pid_alive

logger = logging.getLogger(__name__)

SAFETY_DIR = "before-restore"
KEEP_SAFETY_COPIES = 5


class RestoreRefused(BackupError):
    """The restore cannot run as asked (opencode running, nothing to restore from...); nothing changed."""


class NoSuchSession(UsageError):
    """No backed-up session has the id (or prefix) given: a usage error, like an ambiguous prefix."""


class RestoreFailed(BackupError):
    """A restore stopped part-way; the message says what state opencode's database is in."""


@dataclass(frozen=True)
class RestoreRequest:
    """What the user asked for. Exactly one of ``ids``, ``missing``, ``replace_all`` is set."""

    machine_dir: Path
    db: Path
    work_dir: Path  # the app's data dir: safety copies and temp files live here
    ids: tuple[str, ...] = ()
    missing: bool = False
    replace_all: bool = False


class Action(enum.Enum):
    """What a restore does with one session."""

    ADD = "add"  # absent from opencode: its rows are inserted
    REPLACE = "replace"  # present: its rows are deleted, the backup's inserted, in one transaction
    FAIL = "fail"  # cannot be restored (``reason`` says why); the others still are


class Mode(enum.Enum):
    SESSIONS = "sessions"  # the sessions named
    MISSING = "missing"  # every backed-up session opencode does not have
    ALL = "all"  # rebuild the whole database from the newest snapshot


@dataclass(frozen=True)
class PlanItem:
    """One session of the plan."""

    session_id: str
    title: str
    action: Action
    rows: int
    bytes: int
    path: Path
    sha256: str
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    """What a restore will do; ``snapshot`` is set for a full replace."""

    mode: Mode
    db: Path
    items: tuple[PlanItem, ...]
    snapshot: br.SnapshotRef | None = None
    notes: tuple[str, ...] = ()

    @property
    def actionable(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.action is not Action.FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "database": str(self.db),
            "snapshot": str(self.snapshot.path) if self.snapshot else None,
            "sessions": [
                {
                    "session_id": i.session_id,
                    "title": i.title,
                    "action": i.action.value,
                    "rows": i.rows,
                    "bytes": i.bytes,
                    "path": str(i.path),
                    "sha256": i.sha256,
                    "reason": i.reason,
                }
                for i in sorted(self.items, key=lambda i: i.session_id)
            ],
            "rows": sum(i.rows for i in self.actionable),
            "bytes": sum(i.bytes for i in self.actionable),
            "notes": list(self.notes),
        }


@dataclass
class RestoreResult:
    """What a restore did."""

    safety_copy: Path | None = None
    restored: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "safety_copy": str(self.safety_copy) if self.safety_copy else None,
            "restored": [{"id": sid, "rows_added": n} for sid, n in self.restored],
            "failed": [{"id": sid, "error": why} for sid, why in self.failed],
            "notes": self.notes,
        }


def make_plan(req: RestoreRequest) -> Plan:
    """Validate the backup and decide what to restore; writes nothing. Raises BackupError subclasses.

    ``missing`` takes every backed-up session opencode does not have, including those deleted in
    opencode whose deletion was backed up (their last copy in ``versions/``): what the tray's picker
    marks missing, and what "I deleted it by mistake" needs."""
    if not req.db.is_file():
        raise RestoreRefused(
            f"opencode's database {req.db} does not exist; start opencode once so it creates it, then retry"
        )
    br.check_tree(req.machine_dir)
    files = br.session_files(req.machine_dir)
    if req.replace_all:
        from app.backup import restore_full

        return restore_full.plan_full(req, files)
    with Reader(req.db) as reader:
        live_ids = set(reader.sessions())
    notes: list[str] = []
    older = versioned_files(req.machine_dir)  # deleted in opencode, then synced away
    if req.ids:
        chosen = []
        for arg in req.ids:
            try:
                chosen.append(resolve_id(arg, files))
            except NoSuchSession:
                if not any(sid.startswith(arg) for sid in older):
                    raise
                sid = resolve_id(arg, older)
                files[sid] = older[sid]
                notes.append(f"{sid} was deleted from the backup's sessions/; restoring its last copy")
                notes[-1] += f" in {older[sid][0].relative_to(req.machine_dir).parts[1]}"
                chosen.append(sid)
        mode = Mode.SESSIONS
    elif req.missing:
        for sid, paths in older.items():
            files.setdefault(sid, paths)
        chosen = sorted(sid for sid in files if sid not in live_ids)
        mode = Mode.MISSING
    else:
        raise UsageError("say which sessions to restore: IDs, --missing or --all --replace")
    conn = open_readonly(req.db)
    try:
        live = importer.live_schema(conn)
        items: list[PlanItem] = []
        for sid in dict.fromkeys(chosen):
            doc = newest_doc(sid, files[sid])
            action = Action.REPLACE if sid in live_ids and req.ids else Action.ADD
            items.append(plan_item(live, doc, action, notes, conn))
    finally:
        conn.close()
    return Plan(mode, req.db, tuple(items), notes=tuple(dict.fromkeys(notes)))


def resolve_id(arg: str, files: dict[str, list[Path]]) -> str:
    """An exact session id of the backup, or the only one starting with ``arg``."""
    if arg in files:
        return arg
    matches = [sid for sid in files if sid.startswith(arg)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoSuchSession(f"no backed-up session matches {arg!r} (see 'opencode-backup list')")
    raise UsageError(f"{arg!r} matches {len(matches)} sessions; give more of the id")


def versioned_files(machine_dir: Path) -> dict[str, list[Path]]:
    """Session id -> its file in the newest ``versions/<stamp>/sessions/`` that has one."""
    found: dict[str, list[Path]] = {}
    root = machine_dir / "versions"
    if not root.is_dir():
        return found
    for stamp in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        for sid, paths in br.session_files(stamp).items():
            found.setdefault(sid, paths)
    return found


def newest_doc(sid: str, paths: list[Path]) -> br.SessionDoc:
    """The validated session file of ``sid`` (when a session moved project, the newest copy)."""
    docs = [br.read_session(p, sid) for p in paths]
    return max(docs, key=lambda d: d.time_updated)


def plan_item(
    live: importer.LiveSchema,
    doc: br.SessionDoc,
    action: Action,
    notes: list[str],
    conn: sqlite3.Connection | None = None,
) -> PlanItem:
    """A plan line for ``doc``; a session that does not map onto the live schema, or reaches outside its
    own session (checked against the file and, with ``conn``, the live database), becomes a FAIL line."""
    reason = ""
    try:
        mapped = importer.map_session(live, doc.session_id, doc.rows)
        if conn is not None:
            importer.check_live_owners(conn, live, mapped)
        notes.extend(mapped.notes)
    except importer.SessionRefused as exc:
        action, reason = Action.FAIL, f"refused: {exc}"
    except importer.SessionNotMappable as exc:
        action, reason = Action.FAIL, str(exc)
    return PlanItem(doc.session_id, doc.title, action, doc.row_count, doc.size, doc.path, doc.sha256, reason)


def reread(item: PlanItem) -> br.SessionDoc:
    """Read a planned session file again and make sure it did not change since it was validated."""
    doc = br.read_session(item.path, item.session_id)
    if doc.sha256 != item.sha256:
        raise BackupDamaged(f"{item.path.name} changed while restoring; run the restore again")
    return doc


def apply_plan(plan: Plan, req: RestoreRequest, clock: Callable[[], datetime] | None = None) -> RestoreResult:
    """Take the safety copy, then restore each planned session in its own transaction."""
    now = (clock or (lambda: datetime.now(UTC)))()
    result = RestoreResult(notes=list(plan.notes))
    result.failed.extend((i.session_id, i.reason) for i in plan.items if i.action is Action.FAIL)
    if plan.mode is Mode.ALL:
        from app.backup import restore_full

        restore_full.apply_full(plan, req, now, result)
        return result
    if not plan.actionable:
        return result
    result.safety_copy = safety_copy(req.db, req.work_dir / SAFETY_DIR, now)
    conn = importer.open_writable(req.db)
    try:
        live = importer.live_schema(conn)
        for item in plan.actionable:
            try:
                doc = reread(item)
                mapped = importer.map_session(live, item.session_id, doc.rows)
                added = importer.apply_session(conn, live, mapped, replace=item.action is Action.REPLACE)
            except (BackupError, importer.SessionNotMappable, sqlite3.Error) as exc:
                logger.error("session %s not restored: %s", item.session_id, exc)
                result.failed.append((item.session_id, f"not restored: {exc}"))
                continue
            result.restored.append((item.session_id, added))
    finally:
        conn.close()
    return result


def safety_copy(db: Path, folder: Path, now: datetime) -> Path:
    """Copy ``db`` with SQLite's backup API (one step) into ``folder``; keep the newest few; return it.

    The copy holds opencode's tokens: the folder is private and the file 0600 from its creation on;
    a temp copy a killed restore left behind is removed first."""
    make_private_dirs(folder)
    sweep_dead_temps(folder)
    target = folder / f"{db.stem}-before-restore-{guard.stamp(now)}.db"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    os.close(fd)  # SQLite writes into the private empty file (and gives its journal the same mode)
    src = open_readonly(db)
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        src.close()
    os.replace(tmp, target)
    copies = sorted(p for p in folder.glob("*-before-restore-*.db") if not p.name.startswith("."))
    for old in copies[:-KEEP_SAFETY_COPIES]:
        with contextlib.suppress(OSError):
            old.unlink()
    logger.info("safety copy of %s: %s", db.name, target)
    return target


_TEMP_PID = re.compile(r"\.tmp-(\d+)(-journal|-wal)?$")


def sweep_dead_temps(folder: Path) -> int:
    """Remove ``.name.tmp-<pid>`` files whose process is gone (what a killed restore leaves)."""
    removed = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as it:
        for entry in it:
            m = _TEMP_PID.search(entry.name)
            if m and entry.name.startswith(".") and not pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
