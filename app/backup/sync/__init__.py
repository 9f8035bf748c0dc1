"""One sync: plan -> apply -> record. Runs on the worker thread (or the command line's).

- :mod:`.plan` reads opencode and the committed manifest and stages what changed; the guard runs here, so
  a source that lost most of its sessions changes nothing at the destination.
- :mod:`.apply` changes the destination: intent first, old content kept in ``versions/``, files replaced
  atomically, deletions moved to ``versions/``.
- :mod:`.record` commits the manifest for what is really there now, then cleans up.

A crash at any write, rename or fsync leaves either the old backup or the new one, plus an intent that
says which files an interrupted sync may already have replaced; the next sync completes it
(tests/test_crash_points.py injects a crash at every such boundary).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.backup import intent, rekey
from app.backup import manifest as mf
from app.backup.destination import Destination, prepare_destination, sweep_stale_temp
from app.backup.ownership import LEASE_SECONDS, Identity, install_id, no_identity, take_lease, writing
from app.backup.progress import Report, Sink, Throttled, nowhere
from app.backup.remote.site import RemoteSite
from app.backup.result import Outcome, SyncResult
from app.backup.state import record_result, sync_lock
from app.backup.sync.apply import apply
from app.backup.sync.plan import Planner
from app.backup.sync.record import Retention, record
from app.crypt.seal import PLAIN, SealSource
from app.errors import (
    REPAIR_HINT,
    UNLOCK_HINT,
    BackupDamaged,
    CryptError,
    FailureKind,
    SyncFailed,
    TransferError,
)
from app.fsutil import make_private_dirs
from app.opencode.locate import Source, locate
from app.opencode.sessions import ExportCache
from app.transfer.base import Engine
from app.transfer.classify import kind_for_oserror

__all__ = ["SyncContext", "SyncOptions", "run_sync", "run_upload"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# The lease is taken for LEASE_SECONDS when the sync starts; a plan that took a good part of that renews
# it before the destination changes (an incremental sync does not write it twice: 0.2 ms of 17)
LEASE_RENEW_AFTER = timedelta(seconds=LEASE_SECONDS / 5)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SyncOptions:
    """``dirty``: relative paths under opencode's data dir that changed (None = walk everything)."""

    snapshot: bool = False
    allow_deletions: bool = False
    dirty: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SyncContext:
    """Everything one sync needs from outside; tests build it with fakes."""

    backup_path: Path
    machine: str
    source: Path
    opencode_db: Path | None
    staging_dir: Path
    state_dir: Path
    engine: Engine
    snapshot_every_hours: float = 24
    keep_snapshots: int = 7
    keep_versions_days: int = 30
    manifests: mf.ManifestStore = field(default_factory=mf.ManifestStore)
    # what the exporter keeps between syncs: the row texts of the sessions in use (a warm service re-encodes
    # only the rows a reply added or changed) and each database's schema
    exporter: ExportCache = field(default_factory=ExportCache)
    clock: Clock = utc_now
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Sink = nowhere  # how far a long sync has got (throttled); the service shows it
    identity: Identity = no_identity  # this computer and account: tells a reinstall from another computer
    # what the files written now are encrypted to, and the keys to open older ones (asked at each sync)
    seal: SealSource = PLAIN
    # a backup on an rclone remote: ``backup_path`` is then its local mirror, uploaded after each commit
    remote: RemoteSite | None = None

    @property
    def machine_dir(self) -> Path:
        return self.backup_path / self.machine


def run_sync(ctx: SyncContext, options: SyncOptions | None = None) -> SyncResult:
    """Run one sync and return its result; failures are results too (``outcome`` FAILED).

    The result is logged at INFO: the caller (the service's log, the command line's output) says what
    matters to its reader, once.
    """
    options = options or SyncOptions()
    t0 = time.monotonic()
    started = ctx.clock()
    result = SyncResult(Outcome.OK, started, destination=str(ctx.machine_dir))
    try:
        with sync_lock(ctx.state_dir):
            result = _sync(replace(ctx, seal=ctx.seal.current()), options, result, t0)
    except (SyncFailed, TransferError) as exc:
        result = _failed(result, exc.kind, str(exc), exc.path)
    except BackupDamaged as exc:  # the index (or a file it names) cannot be used: a person must repair it
        result = _failed(result, FailureKind.DAMAGED, f"{exc}; {REPAIR_HINT}")
    except OSError as exc:
        where = _relative(exc.filename, ctx.machine_dir)
        message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        result = _failed(result, kind_for_oserror(exc), message, where)
    except sqlite3.Error as exc:
        busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        kind = FailureKind.LOCKED if busy else FailureKind.FATAL
        result = _failed(result, kind, f"cannot read opencode's database: {exc}")
    except Exception as exc:  # a bug must not kill the service; it becomes a failed sync with a traceback
        logger.exception("sync crashed")
        result = _failed(result, FailureKind.FATAL, f"internal error: {exc!r}")
    if result.finished is None:  # did not get to the commit: it ended now
        elapsed = time.monotonic() - t0
        result = replace(result, finished=started + timedelta(seconds=elapsed), duration_s=round(elapsed, 3))
    logger.info("sync %s: %s", result.outcome.value, result.summary())
    with contextlib.suppress(OSError):
        record_result(ctx.state_dir, result)
    return result


def run_upload(ctx: SyncContext) -> SyncResult:
    """Bring the remote of ``ctx`` up to its mirror's committed backup without reading opencode (after
    ``repair`` or ``adopt`` mended the mirror); a result as a sync's, FAILED when the upload failed."""
    started = ctx.clock()
    result = SyncResult(Outcome.OK, started, started, destination=str(ctx.machine_dir))
    if ctx.remote is None:
        return result
    try:
        with sync_lock(ctx.state_dir):
            me = install_id(ctx.state_dir)
            ctx.remote.prepare(ctx.machine, me, ctx.identity, started, cancel=ctx.cancel)
            return _upload(ctx, ctx.remote, result, Throttled(ctx.progress).report)
    except (SyncFailed, TransferError) as exc:
        return _failed(result, exc.kind, str(exc), exc.path)
    except BackupDamaged as exc:
        return _failed(result, FailureKind.DAMAGED, f"{exc}; {REPAIR_HINT}")


def _sync(ctx: SyncContext, options: SyncOptions, result: SyncResult, t0: float) -> SyncResult:
    source = locate(ctx.source, ctx.opencode_db)
    missing = (ctx.opencode_db is not None and not source.databases) or not source.exists
    if missing and not _backed_up_before(ctx):
        # a new install: opencode has not written anything yet. Nothing to copy, nothing failed.
        where = ctx.opencode_db if ctx.opencode_db is not None else ctx.source
        note = f"opencode has not saved anything in {where} (it does with its first session)"
        return replace(result, outcome=Outcome.NOTHING_YET, note=note)
    if ctx.remote is not None:
        make_private_dirs(ctx.backup_path)  # the local mirror, in our cache: never a drive to wait for
    dest = prepare_destination(ctx.backup_path, ctx.machine)
    me = install_id(ctx.state_dir)
    report = Throttled(ctx.progress).report
    unreachable = _prepare(ctx, me, result.started, report)
    with writing(dest.machine_dir, ctx.machine, me, ctx.identity, result.started):
        result = _write(ctx, options, result, t0=t0, dest=dest, source=source, me=me)
    if unreachable is not None:  # backed up locally; the upload waits for the remote
        return result if not result.ok else _failed(result, unreachable.kind, str(unreachable))
    if ctx.remote is not None:
        result = _upload(ctx, ctx.remote, result, report)
    return result


def _prepare(ctx: SyncContext, me: str, now: datetime, report: Report) -> TransferError | None:
    """A remote's mirror made ready for the sync; the remote's failure when it cannot be reached now but
    the mirror can take a backup all the same (the sync then backs up locally)."""
    if ctx.remote is None:
        return None
    try:
        ctx.remote.prepare(ctx.machine, me, ctx.identity, now, cancel=ctx.cancel, report=report)
    except TransferError as exc:
        if not exc.kind.retryable or not ctx.remote.has_mirror(ctx.machine):
            raise
        logger.info("backing up locally: %s", exc)
        return exc
    return None


def _upload(ctx: SyncContext, remote: RemoteSite, result: SyncResult, report: Report) -> SyncResult:
    """After the local commit: put it on the remote, unless uploads must wait now. A failed upload fails
    the sync (its kind says whether it is retried); a sync that failed already keeps its own failure."""
    held = remote.held()
    if held is not None:
        note = f"backed up on this computer; the upload waits: {held}"
        return result if not result.ok else _failed(result, FailureKind.HELD_BACK, note)
    man = ctx.manifests.load(ctx.machine_dir, ctx.machine)  # the one just saved, from the store's hands
    try:
        sent = remote.push(ctx.machine, man, ctx.clock(), ctx.cancel, report)
    except TransferError as exc:
        if not result.ok:
            logger.warning("the upload failed too: %s", exc)
            return result
        return _failed(result, exc.kind, str(exc))
    finally:
        ctx.manifests.give_back(ctx.machine_dir, man)
    return replace(result, uploaded_bytes=sent)


def _write(
    ctx: SyncContext,
    options: SyncOptions,
    result: SyncResult,
    *,
    t0: float,
    dest: Destination,
    source: Source,
    me: str,
) -> SyncResult:
    man = ctx.manifests.load(dest.machine_dir, ctx.machine)
    progress = Throttled(ctx.progress)
    interrupted = _interrupted(dest)
    if interrupted is not None and interrupted.stamp == rekey.STAMP:  # a re-encryption was cut short
        rekeyed = _rekey(ctx, man, dest, progress, interrupted.writes)
        man, interrupted = ctx.manifests.load(dest.machine_dir, ctx.machine), None
        result = replace(result, rekeyed=rekeyed.files, warnings=rekeyed.left)
    if interrupted is not None and options.dirty is not None:
        options = replace(options, dirty=None)  # finish what an interrupted sync began: look at everything
    if options.dirty is None:
        sweep_stale_temp(dest.machine_dir, result.started.timestamp())
    if ctx.opencode_db is not None and not source.databases:
        raise SyncFailed(
            f"the database named by OPENCODE_DB is gone: {ctx.opencode_db} (the backup holds sessions "
            "from it); retrying",
            FailureKind.SOURCE_MISSING,
        )
    if not source.exists:
        raise SyncFailed(
            f"opencode's data is gone from {ctx.source} (the backup holds sessions from there); retrying",
            FailureKind.SOURCE_MISSING,
        )
    planner = Planner(
        staging=ctx.staging_dir,
        source=source,
        dirty=options.dirty,
        snapshot=options.snapshot,
        allow_deletions=options.allow_deletions,
        snapshot_every_hours=ctx.snapshot_every_hours,
        started=result.started,
        cancel=ctx.cancel,
        report=progress.report,
        exporter=ctx.exporter,
        cache=ctx.manifests.cache(dest.machine_dir),
        seal=ctx.seal.current(),
    )
    plan = planner.plan(man, dest.machine_dir)
    if ctx.clock() - result.started > LEASE_RENEW_AFTER:
        take_lease(dest.machine_dir, me, ctx.clock())  # a first sync can plan for minutes: renew
    applied = apply(plan, dest, ctx.engine, ctx.cancel, interrupted=interrupted, report=progress.report)
    retention = Retention(ctx.keep_snapshots, ctx.keep_versions_days)
    # a copy that failed (a locked file) is a failed result, after its progress was committed
    result = record(plan, applied, man, dest, ctx.manifests, retention=retention, result=result, t0=t0)
    if result.backed_up and rekey.due(man, ctx.seal.current()):  # the rest of the folder, to the new keys
        rekeyed = _rekey(ctx, man, dest, progress, {})
        result = replace(
            result, rekeyed=result.rekeyed + rekeyed.files, warnings=(*result.warnings, *rekeyed.left)
        )
        if rekeyed.left:
            result = replace(result, outcome=Outcome.WARNING)
    return result


def _rekey(
    ctx: SyncContext,
    man: mf.Manifest,
    dest: Destination,
    progress: Throttled,
    pending: dict[str, tuple[tuple[int, str], ...]],
) -> rekey.Rekeyed:
    """Re-encrypt the folder for this install's keys (CryptError: it cannot open what is there)."""
    try:
        return rekey.rekey(
            dest.machine_dir,
            man,
            ctx.manifests,
            ctx.seal.current(),
            scratch=ctx.staging_dir / "rekey",
            cancel=ctx.cancel,
            report=progress.report,
            pending=pending,
        )
    except CryptError as exc:
        raise SyncFailed(f"cannot re-encrypt the backup: {exc}; {UNLOCK_HINT}", FailureKind.FATAL) from None


def _interrupted(dest: Destination) -> intent.Intent | None:
    """The intent an interrupted sync left; an unreadable one counts as an empty one (what it named is
    found again by the full walk it triggers)."""
    try:
        return intent.load(dest.machine_dir)
    except BackupDamaged as exc:
        logger.warning("ignoring a damaged intent (%s); walking everything", exc)
        return intent.Intent("unknown")


def _backed_up_before(ctx: SyncContext) -> bool:
    """True when this machine's backup holds anything (read without creating a folder)."""
    if not (ctx.machine_dir / mf.MANIFEST).is_file():
        return False
    man = ctx.manifests.load(ctx.machine_dir, ctx.machine)
    ctx.manifests.give_back(ctx.machine_dir, man)
    return bool(man.sessions) or man.storage_files > 0


def _failed(result: SyncResult, kind: FailureKind, message: str, path: str | None = None) -> SyncResult:
    return replace(
        result, outcome=Outcome.FAILED, kind=kind, error=message or kind.sentence, locked_path=path
    )


def _relative(filename: object, machine_dir: Path) -> str | None:
    """A file an error names, relative to the machine folder when it lies inside it."""
    if not isinstance(filename, str) or not filename:
        return None
    with contextlib.suppress(ValueError):
        return Path(filename).relative_to(machine_dir).as_posix()
    return filename
