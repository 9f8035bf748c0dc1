"""Writing the manifest: changed shards under new names, then ``manifest.json`` (the commit), then the
shards no longer named are removed; and the per-process cache of the parsed manifest."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path

from app.backup.manifest.model import MANIFEST, SHARD_DIR, SHARD_FILE, FileEntry, Manifest, ShardRef
from app.backup.manifest.read import load
from app.backup.manifest.shard_text import ShardText, canonical
from app.fsutil import atomic_write_bytes


def save(
    machine_dir: Path,
    man: Manifest,
    storage: Mapping[str, Mapping[str, FileEntry]] | None = None,
    checked: Collection[str] = (),
) -> None:
    """Commit ``man`` (and the changed ``storage`` shards, by shard): write each changed shard under a new
    name, then replace ``manifest.json`` (the commit), then remove shards neither it nor the replaced
    manifest names. Each write is atomic and fsynced. ``checked``: the storage shards whose every entry
    passed the checks of ``load_shard`` (read back, they are not checked again by this process)."""
    previous = dict(man.shards)
    for name, text in man.session_shard_texts().items():
        if man._texts.get(name, "{}") != text or (name not in man.shards and text != "{}"):
            _put_shard(machine_dir, man, name, text)
            man._texts[name] = text
    for shard, entries in (storage or {}).items():  # not cached: the legacy index stays on disk
        text = entries.text() if isinstance(entries, ShardText) else canonical(entries)
        ref = _put_shard(machine_dir, man, f"storage-{shard}", text)
        if ref is not None and ref.sha256 is not None and shard in checked:
            man._checked.add((f"storage-{shard}", ref.sha256))
    atomic_write_bytes(machine_dir / MANIFEST, man.head_json())
    named = {r.file for r in man.shards.values()}
    keep = named | {r.file for r in previous.values()}
    if man._swept:  # only what the last save stopped naming: listing manifest.d/ took 0.3 ms a sync
        for name in man._retired - keep:
            with contextlib.suppress(OSError):
                os.unlink(machine_dir / SHARD_DIR / name)
    else:  # the first save of a loaded manifest: also what a failed or crashed sync left
        _sweep(machine_dir, keep)
        man._swept = True
    man._retired = keep - named


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


def _put_shard(machine_dir: Path, man: Manifest, name: str, text: str) -> ShardRef | None:
    """Write one shard under its content's name (an empty shard is simply not named any more); returns
    the shard's reference now."""
    if text == "{}":
        man.shards.pop(name, None)
        return None
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    old = man.shards.get(name)
    if old is not None and old.sha256 == digest:
        return old
    ref = ShardRef(f"{name}.{digest[:16]}.json", len(data), digest)
    atomic_write_bytes(machine_dir / SHARD_DIR / ref.file, data)
    man.shards[name] = ref
    return ref


class ManifestStore:
    """Loads and saves one destination's manifest, keeping the parsed copy between syncs of one process.

    ``load`` hands the manifest over to the caller (a sync mutates it); only ``save`` (or ``give_back``
    for one that was only read) returns it, so a sync that fails half-way never leaves a half-updated
    manifest in the cache.
    """

    def __init__(self) -> None:
        self._cached: tuple[Path, tuple[int, int, int], Manifest] | None = None

    def load(self, machine_dir: Path, machine: str) -> Manifest:
        path = machine_dir / MANIFEST
        cached, self._cached = self._cached, None
        if cached is not None and cached[0] == path and cached[1] == _signature(path):
            return cached[2]
        return load(machine_dir, machine)

    def give_back(self, machine_dir: Path, manifest: Manifest) -> None:
        """Return a manifest that was only read (not changed) to the cache."""
        path = machine_dir / MANIFEST
        self._cached = (path, _signature(path), manifest)

    def save(
        self,
        machine_dir: Path,
        manifest: Manifest,
        storage: Mapping[str, Mapping[str, FileEntry]] | None = None,
        checked: Collection[str] = (),
    ) -> None:
        save(machine_dir, manifest, storage, checked)
        self.give_back(machine_dir, manifest)


def _signature(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)
