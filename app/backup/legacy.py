"""Plan the copy of opencode's legacy JSON tree (``storage/``, opencode <= 1.1 and session_diff/).

The watcher's dirty paths drive normal syncs; a full walk (streaming ``os.scandir``, stat only)
is for the first sync and periodic reconciles. Files that are empty or NUL-filled (torn writes
in the wild) are never copied over a good backup copy. Share records (``storage/share/`` and
``storage/session/share/``, where opencode <= 1.1 kept each share's ``secret``) never reach the backup,
and copies an older version made are purged. Runs on the worker thread.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import manifest as mf
from app.fsutil import sha256_unless_junk

logger = logging.getLogger(__name__)

PREFIX = "storage/"
# Where opencode <= 1.1 kept share records with their secret: never backed up (like session_share.secret).
SECRET_PREFIXES = ("storage/share/", "storage/session/share/")


def is_secret(rel: str) -> bool:
    """True for a legacy file that holds a share secret."""
    return rel.startswith(SECRET_PREFIXES)


@dataclass
class StoragePlan:
    """What a sync does with storage/: copy these, move those away, and the index shards it rewrites.

    ``index`` holds only the shards this sync touches (their new state once copies succeed); the
    rest of the index is summarised in ``untouched_files``/``untouched_bytes`` and never kept in memory.
    """

    copy: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    purge: list[str] = field(default_factory=list)  # backed-up secrets: removed for good, not versioned
    skipped_junk: list[str] = field(default_factory=list)
    # shard -> entries (new state); a dirty sync's are texts it changes in place (mf.ShardText)
    index: dict[str, MutableMapping[str, mf.FileEntry]] = field(default_factory=dict)
    pending: dict[str, mf.FileEntry] = field(default_factory=dict)  # entries to record once copied
    touched_shards: set[str] = field(default_factory=set)
    unchecked: set[str] = field(default_factory=set)  # shards given an entry load_shard would refuse
    full: bool = False
    sealed: bool = False  # the copies are encrypted (see plan)
    untouched_files: int = 0
    untouched_bytes: int = 0

    @property
    def indexed_files(self) -> int:
        """Files the whole index lists (only meaningful after a full walk)."""
        return self.untouched_files + sum(len(v) for v in self.index.values())

    @property
    def indexed_bytes(self) -> int:
        return self.untouched_bytes + sum(e.size for v in self.index.values() for e in v.values())


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


def plan(
    data_dir: Path,
    machine_dir: Path,
    dirty: Iterable[str] | None,
    man: mf.Manifest,
    checked: set[tuple[str, str]] | None = None,
    *,
    sealed: bool = False,
) -> StoragePlan:
    """Compare the source tree (all of it, or only ``dirty`` paths) with the destination's index
    (``man`` names its shards; ``checked``: the shard bytes its store saw pass every check). ``sealed``:
    the copies are encrypted, so the index records their encrypted size (age pads its header at random):
    a file is taken as unchanged by its mtime alone."""
    root = data_dir / "storage"
    if dirty is None and man.storage_files == 0 and not root.is_dir():
        return StoragePlan(full=True)  # no legacy tree on either side: nothing to read
    if dirty is None:
        return _plan_full(data_dir, machine_dir, root, man, checked, sealed=sealed)
    paths = sorted({p for p in dirty if p.startswith(PREFIX) and _safe(p)})
    shards = {mf.shard_of(p) for p in paths}
    result = StoragePlan(index={s: mf.load_shard_text(machine_dir, man, s, checked) for s in shards})
    result.sealed = sealed
    for rel in paths:
        if is_secret(rel):
            if rel in result.index[mf.shard_of(rel)]:
                result.purge.append(rel)
                result.touched_shards.add(mf.shard_of(rel))
            continue
        try:
            st = (data_dir / rel).stat()
        except (FileNotFoundError, NotADirectoryError):
            if rel in result.index[mf.shard_of(rel)]:
                result.delete.append(rel)
                result.touched_shards.add(mf.shard_of(rel))
            continue
        if stat.S_ISREG(st.st_mode):
            _consider(result, data_dir, rel, st.st_size, st.st_mtime_ns)
    return result


def _plan_full(
    data_dir: Path,
    machine_dir: Path,
    root: Path,
    man: mf.Manifest,
    checked: set[tuple[str, str]] | None,
    *,
    sealed: bool,
) -> StoragePlan:
    """Walk the whole tree, then compare it with the index one shard at a time.

    Memory holds the walked (path, size, mtime) triples plus one shard, not the whole index:
    100,000 files would otherwise keep ~70 MB of index objects alive for the whole sync.
    """
    walked: dict[str, dict[str, tuple[int, int]]] = {}
    if root.is_dir():
        for rel, st in walk(root):
            if not is_secret(rel):
                walked.setdefault(mf.shard_of(rel), {})[rel] = (st.st_size, st.st_mtime_ns)
    result = StoragePlan(full=True, sealed=sealed)
    for shard in mf.all_shards():
        entries = mf.load_shard(machine_dir, man, shard, checked)
        files = walked.pop(shard, {})
        result.index[shard] = entries
        for rel, (size, mtime_ns) in files.items():
            _consider(result, data_dir, rel, size, mtime_ns)
        gone = [rel for rel in entries if rel not in files]
        if gone:
            result.purge.extend(rel for rel in gone if is_secret(rel))
            result.delete.extend(rel for rel in gone if not is_secret(rel))
            result.touched_shards.add(shard)
        if shard not in result.touched_shards:
            del result.index[shard]
            result.untouched_files += len(entries)
            result.untouched_bytes += sum(e.size for e in entries.values())
    return result


def _consider(result: StoragePlan, data_dir: Path, rel: str, size: int, mtime_ns: int) -> None:
    shard = mf.shard_of(rel)
    known = result.index[shard].get(rel)
    if known is not None and known.mtime_ns == mtime_ns and (result.sealed or known.size == size):
        return
    try:
        digest = sha256_unless_junk(data_dir / rel, junk_json=rel.endswith(".json"))
    except FileNotFoundError:
        return
    if digest is None:
        result.skipped_junk.append(rel)
        logger.warning(
            "not copying %s: it is empty or NUL-filled (a torn write); keeping the backup copy", rel
        )
        return
    entry = mf.FileEntry(size=size, sha256=digest, mtime_ns=mtime_ns)
    result.touched_shards.add(shard)
    if not mf.passes_checks(shard, rel, entry):
        result.unchecked.add(shard)
    if known is not None and known.sha256 == digest:
        result.index[shard][rel] = entry  # touched but unchanged: only the index moves
        return
    result.copy.append(rel)
    result.pending[rel] = entry


def _safe(rel: str) -> bool:
    parts = rel.split("/")
    return ".." not in parts and "" not in parts and not rel.startswith("/")
