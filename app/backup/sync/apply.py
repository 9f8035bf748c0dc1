"""Phase 2 of a sync: change the destination. Runs on the worker thread.

Order, for the guarantees: every path it will touch is checked first (a regular file, no symlink on the
way); the intent is written before the first change; a file about to be replaced keeps its old content in
``versions/<stamp>/`` by a hard link (or a copy where the folder cannot link) and is then replaced by the
engine's temp file + rename (our own staged files are hard-linked in where they can be, the same way), so
a backed-up session is never absent from ``sessions/``, whatever fails; what is in place is on the disk
(fsync, or one syncfs for many files) before the record phase commits a manifest naming it; only then
are deleted files moved to ``versions/``. Nothing here touches the manifest: the record phase
commits what this phase reports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from app.backup import guard, intent
from app.backup import untrusted as u
from app.backup.destination import Destination
from app.backup.progress import Report, Step, unreported
from app.backup.sync.plan import Plan
from app.errors import FailureKind, SyncFailed
from app.fsutil import fsync_path, keep_copy, make_private_dirs, over_leftover, sha256_file, write_back
from app.transfer.base import CopyJob, Engine
from app.transfer.classify import BENIGN_REASONS

logger = logging.getLogger(__name__)


Failure = tuple[FailureKind, str, str | None]  # kind, message, the file it was held up by


@dataclass(frozen=True)
class Applied:
    """What the destination holds now: ``present`` paths hold their planned content (copied now, or
    already there from an interrupted sync); ``copied`` were copied by this sync; ``versioned`` had their
    old content kept in ``versions/<stamp>/``; ``removed`` were moved there; ``purged`` secrets were
    deleted for good. ``failure`` is the first engine failure (the rest was still applied)."""

    present: frozenset[str]
    copied: frozenset[str]
    versioned: tuple[str, ...]
    removed: tuple[str, ...]
    purged: tuple[str, ...]
    warnings: tuple[str, ...]
    failure: Failure | None


@dataclass(frozen=True)
class _Todo:
    """What the destination lacks: the staged and the storage/ files to copy, those of them whose old
    content goes to versions/ first, the files to move there, and what is already in place."""

    staged: list[str]
    storage: list[str]
    replaced: list[str]
    removes: list[str]
    present: set[str]


@dataclass
class _Copied:
    copied: set[str]
    warnings: list[str]
    failure: Failure | None = None


def apply(
    plan: Plan,
    dest: Destination,
    engine: Engine,
    cancel: threading.Event,
    *,
    interrupted: intent.Intent | None = None,
    report: Report = unreported,
) -> Applied:
    """``interrupted``: the intent an earlier sync left (its changes are still uncommitted, so the new
    intent covers them too until this sync commits). The steps, in the order they happen."""
    machine_dir = dest.machine_dir
    todo = _look(plan, machine_dir)
    _write_intent(plan, machine_dir, interrupted)
    for rel in todo.replaced:
        _keep_old(machine_dir, rel, plan.stamp)
    # already there, from a sync killed after its copy: its data may still be only in the cache
    _sync_data(machine_dir, tuple(sorted(todo.present)))
    done = _copy(plan, todo, machine_dir, engine, cancel=cancel, report=report)
    for rel in todo.removes:
        _move_to_versions(machine_dir, rel, plan.stamp)
    purged = [rel for rel in plan.storage.purge if _purge(machine_dir, rel)]
    return Applied(
        present=frozenset(todo.present | done.copied),
        copied=frozenset(done.copied),
        versioned=tuple(todo.replaced),
        removed=tuple(todo.removes),
        purged=tuple(purged),
        warnings=tuple(done.warnings),
        failure=done.failure,
    )


def _look(plan: Plan, machine_dir: Path) -> _Todo:
    """Check every path this sync touches (a regular file, no symlink on the way) and see what is there."""
    staged, storage = plan.staged, plan.storage_copies
    there = {rel: u.regular_file(machine_dir, rel) for rel in (*staged, *storage)}  # what is in place now
    todo_staged = [rel for rel, want in staged.items() if not _holds(there[rel], want)]
    todo_storage = [rel for rel, want in storage.items() if not _holds(there[rel], want)]
    removes = [rel for rel in plan.removes if u.regular_file(machine_dir, rel) is not None]
    replaced = [rel for rel in (*todo_staged, *todo_storage) if there[rel] is not None]
    present = (set(staged) - set(todo_staged)) | (set(storage) - set(todo_storage))
    return _Todo(todo_staged, todo_storage, replaced, removes, present)


def _write_intent(plan: Plan, machine_dir: Path, interrupted: intent.Intent | None) -> None:
    """Before the first change: every file this sync may write (and those an interrupted one may have
    written: until the commit none matches the manifest) and every file it removes."""
    writes = dict(interrupted.writes) if interrupted else {}
    for rel, content in (plan.staged | plan.storage_copies).items():
        writes[rel] = (*(c for c in writes.get(rel, ()) if c != content), content)[-intent.MAX_CANDIDATES :]
    gone = {*(interrupted.removes if interrupted else ()), *plan.removes}
    if writes or gone:
        intent.write(machine_dir, intent.Intent(plan.stamp, writes, tuple(sorted(gone))))


def _copy(
    plan: Plan, todo: _Todo, machine_dir: Path, engine: Engine, *, cancel: threading.Event, report: Report
) -> _Copied:
    """Put the missing files in place: our staged files linked where they can be, the rest by the engine,
    each copy checked against the size and digest the manifest will record and made durable."""
    done = _Copied(set(), [])
    total = len(todo.staged) + len(todo.storage)
    for src_root, planned, wanted in (
        (plan.staging, todo.staged, plan.staged),
        (plan.storage_root, todo.storage, plan.storage_copies),
    ):
        if not planned:
            continue
        report(Step.COPYING, len(done.copied), total)
        if cancel.is_set():
            raise SyncFailed("the sync was cancelled", FailureKind.FATAL)
        linked = set()  # our own staged files, where they can be linked; never opencode's storage/
        if src_root == plan.staging:
            linked = _link_staged(src_root, machine_dir, sorted(planned), cancel)
        done.copied.update(linked)
        paths = tuple(sorted(p for p in planned if p not in linked))
        if not paths:
            continue
        res = engine.copy(CopyJob(src_root, machine_dir, paths, {p: wanted[p] for p in paths}), cancel)
        if not res.synced:
            _sync_data(machine_dir, res.copied)
        done.copied.update(res.copied)
        # without a kind, failed entries are benign (a source file vanished or is not a regular file)
        done.warnings += [f"not copied: {p} ({why})" for p, why in sorted(res.failed.items())]
        if res.kind is not None and done.failure is None:
            held = next((p for p, why in res.failed.items() if why not in BENIGN_REASONS), None)
            detail = res.detail or "; ".join(f"{p}: {w}" for p, w in res.failed.items())
            done.failure = (res.kind, detail, held)
    if total:
        report(Step.COPYING, total, total)
    return done


def _holds(path: Path | None, want: tuple[int, str]) -> bool:
    """True when the destination file (None: there is none) already has this content (an interrupted
    sync got this far)."""
    if path is None:
        return False
    return path.stat().st_size == want[0] and sha256_file(path) == want[1]


def _sync_data(machine_dir: Path, rels: tuple[str, ...]) -> None:
    """fsync what an external engine copied: the manifest that names these files is committed next, and a
    power cut must not leave it naming a file whose data never left the cache (rsync and robocopy write
    without fsync). An error here fails the sync before its commit. Many files
    (a first sync of a 100,000-file legacy tree) are written back by one syncfs where there is one, not
    a journal commit each."""
    write_back(machine_dir, [machine_dir / rel for rel in rels])


def _link_staged(staging: Path, machine_dir: Path, rels: list[str], cancel: threading.Event) -> set[str]:
    """Put the files of our own staging folder into the backup folder by hard link where both are on one
    file system (a first sync's 900 MB are then written once, not twice): each linked under a temp name,
    fsynced and renamed into place, as an engine does. Staged files are never written in place (a new one
    replaces the old by rename), so the backup's copy cannot change after; opencode's own files are never
    linked. Anything that does not link stops this: the engine copies what is left."""
    linked: set[str] = set()
    try:
        if os.stat(staging).st_dev != os.stat(machine_dir).st_dev:
            return linked
    except OSError:
        return linked
    for rel in rels:
        if cancel.is_set():
            break
        dst = machine_dir / rel
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        try:
            make_private_dirs(dst.parent)
            over_leftover(tmp, partial(os.link, staging / rel, tmp, follow_symlinks=False))
            fsync_path(tmp)
            os.replace(tmp, dst)
        except OSError as exc:
            logger.debug("not linking %s (%s): the engine copies the rest", rel, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            break
        linked.add(rel)
    return linked


def _keep_old(machine_dir: Path, rel: str, stamp: str) -> None:
    """Keep the current content of ``rel`` in versions/<stamp>/ without ever removing ``rel`` itself."""
    target = machine_dir / guard.VERSIONS / stamp / rel
    make_private_dirs(target.parent)
    keep_copy(machine_dir / rel, target)


def _move_to_versions(machine_dir: Path, rel: str, stamp: str) -> None:
    target = machine_dir / guard.VERSIONS / stamp / rel
    make_private_dirs(target.parent)
    with contextlib.suppress(FileNotFoundError):
        os.replace(machine_dir / rel, target)


def _purge(machine_dir: Path, rel: str) -> bool:
    """Delete a backed-up secret and every copy of it in versions/ (these are never kept)."""
    found = False
    places = [machine_dir / rel]
    with contextlib.suppress(FileNotFoundError), os.scandir(machine_dir / guard.VERSIONS) as it:
        places += [Path(e.path) / rel for e in it if e.is_dir(follow_symlinks=False)]
    for path in places:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(path)
            found = True
    return found
