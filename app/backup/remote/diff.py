"""What an upload must do: the mirror's committed state against what the remote holds (the ledger). Pure
apart from reading the mirror; runs on the worker thread.

The mirror's manifest names every session file, snapshot, legacy file and index shard with its size and
sha256; ``versions/`` is found by its stamp folders (a new one is walked; all of them when the mirror's
versions were thinned since the last upload); ``owner.json`` is hashed. A file the remote lacks goes up
under its own name (nothing the remote's manifest names changes); one it holds with other content is
*replaced* (staged, then moved in under the remote intent); what the remote holds and the mirror's
manifest no longer names is *gone* (deleted after the commit). Only the storage/ shards that changed
since the remote's manifest (their shard file, or their entries in the manifest's delta) are compared,
so a warm upload reads no more of a 100,000-file index than the sync that changed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.backup import manifest as mf
from app.backup.guard import VERSIONS
from app.backup.ownership import OWNER
from app.backup.remote.ledger import Ledger
from app.fsutil import Content, content_of

INTENT = "manifest.d/intent.json"


@dataclass(frozen=True)
class Committed:
    """What the remote's ``manifest.json`` was when this computer last put one there: its sha256, the
    shards it named (name -> file), its storage delta (rel -> [size, sha256] or None) and the last full
    thinning of versions/ it recorded."""

    sha256: str = ""
    shards: dict[str, str] = field(default_factory=dict)
    delta: dict[str, list[Any] | None] = field(default_factory=dict)
    thinning: str = ""
    keys: str = ""  # the manifest's encryption record: a change re-encrypted every file, versions/ too

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: object) -> Committed:
        if not isinstance(raw, dict):
            return cls()
        shards, delta = raw.get("shards"), raw.get("delta")
        return cls(
            str(raw.get("sha256", "")),
            {str(k): str(v) for k, v in shards.items()} if isinstance(shards, dict) else {},
            {str(k): v if isinstance(v, list) else None for k, v in delta.items()}
            if isinstance(delta, dict)
            else {},
            str(raw.get("thinning", "")),
            str(raw.get("keys", "")),
        )

    @classmethod
    def of(cls, sha256: str, man: mf.Manifest) -> Committed:
        delta: dict[str, list[Any] | None] = {
            rel: None if e is None else [e.size, e.sha256]
            for entries in man.storage_delta.values()
            for rel, e in entries.items()
        }
        return cls(
            sha256, {k: v.file for k, v in man.shards.items()}, delta, man.last_full_thinning, _keys(man)
        )


@dataclass(frozen=True)
class Upload:
    """One upload: ``new`` files go up under their names, ``replaced`` ones are staged and moved in,
    ``manifest`` (the mirror's manifest.json) is the commit, ``gone`` is deleted after it. ``stamps``: the
    mirror's versions/ stamp folders, all uploaded once this is done; ``committed``: the remote's manifest
    after the commit."""

    new: dict[str, Content] = field(default_factory=dict)
    replaced: dict[str, Content] = field(default_factory=dict)
    manifest: Content | None = None
    gone: tuple[str, ...] = ()
    stamps: tuple[str, ...] = ()
    committed: Committed = field(default_factory=Committed)

    @property
    def empty(self) -> bool:
        return not (self.new or self.replaced or self.manifest or self.gone)

    @property
    def nbytes(self) -> int:
        sizes = [*self.new.values(), *self.replaced.values(), *([self.manifest] if self.manifest else [])]
        return sum(c[0] for c in sizes)


def committed_of(ledger: Ledger) -> Committed:
    return Committed.from_json(ledger.meta_json("committed", {}))


def compare(machine_dir: Path, man: mf.Manifest, ledger: Ledger) -> Upload:
    """What the remote lacks of the mirror's committed state (``man``: its manifest as committed)."""
    try:
        head = (machine_dir / mf.MANIFEST).read_bytes()
    except FileNotFoundError:
        return Upload()  # nothing committed here yet
    committed = committed_of(ledger)
    sha = hashlib.sha256(head).hexdigest()
    want: dict[str, Content] = {e.path: (e.size, e.sha256) for e in man.sessions.values()}
    want |= {rel: (e.size, e.sha256) for rel, e in man.files.items()}
    for ref in man.shards.values():
        rel = f"{mf.SHARD_DIR}/{ref.file}"
        want[rel] = (
            (ref.size, ref.sha256) if ref.size is not None and ref.sha256 else _content(machine_dir / rel)
        )
    owner = content_of(machine_dir / OWNER)
    if owner is not None:
        want[OWNER] = owner
    have = ledger.outside_storage()
    put = {rel: c for rel, c in want.items() if have.get(rel) != c}
    named = {*want, *(f"{mf.SHARD_DIR}/{f}" for f in committed.shards.values())}
    gone = [
        rel
        for rel in have
        if rel.startswith(("sessions/", "snapshots/", f"{mf.SHARD_DIR}/")) and rel not in named
    ]
    storage_put, storage_gone = _storage(machine_dir, man, ledger, committed)
    versions_put, versions_gone, stamps = _versions(machine_dir, man, ledger, committed)
    put |= storage_put | versions_put
    return Upload(
        new={rel: c for rel, c in put.items() if ledger.get(rel) is None},
        replaced={rel: c for rel, c in put.items() if ledger.get(rel) is not None},
        manifest=None if sha == committed.sha256 else (len(head), sha),
        gone=tuple(sorted({*gone, *storage_gone, *versions_gone})),
        stamps=stamps,
        committed=Committed.of(sha, man),
    )


def _storage(
    machine_dir: Path, man: mf.Manifest, ledger: Ledger, committed: Committed
) -> tuple[dict[str, Content], list[str]]:
    """The storage/ files to put and those gone: whole shards whose file changed, else delta entries."""
    put: dict[str, Content] = {}
    gone: list[str] = []
    names = {n for n in (*man.shards, *committed.shards) if n.startswith("storage-")}
    whole = {n.removeprefix("storage-") for n in names if _file(man, n) != committed.shards.get(n)}
    delta_shards = {mf.shard_of(rel) for rel in committed.delta}
    whole |= delta_shards - man.storage_delta.keys()  # a delta folded away: its shard changed too
    for shard in sorted(whole):
        entries = mf.load_shard(machine_dir, man, shard)
        there = ledger.in_shard(shard)
        put |= {rel: (e.size, e.sha256) for rel, e in entries.items() if there.get(rel) != (e.size, e.sha256)}
        gone += [rel for rel in there if rel not in entries]
    for shard, changes in man.storage_delta.items():
        if shard in whole:
            continue
        for rel, e in changes.items():
            now = None if e is None else [e.size, e.sha256]
            if rel in committed.delta and committed.delta[rel] == now:
                continue  # as the remote's manifest has it, and so uploaded then
            if e is None:
                gone.append(rel)
            elif ledger.get(rel) != (e.size, e.sha256):
                put[rel] = (e.size, e.sha256)
    return put, gone


def _file(man: mf.Manifest, name: str) -> str | None:
    ref = man.shards.get(name)
    return ref.file if ref is not None else None


def _versions(
    machine_dir: Path, man: mf.Manifest, ledger: Ledger, committed: Committed
) -> tuple[dict[str, Content], list[str], tuple[str, ...]]:
    """versions/ files to put and gone, and the stamp folders there are now. A stamp folder is written by
    one sync and never again; thinning removes from any of them, and a change of the folder's keys rewrites
    every one, so all are compared once either happened since the last upload."""
    root = machine_dir / VERSIONS
    try:
        with os.scandir(root) as it:
            stamps = sorted(
                e.name for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            )
    except (FileNotFoundError, NotADirectoryError):
        stamps = []
    known = set(ledger.meta_json("stamps", []))
    full = man.last_full_thinning != committed.thinning or _keys(man) != committed.keys
    have = ledger.outside_storage()
    put: dict[str, Content] = {}
    seen: set[str] = set()
    for name in stamps:
        if name in known and not full:
            continue
        for rel, path in _walk(root / name, f"{VERSIONS}/{name}"):
            seen.add(rel)
            there = have.get(rel)
            if there is None or there[0] != path.stat().st_size:  # a version's bytes never change
                put[rel] = _content(path)
    alive = set(stamps)
    gone = [
        rel
        for rel in have
        if rel.startswith(f"{VERSIONS}/")
        and (rel.split("/", 2)[1] not in alive or (full and rel not in seen))
    ]
    return put, gone, tuple(stamps)


def _keys(man: mf.Manifest) -> str:
    return json.dumps(man.encryption.as_json(), sort_keys=True)


def _walk(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    """The regular files under ``folder`` (no link followed; names with control characters skipped: they
    could not be listed for rclone), as (relative path, path)."""
    found = []
    stack = [(folder, prefix)]
    while stack:
        here, rel = stack.pop()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(here) as it:
            for entry in it:
                if any(ord(c) < 32 for c in entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{rel}/{entry.name}"))
                elif entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                    found.append((f"{rel}/{entry.name}", Path(entry.path)))
    return found


def _content(path: Path) -> Content:
    """:func:`content_of` a file that must be there (FileNotFoundError when it is not)."""
    found = content_of(path)
    if found is None:
        raise FileNotFoundError(path)
    return found
