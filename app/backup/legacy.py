"""Plan the copy of opencode's legacy JSON tree (``storage/``, opencode <= 1.1 and session_diff/).

The watcher's dirty paths drive normal syncs; a full walk (streaming ``os.scandir``, stat only)
is for the first sync and periodic reconciles. Files that are empty or NUL-filled (torn writes
in the wild) are never copied over a good backup copy. Runs on the worker thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import manifest as mf
from app.fsutil import is_junk_json, sha256_file

logger = logging.getLogger(__name__)

PREFIX = "storage/"


@dataclass
class StoragePlan:
    """What a sync does with storage/: copy these, move those away, and the index it will write."""

    copy: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    skipped_junk: list[str] = field(default_factory=list)
    index: dict[str, dict[str, mf.FileEntry]] = field(default_factory=dict)  # shard -> entries (new state)
    pending: dict[str, mf.FileEntry] = field(default_factory=dict)  # entries to record once copied
    touched_shards: set[str] = field(default_factory=set)
    full: bool = False

    @property
    def indexed_files(self) -> int:
        return sum(len(v) for v in self.index.values())


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``root`` as ('storage/<rel>', stat), streamed, symlinks skipped."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        rel = Path(entry.path).relative_to(root).as_posix()
                        yield PREFIX + rel, entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # a folder removed while we walk


def plan(data_dir: Path, machine_dir: Path, dirty: Iterable[str] | None, indexed: int) -> StoragePlan:
    """Compare the source tree (all of it, or only ``dirty`` paths) with the destination's index.

    ``indexed`` is how many storage/ files the manifest says the backup holds.
    """
    root = data_dir / "storage"
    if dirty is None and indexed == 0 and not root.is_dir():
        return StoragePlan(full=True)  # no legacy tree on either side: nothing to read
    if dirty is None:
        result = StoragePlan(index=mf.load_storage_index(machine_dir), full=True)
        seen: set[str] = set()
        if root.is_dir():
            for rel, st in walk(root):
                seen.add(rel)
                _consider(result, data_dir, rel, st)
        for shard, entries in result.index.items():
            gone = [rel for rel in entries if rel not in seen]
            if gone:
                result.delete.extend(gone)
                result.touched_shards.add(shard)
        return result
    paths = sorted({p for p in dirty if p.startswith(PREFIX) and _safe(p)})
    result = StoragePlan(index=mf.load_storage_index(machine_dir, {mf.shard_of(p) for p in paths}))
    for rel in paths:
        try:
            st = (data_dir / rel).stat()
        except (FileNotFoundError, NotADirectoryError):
            if rel in result.index[mf.shard_of(rel)]:
                result.delete.append(rel)
                result.touched_shards.add(mf.shard_of(rel))
            continue
        if os.path.isfile(data_dir / rel):
            _consider(result, data_dir, rel, st)
    return result


def _consider(result: StoragePlan, data_dir: Path, rel: str, st: os.stat_result) -> None:
    shard = mf.shard_of(rel)
    known = result.index[shard].get(rel)
    if known is not None and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
        return
    path = data_dir / rel
    try:
        if rel.endswith(".json") and is_junk_json(path):
            result.skipped_junk.append(rel)
            logger.warning(
                "not copying %s: it is empty or NUL-filled (a torn write); keeping the backup copy", rel
            )
            return
        digest = sha256_file(path)
    except FileNotFoundError:
        return
    entry = mf.FileEntry(size=st.st_size, sha256=digest, mtime_ns=st.st_mtime_ns)
    result.touched_shards.add(shard)
    if known is not None and known.sha256 == digest:
        result.index[shard][rel] = entry  # touched but unchanged: only the index moves
        return
    result.copy.append(rel)
    result.pending[rel] = entry


def _safe(rel: str) -> bool:
    parts = rel.split("/")
    return ".." not in parts and "" not in parts and not rel.startswith("/")
