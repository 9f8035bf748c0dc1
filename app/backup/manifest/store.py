"""The store of one machine folder's manifest in a process: loads it, hands it to a sync, saves it, and
keeps what makes the next sync of a warm service cheap (:mod:`.cache`) together with the parsed copy."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from app.backup.manifest.cache import ManifestCache
from app.backup.manifest.model import MANIFEST, FileEntry, Manifest
from app.backup.manifest.read import load
from app.backup.manifest.write import save
from app.fsutil import Signature, stat_signature


class ManifestStore:
    """Loads and saves one destination's manifest, keeping the parsed copy and its cache between syncs.

    ``load`` hands the manifest over to the caller (a sync mutates it); only ``save`` (or ``give_back``
    for one that was only read) returns it, so a sync that fails half-way never leaves a half-updated
    manifest in the store. Used on one thread at a time (the worker's, or a command's)."""

    def __init__(self) -> None:
        self._cached: tuple[Path, Signature, Manifest] | None = None
        self._cache = ManifestCache()
        self._cache_of: Path | None = None

    def load(self, machine_dir: Path, machine: str) -> Manifest:
        path = machine_dir / MANIFEST
        cached, self._cached = self._cached, None
        if cached is not None and cached[0] == path and cached[1] == stat_signature(path):
            return cached[2]
        self._cache, self._cache_of = ManifestCache(), machine_dir
        return load(machine_dir, machine, self._cache)

    def cache(self, machine_dir: Path) -> ManifestCache:
        """What this store keeps of the manifest of ``machine_dir`` (its last load's)."""
        if self._cache_of != machine_dir:
            self._cache, self._cache_of = ManifestCache(), machine_dir
        return self._cache

    def give_back(self, machine_dir: Path, manifest: Manifest) -> None:
        """Return a manifest that was only read (not changed) to the store."""
        path = machine_dir / MANIFEST
        self._cached = (path, stat_signature(path), manifest)

    def save(
        self,
        machine_dir: Path,
        manifest: Manifest,
        changed: Iterable[str] | None,
        storage: Mapping[str, Mapping[str, FileEntry]] | None = None,
        checked: Collection[str] = (),
    ) -> None:
        """Commit ``manifest``; ``changed``: the session ids whose entries the caller changed since it was
        loaded (None: not known, everything is looked at)."""
        cache = self.cache(machine_dir)
        cache.note(changed)
        save(machine_dir, manifest, storage, checked, cache)
        self.give_back(machine_dir, manifest)
