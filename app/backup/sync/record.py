"""Phase 3 of a sync: record what the destination holds now in the manifest (the commit), then clean up.

Only what :func:`~app.backup.sync.apply.apply` reports as present is recorded, so a partly failed sync
commits its progress and nothing more. Destructive work (the old snapshots retention drops, the intent,
staged files, thinning of ``versions/``) happens after the commit. Runs on the worker thread.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app import __version__, codec
from app.backup import guard, intent
from app.backup import manifest as mf
from app.backup.destination import Destination
from app.backup.result import Outcome, SyncResult
from app.backup.sync.apply import Applied
from app.backup.sync.plan import Plan
from app.crypt import age

# what a result says of the user's files and folders (sealed in an encrypted folder's manifest)
PRIVATE_RESULT = ("error", "warnings", "skipped", "destination", "locked_path", "note")
# the versions a warm service made are thinned at most this often (all of them since, together)
THIN_AT_MOST_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Retention:
    keep_snapshots: int
    keep_versions_days: int


@dataclass(frozen=True)
class Changes:
    """What a sync changed in the manifest: the ids of the sessions whose entries it changed, and the
    storage shards it touched (their entries as they are now)."""

    sessions: frozenset[str]
    storage: dict[str, MutableMapping[str, mf.FileEntry]]


def record(
    plan: Plan,
    applied: Applied,
    man: mf.Manifest,
    dest: Destination,
    store: mf.ManifestStore,
    *,
    retention: Retention,
    result: SyncResult,
    t0: float,
) -> SyncResult:
    """Commit the manifest for what ``applied`` says is there; returns the sync's result (its ``finished``
    and duration, from ``t0`` on the monotonic clock, are those of the commit, as the manifest and
    sync.log record them). The steps, in the order they happen; only the commit and those after it touch
    the backup folder."""
    encryption = _encryption(man, plan.sealed_to)  # judged on what the folder held before this sync
    changes = _update_entries(plan, applied, man)
    pruned = _prune_snapshots(man, retention.keep_snapshots)
    result = _result(plan, applied, result, t0)
    full_thinning = _update_head(man, plan, result)
    man.encryption = encryption
    checked = changes.storage.keys() - plan.storage.unchecked
    store.save(dest.machine_dir, man, changes.sessions, changes.storage, checked)  # the commit
    _clean_up(plan, applied, dest.machine_dir, pruned)
    _thin(dest.machine_dir, man, plan, applied, store, retention=retention, full=full_thinning)
    dest.append_log(plan.started, result, private=bool(plan.sealed_to))
    return result


def _update_entries(plan: Plan, applied: Applied, man: mf.Manifest) -> Changes:
    """The manifest's entries for what is there now: sessions lost, refreshed and exported, the snapshots
    taken, the schema; the storage shards' changes."""
    present = applied.present
    for sid in plan.lost:
        del man.sessions[sid]
    man.sessions.update(plan.refreshed)
    exported = {sid: e for sid, e in plan.exported.items() if e.path in present}
    man.sessions.update(exported)
    for rel, entry in plan.snapshots.items():
        if rel in present:
            man.files[rel] = entry
    if plan.opencode_schema:
        man.opencode_schema = plan.opencode_schema
    sessions = frozenset((*plan.lost, *plan.refreshed, *exported))
    return Changes(sessions, _storage_changes(plan, applied, man))


def _result(plan: Plan, applied: Applied, result: SyncResult, t0: float) -> SyncResult:
    """The sync's result: its counts, its failure or warnings, and its end (now, the commit's time)."""
    present = applied.present
    sizes = {**plan.staged, **plan.storage_copies}
    snapshots = [rel for rel in plan.snapshots if rel in present]
    result = replace(
        result,
        sessions_total=plan.sessions_total,
        sessions_exported=sum(1 for e in plan.exported.values() if e.path in present),
        sessions_removed=len(plan.lost),
        storage_copied=sum(1 for rel in plan.storage.copy if rel in present),
        storage_removed=len(plan.storage.delete),
        snapshot=snapshots[-1] if snapshots else None,
        skipped=tuple(plan.storage.skipped_junk),
        warnings=applied.warnings,
        bytes_copied=sum(sizes[rel][0] for rel in applied.copied if rel in sizes),
        versions_made=len(applied.versioned) + len(applied.removed),
        encrypted=bool(plan.sealed_to),
    )
    if applied.failure is not None:
        kind, message, path = applied.failure
        result = replace(
            result, outcome=Outcome.FAILED, kind=kind, error=message or kind.sentence, locked_path=path
        )
    elif result.skipped or result.warnings:
        result = replace(result, outcome=Outcome.WARNING)
    elapsed = time.monotonic() - t0
    return replace(result, finished=result.started + timedelta(seconds=elapsed), duration_s=round(elapsed, 3))


def _update_head(man: mf.Manifest, plan: Plan, result: SyncResult) -> bool:
    """The manifest's summary: version, time, last result; whether a full thinning of versions/ is due
    (it is then recorded as done: it runs right after the commit)."""
    man.app_version = __version__
    man.updated = plan.started.isoformat(timespec="seconds")
    man.last_result = _public(codec.to_json(result), plan.sealed_to)
    full_thinning = _due(man.last_full_thinning, plan.started, timedelta(hours=6))
    if full_thinning:
        man.last_full_thinning = plan.started.isoformat(timespec="seconds")
    return full_thinning


def _public(result: dict[str, Any], sealed_to: tuple[str, ...]) -> dict[str, Any]:
    """The last result as the manifest shows it: in an encrypted folder, what could name the user's files
    or folders (the error, the warnings, the destination's path) is sealed into ``private``."""
    if not sealed_to:
        return result
    private = {k: v for k in PRIVATE_RESULT if (v := result.pop(k, None))}
    if set(private) - {"destination"}:  # the destination alone is this computer's to know: not kept
        result["private"] = age.seal_text(json.dumps(private), sealed_to)
    return result


def _encryption(man: mf.Manifest, sealed_to: tuple[str, ...]) -> mf.Encryption:
    """The folder's encryption record once this sync's files are in: a re-encryption begins when it
    wrote files of another kind than the folder's (the rekey then converts the rest); a folder that held
    nothing is simply of the new kind."""
    now = man.encryption
    if now.target == sealed_to:
        return now
    if not man.sessions and not man.files and not man.storage_files and now.rekey_to is None:
        return mf.Encryption(sealed_to)
    return mf.Encryption(now.recipients, rekey_to=sealed_to)


def _clean_up(plan: Plan, applied: Applied, machine_dir: Path, pruned: list[str]) -> None:
    """After the commit: the intent goes, the snapshots retention dropped, the staged files now in place."""
    intent.clear(machine_dir)
    for rel in pruned:
        with contextlib.suppress(FileNotFoundError):
            (machine_dir / rel).unlink()
    staged = ("sessions/", "snapshots/", "storage/") if plan.sealed_to else ("sessions/", "snapshots/")
    for rel in applied.present:
        if rel.startswith(staged):
            with contextlib.suppress(FileNotFoundError):
                (plan.staging / rel).unlink()


def _storage_changes(
    plan: Plan, applied: Applied, man: mf.Manifest
) -> dict[str, MutableMapping[str, mf.FileEntry]]:
    """Update the touched storage/ shards for what is there now; keeps the manifest's totals right."""
    storage = plan.storage
    delta_bytes = delta_files = 0
    for rel in (*storage.delete, *storage.purge):
        gone = storage.index[mf.shard_of(rel)].pop(rel, None)
        if gone is not None:
            delta_bytes -= gone.size
            delta_files -= 1
    for rel in storage.copy:
        if rel in applied.present:
            shard = storage.index[mf.shard_of(rel)]
            before = shard.get(rel)
            shard[rel] = storage.pending[rel]
            delta_bytes += storage.pending[rel].size - (before.size if before else 0)
            delta_files += before is None
    if storage.full:
        man.storage_files, man.storage_bytes = storage.indexed_files, storage.indexed_bytes
    else:
        man.storage_files += delta_files
        man.storage_bytes += delta_bytes
    return {shard: storage.index[shard] for shard in storage.touched_shards}


def _prune_snapshots(man: mf.Manifest, keep: int) -> list[str]:
    """Drop all but the newest ``keep`` snapshots per database from the manifest; returns their paths
    (deleted after the commit: retention, by design)."""
    by_label: dict[str, list[str]] = {}
    for label, _stamp, rel in man.snapshots():
        by_label.setdefault(label, []).append(rel)
    pruned = []
    for rels in by_label.values():
        for old in sorted(rels)[:-keep]:
            del man.files[old]
            pruned.append(old)
    return pruned


def _thin(
    machine_dir: Path,
    man: mf.Manifest,
    plan: Plan,
    applied: Applied,
    store: mf.ManifestStore,
    *,
    retention: Retention,
    full: bool,
) -> None:
    def live_size(rel: str) -> int | None:
        # a session file is named after its session: no map of all 1,800 paths for the few touched
        entry = man.sessions.get(rel.rsplit("/", 1)[-1].removesuffix(".json"))
        if entry is not None and entry.path == rel:
            return entry.size
        try:
            return (machine_dir / rel).stat().st_size
        except OSError:
            return None

    versioned = (*applied.versioned, *applied.removed)
    every = THIN_AT_MOST_EVERY.total_seconds()
    touched = store.cache(machine_dir).thinning(versioned, plan.started, every=every, full=full)
    if touched is None:
        return  # a version kept a minute longer costs nothing; a thinning each sync cost ~0.6 ms of 12
    guard.thin_versions(
        machine_dir, plan.started, retention.keep_versions_days, live_size, None if full else touched
    )


def _due(last_iso: str, now: datetime, every: timedelta) -> bool:
    try:
        return now - datetime.fromisoformat(last_iso) >= every
    except (ValueError, TypeError):
        return True
