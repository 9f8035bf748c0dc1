"""Restoring chosen sessions into a live opencode database: add the missing ones, or replace named ones.

Every session file is read and validated (the backup is hostile input) when planning, and again when
applying; each session is one transaction, after the safety copy. Runs on the caller's thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup.progress import Sink, Step, Throttled, nowhere
from app.backup.restore.model import (
    Action,
    Mode,
    NoSuchSession,
    Plan,
    PlanItem,
    RestoreRequest,
    RestoreResult,
)
from app.backup.restore.safety import SAFETY_DIR, safety_copy
from app.crypt.age import file_is_sealed
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupDamaged, BackupError, BackupMoved, UsageError
from app.fsutil import atomic_writer, fsync_path, make_private_dirs
from app.opencode import importer
from app.opencode.sessions import Reader
from app.opencode.stores import BY_FORMAT

logger = logging.getLogger(__name__)
OPENED = "restore-opened"
STALE_OPENED = 24 * 3600.0  # a plan folder this old was left by a crash or a dialog never answered


def plan_sessions(req: RestoreRequest, files: dict[str, list[Path]], opened: Path | None = None) -> Plan:
    """The plan for named sessions, or for ``missing``: every backed-up session opencode does not have,
    including those deleted in opencode whose deletion was backed up (their last copy in ``versions/``):
    what the tray's picker marks missing, and what "I deleted it by mistake" needs. Writes nothing."""
    with Reader(req.db) as reader:  # one read view for the ids, the schema and the owners of live rows
        return _plan_sessions(req, files, reader, opened)


def _plan_sessions(
    req: RestoreRequest, files: dict[str, list[Path]], reader: Reader, opened: Path | None
) -> Plan:
    live_ids = set(reader.live(_backed_up_stores(req.machine_dir)).marks)
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
    live = importer.live_schema(reader.conn)
    items: list[PlanItem] = []
    for sid in dict.fromkeys(chosen):
        try:
            doc = newest_doc(sid, files[sid], req.seal, opened)
        except BackupMoved:
            raise  # a sync moved it: the whole plan is made again
        except BackupDamaged as exc:  # fails its own session only
            items.append(unreadable(sid, files[sid][0], exc))
            continue
        action = Action.REPLACE if sid in live_ids and req.ids else Action.ADD
        items.append(plan_item(live, doc, action, notes, reader.conn))
    return Plan(mode, req.db, tuple(items), notes=tuple(dict.fromkeys(notes)))


def _backed_up_stores(machine_dir: Path) -> Callable[[str], str | None]:
    """The store tag the manifest records for a session (2.0 deleted the 2.0 sessions only 1.x rows are
    left of); none when the manifest cannot be read (the restore reads the session files themselves)."""
    try:
        return mf.load(machine_dir, machine_dir.name).store_of
    except BackupError as exc:
        logger.info("restore: the manifest is not readable (%s); telling stores apart without it", exc)
        return lambda session_id: None


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


def newest_doc(sid: str, paths: list[Path], seal: Seal = PLAIN, opened: Path | None = None) -> br.SessionDoc:
    """The validated session file of ``sid`` (when a session moved project, the newest copy). ``opened``:
    a private folder where the content of an encrypted file is kept for the apply (``doc.path`` then
    names it), so a restore decrypts each file once."""
    docs = [_read(p, sid, seal, opened) for p in paths]
    return max(docs, key=lambda d: d.time_updated)


def _read(path: Path, sid: str, seal: Seal, opened: Path | None) -> br.SessionDoc:
    if opened is None or not file_is_sealed(path):  # unreadable: the reader says what is wrong with it
        return br.read_session(path, sid, seal=seal)
    content = br.opened(seal, br.read_bytes_capped(path, br.MAX_SESSION_BYTES), path)
    kept = opened / path.parent.name / path.name  # one per project folder: a session may sit in two
    make_private_dirs(kept.parent)
    with atomic_writer(kept, fsync=False) as fh:
        fh.write(content)
    return br.parse_session(content, kept, sid)


def opened_dir(work_dir: Path) -> Path:
    """A new folder (private, made when first used) where one plan keeps the decrypted session files it
    planned until it is applied or let go: a plan of its own, so a restore planned meanwhile (the
    agent's, while the tray's confirmation is open) neither takes nor removes another's. Folders a crash
    or an unanswered dialog left are removed once a day old (and the one folder older versions shared)."""
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(work_dir) as entries:
        for e in entries:
            if e.name == OPENED or e.name.startswith(OPENED + "-"):
                with contextlib.suppress(OSError):
                    if e.name == OPENED or now - e.stat(follow_symlinks=False).st_mtime > STALE_OPENED:
                        shutil.rmtree(e.path, ignore_errors=True)
    return work_dir / f"{OPENED}-{uuid.uuid4().hex}"


def unreadable(sid: str, path: Path, exc: BackupDamaged) -> PlanItem:
    """The plan line of a session whose file cannot be read: it is not restored, and says why."""
    return PlanItem(sid, "", Action.FAIL, 0, 0, path, "", f"cannot be read: {exc}")


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
        mapped = importer.map_session(live, doc.session_id, doc.rows, doc.store)
        if conn is not None:
            importer.check_live_owners(conn, live, mapped)
        notes.extend(mapped.notes)
    except importer.SessionRefused as exc:
        action, reason = Action.FAIL, f"refused: {exc}"
    except importer.SessionNotMappable as exc:
        action, reason = Action.FAIL, str(exc)
    return PlanItem(doc.session_id, doc.title, action, doc.row_count, doc.size, doc.path, doc.sha256, reason)


def reread(item: PlanItem, seal: Seal = PLAIN, opened: Path | None = None) -> br.SessionDoc:
    """Read a planned session file again and make sure it did not change since it was validated (the
    decrypted copy the plan kept in ``opened``, for an encrypted one)."""
    kept = opened is not None and item.path.is_relative_to(opened)
    doc = read_again(item.path, item.session_id, item.sha256, PLAIN if kept else seal)
    if doc is None:
        raise BackupDamaged(f"{item.path.name} changed while restoring; run the restore again")
    return doc


def read_again(path: Path, expected_id: str, sha256: str, seal: Seal = PLAIN) -> br.SessionDoc | None:
    """The session file ``br.read_session`` validated before, read again: None when its bytes changed
    since (their sha256 is not ``sha256``). The same bytes give the same document, so the checks are not
    run twice: only the parse and the blobs' decoding (a restore of 1,800 sessions spent 2.5 s checking
    each file a second time)."""
    data = br.read_bytes_capped(path, br.MAX_SESSION_BYTES)
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    doc = json.loads(br.opened(seal, data, path))
    store = BY_FORMAT[doc["format"]]
    rows: dict[str, list[br.Row]] = doc["rows"]
    for table_rows in rows.values():
        for row in table_rows:
            for column, value in row.items():
                if type(value) is dict:  # {"$blob": base64}: checked to be one when it was validated
                    row[column] = base64.b64decode(value["$blob"], validate=True)
    session = rows[store.root][0]
    title = session.get("title")
    return br.SessionDoc(
        session_id=expected_id,
        project_id=session["project_id"],
        title=title if isinstance(title, str) else "",
        time_updated=session.get("time_updated", 0),
        rows=rows,
        path=path,
        size=len(data),
        sha256=sha256,
        store=store.tag,
    )


def apply_sessions(
    plan: Plan, req: RestoreRequest, now: datetime, result: RestoreResult, progress: Sink = nowhere
) -> None:
    """Take the safety copy, then restore each planned session in its own transaction."""
    if not plan.actionable:
        return
    tell = Throttled(progress)
    todo = plan.actionable
    result.safety_copy = safety_copy(req.db, req.work_dir / SAFETY_DIR, now)
    conn = importer.open_writable(req.db)
    try:
        wal = _commits_without_fsync(conn)
        live = importer.live_schema(conn)
        nbytes = 0  # of session files read
        for done, item in enumerate(todo):
            tell.report(Step.RESTORING, done, len(todo), nbytes)
            nbytes += item.bytes
            try:
                doc = reread(item, req.seal, plan.opened)
                mapped = importer.map_session(live, item.session_id, doc.rows, doc.store)
                added = importer.apply_session(conn, live, mapped, replace=item.action is Action.REPLACE)
            except (BackupError, importer.SessionNotMappable, sqlite3.Error) as exc:
                logger.error("session %s not restored: %s", item.session_id, exc)
                result.failed.append((item.session_id, f"not restored: {exc}"))
                continue
            result.restored.append((item.session_id, added))
        tell.report(Step.RESTORING, len(todo), len(todo), nbytes)
    finally:
        conn.close()
    if wal:
        _sync_log(req.db)  # what was restored is on the disk before the restore says so


def _sync_log(db: Path) -> None:
    """fsync the database's write-ahead log, where the commits made with ``synchronous=NORMAL`` are.
    Not a checkpoint: a passive one syncs the log only when it can copy frames past every reader's (an
    opencode that is running may hold an old one)."""
    with contextlib.suppress(FileNotFoundError):  # the last connection closed checkpointed and removed it
        fsync_path(db.with_name(db.name + "-wal"), commit=True)


def _commits_without_fsync(conn: sqlite3.Connection) -> bool:
    """In WAL mode (opencode's), let each session's commit go without waiting for the disk
    (``synchronous=NORMAL``): the database stays consistent whatever happens, a power cut may only lose
    the sessions restored last, and the log is synced once at the end. 1,800 commits spent 4.0 s,
    3.5 s this way. Returns whether it is WAL (in rollback mode NORMAL could corrupt on a power cut)."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        return False
    conn.execute("PRAGMA synchronous=NORMAL")
    return True
