"""Phase 1 of a sync: decide what changes, and stage it. Reads opencode's database and legacy tree and
the committed manifest; writes only into the local staging folder. Nothing at the destination changes
here, so a tripped guard or a cancel leaves the backup untouched. Runs on the worker thread."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from app.backup import guard, legacy
from app.backup import manifest as mf
from app.backup.progress import Report, Step, unreported
from app.crypt import age
from app.crypt.seal import PLAIN, Seal, seal_file
from app.errors import FailureKind, SyncFailed
from app.fsutil import atomic_writer, make_private_dirs, sha256_file
from app.opencode.locate import Source, database_label
from app.opencode.sessions import HOT_WINDOW_MS, ExportCache, Reader
from app.opencode.snapshot import (
    SNAPSHOT_SUFFIX,
    SnapshotCancelled,
    parse_snapshot_name,
    snapshot_name,
    take_snapshot,
)
from app.opencode.stores import Live


@dataclass(frozen=True)
class Plan:
    """What one sync will do. ``staged`` are the session and snapshot files in the staging folder (by
    their path in the machine folder); ``refreshed`` sessions kept their content but got a new
    fingerprint (only the manifest moves); ``lost`` sessions left opencode; ``removes`` are the files to
    move to ``versions/``: those of lost sessions, the old files of sessions that changed project, and
    legacy files opencode deleted."""

    stamp: str
    started: datetime
    sessions_total: int
    exported: dict[str, mf.SessionEntry]
    refreshed: dict[str, mf.SessionEntry]
    snapshots: dict[str, mf.FileEntry]
    lost: tuple[str, ...]
    removes: tuple[str, ...]
    storage: legacy.StoragePlan
    opencode_schema: str | None
    staging: Path
    source: Path
    sealed_to: tuple[str, ...] = ()  # the recipients the staged files are encrypted to (none: plain)

    @property
    def storage_root(self) -> Path:
        """Where the storage/ copies come from: opencode's tree, or the staging folder where they were
        encrypted first."""
        return self.staging if self.sealed_to else self.source

    @property
    def staged(self) -> dict[str, tuple[int, str]]:
        """Path in the machine folder -> (size, sha256) of every file staged for it."""
        out = {e.path: (e.size, e.sha256) for e in self.exported.values()}
        out.update({rel: (e.size, e.sha256) for rel, e in self.snapshots.items()})
        return out

    @property
    def storage_copies(self) -> dict[str, tuple[int, str]]:
        pending = self.storage.pending
        return {rel: (pending[rel].size, pending[rel].sha256) for rel in self.storage.copy}


@dataclass
class Planner:
    """Builds one sync's Plan. ``cancel`` is checked between sessions, and by a snapshot between its steps."""

    staging: Path
    source: Source
    dirty: tuple[str, ...] | None
    snapshot: bool
    allow_deletions: bool
    snapshot_every_hours: float
    started: datetime
    cancel: threading.Event = field(default_factory=threading.Event)
    report: Report = unreported
    exporter: ExportCache | None = None  # what the exporter keeps between syncs
    cache: mf.ManifestCache = field(default_factory=mf.ManifestCache)  # the manifest store's
    seal: Seal = PLAIN

    def plan(self, man: mf.Manifest, machine_dir: Path) -> Plan:
        _clear_files(self.staging / "sessions")  # what a failed sync staged
        _clear_files(self.staging / "storage")
        make_private_dirs(self.staging)
        readers = [Reader(db, self.exporter) for db in self.source.databases]
        try:
            # 2.0 deleted the 2.0 sessions only 1.x rows are left of
            found = [(reader, reader.live(man.store_of)) for reader in readers]
            live: dict[str, str] = {}  # session id -> mark, from the first database that has it
            for _reader, current in reversed(found):
                live.update(current.marks)
            lost = tuple(sid for sid in man.sessions if sid not in live)
            if self.dirty is None and (self.source.storage is not None or man.storage_files):
                self.report(Step.LEGACY, 0, None)
            storage = legacy.plan(
                self.source.data_dir, machine_dir, self.dirty, man, self.cache.checked, sealed=self.seal.on
            )
            if not self.allow_deletions:
                verdict = guard.check_source(
                    len(man.sessions),
                    len(lost),
                    man.storage_files,
                    storage.delete if storage.full else None,
                    has_storage=self.source.storage is not None,
                )
                if verdict.tripped:
                    raise SyncFailed(verdict.reason, FailureKind.GUARD)
            reused, due = self._snapshots(man, readers)
            beside = _Snapshots(due, self.staging / "work", self.cancel, self.seal)
            try:
                exported, refreshed = self._export(man, live, found)
            except BaseException:
                beside.abandon()
                raise
            if due:  # the step the sync is in now (the snapshot may be done already)
                self.report(Step.SNAPSHOT, 0, None)
            snapshots = {**reused, **beside.result()}  # waits for the helper thread
        finally:
            for reader in readers:
                reader.close()
        self.check_cancel()
        if self.seal.on:
            self._seal_storage(storage)
        moved = [
            man.sessions[sid].path
            for sid, entry in exported.items()
            if sid in man.sessions and man.sessions[sid].path != entry.path
        ]
        removes = (*(man.sessions[sid].path for sid in lost), *moved, *storage.delete)
        return Plan(
            stamp=guard.stamp(self.started),
            started=self.started,
            sessions_total=len(live),
            exported=exported,
            refreshed=refreshed,
            snapshots=snapshots,
            lost=lost,
            removes=removes,
            storage=storage,
            opencode_schema=readers[0].schema_version if readers else man.opencode_schema,
            staging=self.staging,
            source=self.source.data_dir,
            sealed_to=self.seal.recipients,
        )

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise SyncFailed("the sync was cancelled", FailureKind.FATAL)

    def _export(
        self, man: mf.Manifest, live: dict[str, str], found: list[tuple[Reader, Live]]
    ) -> tuple[dict[str, mf.SessionEntry], dict[str, mf.SessionEntry]]:
        """Stage every session whose fingerprint changed: (staged entries, refreshed entries)."""
        now_ms = int(self.started.timestamp() * 1000)
        staged: dict[str, mf.SessionEntry] = {}
        refreshed: dict[str, mf.SessionEntry] = {}
        known = man.sessions
        # the sessions to look at: changed since their export, or recent enough that a reply may still be
        # streaming in. Found with set operations: the cold, untouched ones are most of 1,800 and a Python
        # loop over them all took 1.3 ms of a 15 ms sync
        changed = live.items() - self.cache.marks(man).items()
        hot: set[str] = set()
        for reader, current in found:
            hot |= reader.hot(current, now_ms - HOT_WINDOW_MS)
        wanted = {sid for sid, _mark in changed} | hot
        todo = [(done, sid) for done, sid in enumerate(live) if sid in wanted]
        fingerprints: dict[str, str] = {}
        owner: dict[str, tuple[Reader, Live]] = {}
        for reader, current in found:
            mine = [sid for _done, sid in todo if sid in current.marks and sid not in fingerprints]
            fingerprints |= reader.fingerprints(current, mine, hot)
            owner |= dict.fromkeys(mine, (reader, current))
        self.report(Step.SESSIONS, 0, len(live))
        exported = 0  # bytes of session files written so far
        for done, sid in todo:
            self.report(Step.SESSIONS, done, len(live), exported)
            reader, current = owner[sid]
            old = known.get(sid)
            fingerprint = fingerprints[sid]
            if old is not None and old.fingerprint == fingerprint:
                continue
            self.check_cancel()
            info = reader.info(sid, current.store_of(sid))
            if info is None:
                continue
            rel = mf.session_path(info.project_id, sid)
            with atomic_writer(self.staging / rel, fsync=False) as out:  # written as it is read
                if self.seal.on:  # encrypted whole: a session file is at most tens of MB
                    plain = io.BytesIO()
                    reader.write_export(info, fingerprint, plain, hot=sid in hot)
                    sealed = self.seal.seal(plain.getvalue())
                    out.write(sealed)
                    size, digest = len(sealed), hashlib.sha256(sealed).hexdigest()
                else:
                    size, digest = reader.write_export(info, fingerprint, out, hot=sid in hot)
            exported += size
            entry = mf.SessionEntry(
                rel,
                info.project_id,
                self.seal.seal_text(info.title, f"{sid}/title"),
                self.seal.seal_text(info.directory, f"{sid}/directory"),
                info.time_updated,
                fingerprint,
                size,
                digest,
                reader.db.name,
                info.store,
            )
            if old is not None and old.sha256 == entry.sha256 and old.path == rel:
                refreshed[sid] = entry  # same content, new fingerprint: nothing to copy
                (self.staging / rel).unlink()
                continue
            staged[sid] = entry
        self.report(Step.SESSIONS, len(live), len(live), exported)
        return staged, refreshed

    def _seal_storage(self, storage: legacy.StoragePlan) -> None:
        """Encrypt the storage/ files to copy into the staging folder: the copy engine takes them from
        there, and the manifest records the encrypted bytes. A file gone meanwhile is not copied."""
        for rel in list(storage.copy):
            self.check_cancel()
            try:
                with atomic_writer(self.staging / rel, fsync=False) as out:
                    size, digest = seal_file(self.seal, self.source.data_dir / rel, out)
            except (FileNotFoundError, NotADirectoryError):
                storage.copy.remove(rel)
                continue
            storage.pending[rel] = mf.FileEntry(size, digest, storage.pending[rel].mtime_ns)

    def _snapshots(
        self, man: mf.Manifest, readers: list[Reader]
    ) -> tuple[dict[str, mf.FileEntry], list[tuple[Path, Path]]]:
        """Snapshots a failed sync left in staging (reused) and the (database, staging file) of each one
        due now."""
        reused: dict[str, mf.FileEntry] = {}
        due: list[tuple[Path, Path]] = []
        snap_dir = self.staging / "snapshots"
        for reader in readers:
            label = database_label(reader.db)
            pending = sorted(p for p in snap_dir.glob("*" + SNAPSHOT_SUFFIX) if _label_of(p.name) == label)
            # encryption was switched since a failed sync staged these: they are made again
            for stale in [p for p in pending if age.file_is_sealed(p) != self.seal.on]:
                stale.unlink()
                pending.remove(stale)
            if pending:
                reused.update(
                    {f"snapshots/{p.name}": mf.FileEntry(p.stat().st_size, sha256_file(p)) for p in pending}
                )
            elif self.snapshot or self._snapshot_due(man, label):
                due.append((reader.db, snap_dir / snapshot_name(label, guard.stamp(self.started))))
        return reused, due

    def _snapshot_due(self, man: mf.Manifest, label: str) -> bool:
        stamps = [guard.parse_stamp(parsed[1]) for parsed in man.snapshots() if parsed[0] == label]
        newest = max((s for s in stamps if s is not None), default=None)
        return newest is None or self.started - newest >= timedelta(hours=self.snapshot_every_hours)


class _Snapshots:
    """The due snapshots, taken on a helper thread while the planner exports the sessions: the export is
    Python on one core, a snapshot is SQLite and zstd (which let go of the GIL) on the other. Measured on
    the bench database (808 MB, 2 cores): export 7.4 s then snapshot 9.0 s one after the other; side by
    side both are done in 9.1 s. Nothing is started when none is due; :meth:`result` always joins."""

    def __init__(
        self, due: list[tuple[Path, Path]], work_dir: Path, cancel: threading.Event, seal: Seal = PLAIN
    ) -> None:
        self._due = due
        self._seal = seal
        self._work_dir = work_dir
        self._cancel = cancel
        self._stopped = threading.Event()
        self._taken: dict[str, mf.FileEntry] = {}
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if due:
            self._thread = threading.Thread(target=self._run, name="snapshot", daemon=True)
            self._thread.start()

    def _cancelled(self) -> bool:
        return self._cancel.is_set() or self._stopped.is_set()

    def _run(self) -> None:
        try:
            for db, out in self._due:
                snap = take_snapshot(db, out, self._work_dir, self._cancelled)
                size, digest = snap.size, snap.sha256
                if self._seal.on:  # compressed, then encrypted (encrypted bytes do not compress)
                    with atomic_writer(out, fsync=False) as sealed:
                        size, digest = seal_file(self._seal, out, sealed)
                self._taken[f"snapshots/{out.name}"] = mf.FileEntry(size, digest, raw_size=snap.raw_size)
        except BaseException as exc:  # handed to the planner's thread by result()
            self._error = exc

    def abandon(self) -> None:
        """The planner failed: make the helper thread give up and wait for it, whatever it did."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def result(self) -> dict[str, mf.FileEntry]:
        """Wait for the snapshots; raise what the helper thread raised (a cancel as SyncFailed)."""
        if self._thread is not None:
            self._thread.join()
        if isinstance(self._error, SnapshotCancelled):
            raise SyncFailed("the sync was cancelled", FailureKind.FATAL)
        if self._error is not None:
            raise self._error
        return self._taken


def _clear_files(folder: Path) -> None:
    """Remove every file under ``folder``, keeping the folders: a warm sync stages into the same project
    folders again (removing and making them took ~0.3 ms a sync)."""
    try:
        it = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                _clear_files(Path(entry.path))
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _label_of(name: str) -> str | None:
    parsed = parse_snapshot_name(name)
    return parsed[0] if parsed else None
