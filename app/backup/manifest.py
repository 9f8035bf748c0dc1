"""``manifest.json`` at the destination: what the backup holds, and how to check it.

    {"format": "opencode-session-backup-manifest/1", "machine", "app_version", "opencode_schema",
     "updated", "sessions": {id: SessionEntry}, "files": {relpath: {"size", "sha256"}},
     "storage_files": int, "last_result": {...}}

Legacy ``storage/`` files (hundreds of thousands on old installs) are listed in 256 shards,
``manifest.d/storage-<xx>.json``, so a sync that changes five files rewrites five small shards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import BackupDamaged
from app.fsutil import atomic_write_bytes

MANIFEST_FORMAT = "opencode-session-backup-manifest/1"
MANIFEST = "manifest.json"
SHARD_DIR = "manifest.d"


@dataclass(frozen=True)
class SessionEntry:
    """One backed-up session: where its file is, what it hashes to, and the fingerprint it had."""

    path: str
    project_id: str
    title: str
    directory: str
    time_updated: int
    fingerprint: str
    size: int
    sha256: str
    database: str = "opencode.db"


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str
    mtime_ns: int = 0  # for storage/ files: the source file's mtime when it was copied


@dataclass
class Manifest:
    """The destination's manifest, loaded into memory (sessions and snapshots only; shards on demand)."""

    machine: str
    app_version: str = ""
    opencode_schema: str | None = None
    updated: str = ""
    sessions: dict[str, SessionEntry] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)
    storage_files: int = 0
    storage_bytes: int = 0
    last_result: dict[str, Any] = field(default_factory=dict)
    last_full_thinning: str = ""
    # session id -> (entry, its JSON): saving re-encodes only the entries that changed
    _encoded: dict[str, tuple[SessionEntry, str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total_bytes(self) -> int:
        """Bytes of the live backup (sessions, snapshots, storage/), versions/ not counted."""
        return (
            sum(e.size for e in self.sessions.values())
            + sum(e.size for e in self.files.values())
            + (self.storage_bytes)
        )

    def to_json(self) -> bytes:
        doc = {
            "format": MANIFEST_FORMAT,
            "machine": self.machine,
            "app_version": self.app_version,
            "opencode_schema": self.opencode_schema,
            "updated": self.updated,
            "sessions": None,
            "files": {k: vars(v) for k, v in sorted(self.files.items())},
            "storage_files": self.storage_files,
            "storage_bytes": self.storage_bytes,
            "last_result": self.last_result,
            "last_full_thinning": self.last_full_thinning,
        }
        # compact (the C encoder is ~10x faster than indented output), sessions spliced in from cache
        head = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        return head.replace('"sessions":null', '"sessions":' + self._sessions_json(), 1).encode()

    def _sessions_json(self) -> str:
        parts = []
        cache = self._encoded
        for sid in sorted(self.sessions):
            entry = self.sessions[sid]
            hit = cache.get(sid)
            if hit is None or hit[0] is not entry:
                hit = (entry, json.dumps(sid, ensure_ascii=False) + ":" + _compact(vars(entry)))
                cache[sid] = hit
            parts.append(hit[1])
        for gone in cache.keys() - self.sessions.keys():
            del cache[gone]
        return "{" + ",".join(parts) + "}"


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ManifestStore:
    """Loads and saves one destination's manifest, keeping the parsed copy between syncs of one process.

    ``load`` hands the manifest over to the caller (a sync mutates it); only ``save`` gives it back,
    so a sync that fails half-way never leaves a half-updated manifest in the cache.
    """

    def __init__(self) -> None:
        self._cached: tuple[Path, tuple[int, int, int], Manifest] | None = None

    def load(self, machine_dir: Path, machine: str) -> Manifest:
        path = machine_dir / MANIFEST
        cached, self._cached = self._cached, None
        if cached is not None and cached[0] == path and cached[1] == _signature(path):
            return cached[2]
        return load(machine_dir, machine)

    def save(self, machine_dir: Path, manifest: Manifest) -> None:
        save(machine_dir, manifest)
        path = machine_dir / MANIFEST
        self._cached = (path, _signature(path), manifest)


def _signature(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def load(machine_dir: Path, machine: str) -> Manifest:
    """Read the manifest, or an empty one when there is none yet. A damaged one raises BackupDamaged."""
    path = machine_dir / MANIFEST
    if not path.exists():
        return Manifest(machine=machine)
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("format") != MANIFEST_FORMAT:
            raise BackupDamaged(f"{path}: unknown manifest format {doc.get('format')!r}")
        return Manifest(
            machine=str(doc.get("machine", machine)),
            app_version=str(doc.get("app_version", "")),
            opencode_schema=doc.get("opencode_schema"),
            updated=str(doc.get("updated", "")),
            sessions={k: SessionEntry(**v) for k, v in doc.get("sessions", {}).items()},
            files={k: FileEntry(**v) for k, v in doc.get("files", {}).items()},
            storage_files=int(doc.get("storage_files", 0)),
            storage_bytes=int(doc.get("storage_bytes", 0)),
            last_result=dict(doc.get("last_result", {})),
            last_full_thinning=str(doc.get("last_full_thinning", "")),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise BackupDamaged(f"{path} is damaged: {exc}") from exc


def save(machine_dir: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically."""
    atomic_write_bytes(machine_dir / MANIFEST, manifest.to_json())


def shard_of(relpath: str) -> str:
    """The shard (two hex digits) that lists a ``storage/`` file."""
    return hashlib.sha1(relpath.encode("utf-8"), usedforsecurity=False).hexdigest()[:2]


def all_shards() -> list[str]:
    return [f"{i:02x}" for i in range(256)]


def load_shard(machine_dir: Path, shard: str) -> dict[str, FileEntry]:
    path = machine_dir / SHARD_DIR / f"storage-{shard}.json"
    if not path.exists():
        return {}
    try:
        return {k: FileEntry(*v) for k, v in json.loads(path.read_bytes()).items()}
    except (ValueError, TypeError) as exc:
        raise BackupDamaged(f"{path} is damaged: {exc}") from exc


def save_shard(machine_dir: Path, shard: str, entries: dict[str, FileEntry]) -> None:
    doc = {k: [v.size, v.sha256, v.mtime_ns] for k, v in sorted(entries.items())}
    atomic_write_bytes(
        machine_dir / SHARD_DIR / f"storage-{shard}.json", json.dumps(doc).encode(), fsync=False
    )


def load_storage_index(
    machine_dir: Path, shards: Iterable[str] | None = None
) -> dict[str, dict[str, FileEntry]]:
    """Shard -> {relpath: entry} for the given shards (all when None)."""
    return {s: load_shard(machine_dir, s) for s in (all_shards() if shards is None else shards)}
