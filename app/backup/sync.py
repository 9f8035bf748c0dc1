"""One sync: plan -> stage -> transfer -> manifest. Runs on the worker thread (or the CLI's).

Order matters for the guarantees: nothing at the destination changes until the guard has passed;
whatever a sync would replace or delete is moved into ``versions/<stamp>/`` first; files land
atomically; the manifest is written last, so a crash at any point leaves a backup the next sync
completes (it re-exports what the manifest does not yet record).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app import __version__, codec
from app.backup import guard, legacy
from app.backup import manifest as mf
from app.backup.destination import Destination, prepare_destination, sweep_stale_temp
from app.backup.result import Outcome, SyncResult
from app.backup.state import record_result, sync_lock
from app.errors import BackupDamaged, FailureKind, SyncFailed, TransferError
from app.fsutil import atomic_write_bytes, make_private_dirs, sha256_file
from app.opencode.locate import database_label, locate
from app.opencode.sessions import HOT_WINDOW_MS, Reader
from app.opencode.snapshot import SNAPSHOT_SUFFIX, parse_snapshot_name, snapshot_name, take_snapshot
from app.transfer.base import CopyJob, Engine
from app.transfer.classify import BENIGN_REASONS, kind_for_oserror

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
    clock: Clock = utc_now
    cancel: threading.Event = field(default_factory=threading.Event)


def run_sync(ctx: SyncContext, options: SyncOptions | None = None) -> SyncResult:
    """Run one sync and return its result; failures are results too (``outcome`` FAILED).

    The result is logged at INFO: the caller (the service's log, the command line's output) says what
    matters to its reader, once.
    """
    options = options or SyncOptions()
    started = ctx.clock()
    t0 = time.monotonic()
    job = _Sync(ctx, options, started)
    try:
        with sync_lock(ctx.state_dir):
            job.run()
    except (SyncFailed, TransferError) as exc:
        job.fail(exc.kind, str(exc), exc.path)
    except BackupDamaged as exc:
        job.fail(FailureKind.FATAL, str(exc))
    except OSError as exc:
        kind = kind_for_oserror(exc)
        where = job.relative(exc.filename)
        job.fail(kind, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), where)
    except sqlite3.Error as exc:
        busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        job.fail(FailureKind.LOCKED if busy else FailureKind.FATAL, f"cannot read opencode's database: {exc}")
    except Exception as exc:  # a bug must not kill the service; it becomes a failed sync with a traceback
        logger.exception("sync crashed")
        job.fail(FailureKind.FATAL, f"internal error: {exc!r}")
    result = job.result(time.monotonic() - t0)
    logger.info("sync %s: %s", result.outcome.value, result.summary())
    with contextlib.suppress(OSError):
        record_result(ctx.state_dir, result)
    return result


class _Sync:
    """The state of one sync while it runs (not shared with any other thread)."""

    def __init__(self, ctx: SyncContext, options: SyncOptions, started: datetime) -> None:
        self.ctx = ctx
        self.options = options
        self.started = started
        self.stamp = guard.stamp(started)
        self.r = SyncResult(Outcome.OK, started, destination=str(ctx.backup_path / ctx.machine))
        self.dest: Destination | None = None

    def fail(self, kind: FailureKind, message: str, path: str | None = None) -> None:
        self.r = replace(
            self.r, outcome=Outcome.FAILED, kind=kind, error=message or kind.sentence, locked_path=path
        )

    def relative(self, filename: object) -> str | None:
        """A file an error names, relative to the machine folder when it lies inside it."""
        if not isinstance(filename, str) or not filename:
            return None
        if self.dest is not None:
            with contextlib.suppress(ValueError):
                return Path(filename).relative_to(self.dest.machine_dir).as_posix()
        return filename

    def _backed_up_before(self) -> bool:
        """True when this machine's backup holds anything (read without creating a folder)."""
        machine_dir = self.ctx.backup_path / self.ctx.machine
        if not (machine_dir / mf.MANIFEST).is_file():
            return False
        man = self.ctx.manifests.load(machine_dir, self.ctx.machine)
        self.ctx.manifests.give_back(machine_dir, man)
        return bool(man.sessions) or man.storage_files > 0

    def result(self, duration: float) -> SyncResult:
        finished = self.started + timedelta(seconds=duration)
        return replace(self.r, duration_s=round(duration, 3), finished=finished)

    def _check_cancel(self) -> None:
        if self.ctx.cancel.is_set():
            raise SyncFailed("the sync was cancelled", FailureKind.FATAL)

    def run(self) -> None:
        ctx = self.ctx
        source = locate(ctx.source, ctx.opencode_db)
        missing = (ctx.opencode_db is not None and not source.databases) or not source.exists
        if missing and not self._backed_up_before():
            # a new install: opencode has not written anything yet. Nothing to copy, nothing failed.
            where = ctx.opencode_db if ctx.opencode_db is not None else ctx.source
            self.r = replace(
                self.r, outcome=Outcome.NOTHING_YET, note=f"opencode has not saved anything in {where} yet"
            )
            return
        dest = self.dest = prepare_destination(ctx.backup_path, ctx.machine)
        man = ctx.manifests.load(dest.machine_dir, ctx.machine)
        if self.options.dirty is None:
            sweep_stale_temp(dest.machine_dir, self.started.timestamp())
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
        staging = ctx.staging_dir
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging / "sessions")
        make_private_dirs(staging)

        readers = [Reader(db) for db in source.databases]
        try:
            live: dict[str, tuple[Reader, int]] = {}
            for reader in readers:
                for sid, time_updated in reader.session_times().items():
                    live.setdefault(sid, (reader, time_updated))
            lost = [sid for sid in man.sessions if sid not in live]
            storage = legacy.plan(ctx.source, dest.machine_dir, self.options.dirty, man.storage_files)
            if not self.options.allow_deletions:
                verdict = guard.check_source(
                    len(man.sessions),
                    len(lost),
                    man.storage_files,
                    storage.delete if storage.full else None,
                    has_storage=source.storage is not None,
                )
                if verdict.tripped:
                    raise SyncFailed(verdict.reason, FailureKind.GUARD)
            self.r = replace(self.r, sessions_total=len(live))
            exported = self._export(man, live, staging)
            snapshots = self._snapshots(man, readers, staging)
        finally:
            for reader in readers:
                reader.close()
        self._check_cancel()
        if readers:
            man.opencode_schema = readers[0].schema_version
        self._transfer(man, exported, snapshots, lost, storage)

    def _export(
        self, man: mf.Manifest, live: dict[str, tuple[Reader, int]], staging: Path
    ) -> dict[str, mf.SessionEntry]:
        """Stage every session whose fingerprint changed; returns entries for the staged files."""
        now_ms = int(self.started.timestamp() * 1000)
        staged: dict[str, mf.SessionEntry] = {}
        for sid, (reader, time_updated) in live.items():
            old = man.sessions.get(sid)
            if old is not None and old.time_updated == time_updated and now_ms - time_updated > HOT_WINDOW_MS:
                continue  # cold and untouched since its last export
            fingerprint = reader.fingerprint(sid, time_updated, now_ms)
            if old is not None and old.fingerprint == fingerprint:
                continue
            self._check_cancel()
            info = reader.info(sid)
            if info is None:
                continue
            data = reader.export(info, fingerprint)
            rel = f"sessions/{_safe_name(info.project_id)}/{_safe_name(sid)}.json"
            entry = mf.SessionEntry(
                rel,
                info.project_id,
                info.title,
                info.directory,
                info.time_updated,
                fingerprint,
                len(data),
                _sha(data),
                reader.db.name,
            )
            if old is not None and old.sha256 == entry.sha256 and old.path == rel:
                man.sessions[sid] = entry  # same content, new fingerprint: nothing to copy
                continue
            atomic_write_bytes(staging / rel, data, fsync=False)
            staged[sid] = entry
        return staged

    def _snapshots(
        self, man: mf.Manifest, readers: list[Reader], staging: Path
    ) -> list[tuple[str, mf.FileEntry]]:
        """Take due snapshots into staging (a snapshot left there by a failed sync is reused)."""
        out: list[tuple[str, mf.FileEntry]] = []
        snap_dir = staging / "snapshots"
        for reader in readers:
            label = database_label(reader.db)
            pending = sorted(p for p in snap_dir.glob("*" + SNAPSHOT_SUFFIX) if _label_of(p.name) == label)
            if pending:
                out.extend(
                    (f"snapshots/{p.name}", mf.FileEntry(p.stat().st_size, sha256_file(p))) for p in pending
                )
                continue
            if not (self.options.snapshot or self._snapshot_due(man, label)):
                continue
            self._check_cancel()
            name = snapshot_name(label, self.stamp)
            snap = take_snapshot(reader.db, snap_dir / name, self.ctx.staging_dir / "work")
            out.append((f"snapshots/{name}", mf.FileEntry(snap.size, snap.sha256)))
        return out

    def _snapshot_due(self, man: mf.Manifest, label: str) -> bool:
        stamps = [guard.parse_stamp(parsed[1]) for parsed in man.snapshots() if parsed[0] == label]
        newest = max((s for s in stamps if s is not None), default=None)
        return newest is None or self.started - newest >= timedelta(hours=self.ctx.snapshot_every_hours)

    def _transfer(
        self,
        man: mf.Manifest,
        exported: dict[str, mf.SessionEntry],
        snapshots: list[tuple[str, mf.FileEntry]],
        lost: list[str],
        storage: legacy.StoragePlan,
    ) -> None:
        assert self.dest is not None
        machine_dir = self.dest.machine_dir
        versioned: list[str] = []
        staged_paths = {e.path: (e.size, e.sha256) for e in exported.values()}
        staged_paths.update({rel: (e.size, e.sha256) for rel, e in snapshots})
        storage_paths = {
            rel: (storage.pending[rel].size, storage.pending[rel].sha256) for rel in storage.copy
        }

        # 1. what will be replaced or deleted moves to versions/ first (identical files are not copied again)
        to_copy_staged = self._set_aside(machine_dir, staged_paths, versioned)
        to_copy_storage = self._set_aside(machine_dir, storage_paths, versioned)
        for sid in lost:
            self._move_to_versions(machine_dir, man.sessions[sid].path, versioned)
        for sid, entry in exported.items():
            moved_from = man.sessions[sid].path if sid in man.sessions else entry.path
            if moved_from != entry.path:  # the session changed project: its old file must not linger
                self._move_to_versions(machine_dir, moved_from, versioned)
        for rel in storage.delete:
            self._move_to_versions(machine_dir, rel, versioned)
        # 2. copy
        copied = set(staged_paths) - set(to_copy_staged) | set(storage_paths) - set(to_copy_storage)
        failures: list[tuple[FailureKind, str, str | None]] = []
        for src_root, paths in ((self.ctx.staging_dir, to_copy_staged), (self.ctx.source, to_copy_storage)):
            if not paths:
                continue
            self._check_cancel()
            res = self.ctx.engine.copy(CopyJob(src_root, machine_dir, tuple(sorted(paths))), self.ctx.cancel)
            copied.update(res.copied)
            # without a kind, failed entries are benign (a source file vanished or is not a regular file)
            notes = tuple(f"not copied: {p} ({why})" for p, why in sorted(res.failed.items()))
            self.r = replace(self.r, warnings=self.r.warnings + notes)
            if res.kind is not None:
                held = next((p for p, why in res.failed.items() if why not in BENIGN_REASONS), None)
                failures.append(
                    (res.kind, res.detail or "; ".join(f"{p}: {w}" for p, w in res.failed.items()), held)
                )
        # 3. record what is really there now
        for sid in lost:
            del man.sessions[sid]
        for sid, entry in exported.items():
            if entry.path in copied:
                man.sessions[sid] = entry
        self.r = replace(
            self.r,
            sessions_exported=sum(1 for e in exported.values() if e.path in copied),
            sessions_removed=len(lost),
        )
        for rel, fentry in snapshots:
            if rel in copied:
                man.files[rel] = fentry
                self.r = replace(self.r, snapshot=rel)
        delta_bytes = delta_files = 0
        for rel in storage.delete:
            gone = storage.index[mf.shard_of(rel)].pop(rel, None)
            if gone is not None:
                delta_bytes -= gone.size
                delta_files -= 1
        for rel in storage.copy:
            if rel in copied:
                before = storage.index[mf.shard_of(rel)].get(rel)
                storage.index[mf.shard_of(rel)][rel] = storage.pending[rel]
                delta_bytes += storage.pending[rel].size - (before.size if before else 0)
                delta_files += before is None
        sizes = {**staged_paths, **storage_paths}
        self.r = replace(
            self.r,
            storage_copied=sum(1 for rel in storage.copy if rel in copied),
            storage_removed=len(storage.delete),
            skipped=self.r.skipped + tuple(storage.skipped_junk),
            bytes_copied=sum(sizes[rel][0] for rel in (*to_copy_staged, *to_copy_storage) if rel in copied),
            versions_made=len(versioned),
        )
        self._prune_snapshots(man)
        for shard in storage.touched_shards:
            mf.save_shard(machine_dir, shard, storage.index[shard])
        if storage.full:
            man.storage_files = storage.indexed_files
            man.storage_bytes = storage.indexed_bytes
        else:
            man.storage_files += delta_files
            man.storage_bytes += delta_bytes
        if failures:
            self.fail(*failures[0])
        elif self.r.skipped or self.r.warnings:
            self.r = replace(self.r, outcome=Outcome.WARNING)
        man.app_version = __version__
        man.updated = self.started.isoformat(timespec="seconds")
        man.last_result = codec.to_json(self.r)
        full_thinning = _due(man.last_full_thinning, self.started, timedelta(hours=6))
        if full_thinning:
            man.last_full_thinning = self.started.isoformat(timespec="seconds")
        self.ctx.manifests.save(machine_dir, man)
        self._cleanup(man, versioned, copied, full_thinning)
        if failures:
            raise SyncFailed(self.r.error, failures[0][0], failures[0][2])

    def _set_aside(
        self, machine_dir: Path, wanted: dict[str, tuple[int, str]], versioned: list[str]
    ) -> list[str]:
        """Move destination files that differ from ``wanted`` into versions/; return what must be copied."""
        todo: list[str] = []
        for rel, (size, digest) in wanted.items():
            target = machine_dir / rel
            try:
                st = target.stat()
            except FileNotFoundError:
                todo.append(rel)
                continue
            if st.st_size == size and sha256_file(target) == digest:
                continue  # already there (an interrupted sync got this far)
            self._move_to_versions(machine_dir, rel, versioned)
            todo.append(rel)
        return todo

    def _move_to_versions(self, machine_dir: Path, rel: str, versioned: list[str]) -> None:
        src = machine_dir / rel
        if not src.exists():
            return
        target = machine_dir / guard.VERSIONS / self.stamp / rel
        make_private_dirs(target.parent)
        os.replace(src, target)
        versioned.append(rel)

    def _prune_snapshots(self, man: mf.Manifest) -> None:
        """Keep the newest ``keep_snapshots`` per database; older ones are deleted (retention, by design)."""
        assert self.dest is not None
        by_label: dict[str, list[str]] = {}
        for label, _stamp, rel in man.snapshots():
            by_label.setdefault(label, []).append(rel)
        for rels in by_label.values():
            for old in sorted(rels)[: -self.ctx.keep_snapshots]:
                with contextlib.suppress(FileNotFoundError):
                    (self.dest.machine_dir / old).unlink()
                del man.files[old]

    def _cleanup(self, man: mf.Manifest, versioned: list[str], copied: set[str], full_thinning: bool) -> None:
        assert self.dest is not None
        machine_dir = self.dest.machine_dir
        for rel in copied:
            if rel.startswith(("sessions/", "snapshots/")):
                with contextlib.suppress(FileNotFoundError):
                    (self.ctx.staging_dir / rel).unlink()
        live_sizes = {e.path: e.size for e in man.sessions.values()}

        def live_size(rel: str) -> int | None:
            if rel in live_sizes:
                return live_sizes[rel]
            try:
                return (machine_dir / rel).stat().st_size
            except OSError:
                return None

        guard.thin_versions(
            machine_dir,
            self.started,
            self.ctx.keep_versions_days,
            live_size,
            None if full_thinning else versioned,
        )
        self.dest.append_log(self.started, self.r)


def _label_of(name: str) -> str | None:
    parsed = parse_snapshot_name(name)
    return parsed[0] if parsed else None


def _due(last_iso: str, now: datetime, every: timedelta) -> bool:
    try:
        return now - datetime.fromisoformat(last_iso) >= every
    except ValueError:
        return True


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_name(name: str) -> str:
    """A path component from a database value: ids are [A-Za-z0-9_-]; anything else is escaped."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")
    return cleaned or "_"
