"""Writing the manifest: the changes in ``manifest.json``'s delta, or (when it grew past its size) the
changed shards under new names; then ``manifest.json`` (the commit); then the shards no longer named are
removed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path

from app.backup.manifest.cache import ManifestCache
from app.backup.manifest.model import (
    MANIFEST,
    MAX_DELTA_BYTES,
    SHARD_DIR,
    SHARD_FILE,
    FileEntry,
    Manifest,
    SessionEntry,
    ShardRef,
)
from app.backup.manifest.read import load_shard_text
from app.backup.manifest.shard_text import ShardText, canonical
from app.errors import BackupDamaged
from app.fsutil import atomic_write_bytes, write_back

logger = logging.getLogger(__name__)


def save(
    machine_dir: Path,
    man: Manifest,
    storage: Mapping[str, Mapping[str, FileEntry]] | None = None,
    checked: Collection[str] = (),
    cache: ManifestCache | None = None,
) -> None:
    """Commit ``man`` (and the changed ``storage`` shards, by shard): replace ``manifest.json`` (the
    commit), then remove shards neither it nor the replaced manifest names.

    The entries that changed go into the manifest's ``delta``, so a sync's commit is one fsynced write
    whatever it touched; once the delta passes MAX_DELTA_BYTES it is folded: each shard it touches is
    written under a new name and flushed before the commit. A storage shard given as a full mapping (a full
    walk) or with an entry ``load_shard`` would refuse (not in ``checked``) is written at once; ``checked``
    shards that are written count as checked when read back by this process. ``cache``: what the store
    keeps of this manifest (see :mod:`.cache`); without one (a manifest loaded and changed by hand) every
    session shard that changed is written and the delta holds storage changes only."""
    cache = cache if cache is not None else ManifestCache()
    previous = dict(man.shards)
    storage = storage or {}
    texts = cache.shard_texts(man)
    dirty = _dirty_shards(man, cache, texts)
    kept = dict(man.storage_delta)  # storage shard -> changes the manifest keeps
    now: dict[str, str] = {}  # storage shard -> text written as its shard file by this save
    for shard, entries in storage.items():
        if isinstance(entries, ShardText) and shard in checked:
            kept[shard] = entries.changes()
        else:
            now[shard] = entries.text() if isinstance(entries, ShardText) else canonical(entries)
            kept.pop(shard, None)
    sessions = _session_changes(man, cache, dirty) if cache.base is not None else None
    delta = _delta_json(sessions or {}, kept)
    checked = set(checked)
    if sessions is None or len(delta) > MAX_DELTA_BYTES:  # fold: every changed shard written, no delta
        if len(delta) > MAX_DELTA_BYTES:
            checked |= (
                kept.keys()
            )  # a checked text with changes that passed the checks (or were read by them)
            now |= _folded(machine_dir, man, kept, storage, cache.checked)
            kept = {shard: changes for shard, changes in kept.items() if shard not in now}
        delta = _delta_json({}, kept)
    else:
        dirty = []
    written: list[Path] = []
    for name in dirty:
        _put_shard(machine_dir, man, name, texts[name], written)
        cache.wrote(name, texts[name], {sid: man.sessions[sid] for sid in cache.members(name)})
    for shard, text in now.items():
        ref = _put_shard(machine_dir, man, f"storage-{shard}", text, written)
        if ref is not None and ref.sha256 is not None and shard in checked:
            cache.checked.add((f"storage-{shard}", ref.sha256))
    write_back(machine_dir, written)  # the shards are on disk before the manifest that names them
    man.storage_delta = {shard: changes for shard, changes in kept.items() if changes}
    atomic_write_bytes(machine_dir / MANIFEST, man.head_json(delta, cache.ref_lines), commit=True)
    _retire(machine_dir, man, previous, cache)


def _dirty_shards(man: Manifest, cache: ManifestCache, texts: Mapping[str, str]) -> list[str]:
    """The session shards whose text is not the committed one's (known from the cache, else by hash)."""
    if cache.committed is not None:
        committed = cache.committed
        return [
            n for n, t in texts.items() if committed.get(n, "{}") != t or (n not in man.shards and t != "{}")
        ]
    dirty = []
    for name, text in texts.items():
        ref = man.shards.get(name)
        if ref is None:
            if text != "{}":
                dirty.append(name)
        elif text == "{}" or ref.sha256 != hashlib.sha256(text.encode()).hexdigest():
            dirty.append(name)
    return dirty


def _folded(
    machine_dir: Path,
    man: Manifest,
    kept: Mapping[str, Mapping[str, FileEntry | None]],
    storage: Mapping[str, Mapping[str, FileEntry]],
    checked: set[tuple[str, str]],
) -> dict[str, str]:
    """The texts of the storage shards whose changes the delta kept, with those changes in."""
    out: dict[str, str] = {}
    for shard in kept:
        if shard in storage:
            out[shard] = storage[shard].text()  # type: ignore[attr-defined]  # a ShardText (kept)
            continue
        try:
            out[shard] = load_shard_text(machine_dir, man, shard, checked).text()
        except BackupDamaged as exc:  # its changes stay in the delta; verify names the damage
            logger.warning("not folding the index changes of storage-%s: %s", shard, exc)
    return out


def _retire(machine_dir: Path, man: Manifest, previous: Mapping[str, ShardRef], cache: ManifestCache) -> None:
    """After the commit: remove the shard files neither the new manifest nor the replaced one names."""
    named = {r.file for r in man.shards.values()}
    keep = named | {r.file for r in previous.values()}
    if cache.swept:  # only what the last save stopped naming: listing manifest.d/ took 0.3 ms a sync
        for name in cache.retired - keep:
            with contextlib.suppress(OSError):
                os.unlink(machine_dir / SHARD_DIR / name)
    else:  # the first save of a loaded manifest: also what a failed or crashed sync left
        _sweep(machine_dir, keep)
        cache.swept = True
    cache.retired = keep - named


def _session_changes(man: Manifest, cache: ManifestCache, dirty: list[str]) -> dict[str, SessionEntry | None]:
    """The sessions of the ``dirty`` shards whose entry differs from the shard file's (None: gone)."""
    out: dict[str, SessionEntry | None] = {}
    for name in dirty:
        base = (cache.base or {}).get(name, {})
        members = cache.members(name)
        for sid in members:
            entry = man.sessions[sid]
            if base.get(sid) != entry:
                out[sid] = entry
        out.update({sid: None for sid in base if sid not in members})
    return out


def _delta_json(
    sessions: Mapping[str, SessionEntry | None], storage: Mapping[str, Mapping[str, FileEntry | None]]
) -> str:
    doc = {
        "sessions": {sid: None if e is None else vars(e) for sid, e in sorted(sessions.items())},
        "storage": {
            rel: None if e is None else [e.size, e.sha256, e.mtime_ns]
            for rel, e in sorted(item for changes in storage.values() for item in changes.items())
        },
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _sweep(machine_dir: Path, keep: set[str]) -> None:
    """Remove every shard file in manifest.d/ that is not in ``keep``."""
    with contextlib.suppress(FileNotFoundError), os.scandir(machine_dir / SHARD_DIR) as it:
        for entry in it:
            if (
                SHARD_FILE.match(entry.name)
                and entry.name not in keep
                and entry.is_file(follow_symlinks=False)
            ):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _put_shard(
    machine_dir: Path, man: Manifest, name: str, text: str, written: list[Path]
) -> ShardRef | None:
    """Write one shard under its content's name, not yet flushed (added to ``written``); an empty shard
    is simply not named any more. Returns the shard's reference now."""
    if text == "{}":
        man.shards.pop(name, None)
        return None
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    old = man.shards.get(name)
    if old is not None and old.sha256 == digest:
        return old
    ref = ShardRef(f"{name}.{digest[:16]}.json", len(data), digest)
    path = machine_dir / SHARD_DIR / ref.file
    atomic_write_bytes(path, data, fsync=False)
    written.append(path)
    man.shards[name] = ref
    return ref
