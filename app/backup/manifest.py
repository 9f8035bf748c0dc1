"""``manifest.json`` at the destination: what the backup holds, and how to check it.

    manifest.json               {"format": "opencode-session-backup-manifest/1", "machine", "app_version",
                                 "opencode_schema", "updated", "session_count", "files": {relpath: {"size",
                                 "sha256"}}, "storage_files", "storage_bytes", "last_result": {...}}
    manifest.d/sessions-XX.json {session_id: SessionEntry} in 64 shards by hash of the id
    manifest.d/storage-XX.json  {relpath: [size, sha256, source mtime_ns]} in 256 shards by hash of the path

Sharded so that a sync changing one session writes one small shard, not a list of 2,000 sessions
(P1: bytes written stay within 3x the session's own file), and five legacy files five small shards.
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
from app.opencode.snapshot import parse_snapshot_name

MANIFEST_FORMAT = "opencode-session-backup-manifest/1"
MANIFEST = "manifest.json"
SHARD_DIR = "manifest.d"
SESSION_SHARDS = 64


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


@dataclass(frozen=True, slots=True)  # slots: a legacy tree can have hundreds of thousands of these
class FileEntry:
    size: int
    sha256: str
    mtime_ns: int = 0  # for storage/ files: the source file's mtime when it was copied


@dataclass
class Manifest:
    """The destination's manifest in memory: sessions, snapshots and summary (storage/ shards on demand)."""

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
    # session id -> (entry, its JSON, its shard) and shard -> JSON as last read or written: a save re-encodes
    # only changed entries and rewrites only the shards that differ
    _encoded: dict[str, tuple[SessionEntry, str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _written: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total_bytes(self) -> int:
        """Bytes of the live backup (sessions, snapshots, storage/), versions/ not counted."""
        return (
            sum(e.size for e in self.sessions.values())
            + sum(e.size for e in self.files.values())
            + self.storage_bytes
        )

    def snapshots(self) -> list[tuple[str, str, str]]:
        """(database label, UTC stamp, relative path) of every snapshot listed."""
        found = []
        for rel in self.files:
            parsed = (
                parse_snapshot_name(rel.removeprefix("snapshots/")) if rel.startswith("snapshots/") else None
            )
            if parsed:
                found.append((parsed[0], parsed[1], rel))
        return found

    def head_json(self) -> bytes:
        """manifest.json itself: everything but the session entries, which live in shards."""
        doc = {
            "format": MANIFEST_FORMAT,
            "machine": self.machine,
            "app_version": self.app_version,
            "opencode_schema": self.opencode_schema,
            "updated": self.updated,
            "session_count": len(self.sessions),
            "session_shards": SESSION_SHARDS,
            "files": {k: {"size": v.size, "sha256": v.sha256} for k, v in sorted(self.files.items())},
            "storage_files": self.storage_files,
            "storage_bytes": self.storage_bytes,
            "last_result": self.last_result,
            "last_full_thinning": self.last_full_thinning,
        }
        return json.dumps(doc, ensure_ascii=False, indent=1).encode()

    def session_shards_json(self) -> dict[str, str]:
        """Shard name -> its JSON text, for every shard (empty ones as ``{}``)."""
        by_shard: dict[str, list[str]] = {name: [] for name in session_shard_names()}
        cache = self._encoded
        for sid in sorted(self.sessions):
            entry = self.sessions[sid]
            hit = cache.get(sid)
            if hit is None or hit[0] is not entry:
                hit = (entry, _compact(sid) + ":" + _compact(vars(entry)), session_shard_of(sid))
                cache[sid] = hit
            by_shard[hit[2]].append(hit[1])
        for gone in cache.keys() - self.sessions.keys():
            del cache[gone]
        return {name: "{" + ",".join(parts) + "}" for name, parts in by_shard.items()}


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def session_shard_names() -> list[str]:
    return [f"{i:02x}" for i in range(SESSION_SHARDS)]


def session_shard_of(session_id: str) -> str:
    """The shard (``manifest.d/sessions-<xx>.json``) that lists a session."""
    digest = hashlib.sha1(session_id.encode("utf-8"), usedforsecurity=False).digest()
    return f"{digest[0] % SESSION_SHARDS:02x}"


def load(machine_dir: Path, machine: str) -> Manifest:
    """Read the manifest and its session shards, or an empty one when there is none yet.

    A damaged one raises BackupDamaged.
    """
    path = machine_dir / MANIFEST
    if not path.exists():
        return Manifest(machine=machine)
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise BackupDamaged(f"{path}: not a manifest of this format")
        man = Manifest(
            machine=str(doc.get("machine", machine)),
            app_version=str(doc.get("app_version", "")),
            opencode_schema=doc.get("opencode_schema"),
            updated=str(doc.get("updated", "")),
            files={k: FileEntry(**v) for k, v in doc.get("files", {}).items()},
            storage_files=int(doc.get("storage_files", 0)),
            storage_bytes=int(doc.get("storage_bytes", 0)),
            last_result=dict(doc.get("last_result", {})),
            last_full_thinning=str(doc.get("last_full_thinning", "")),
        )
        for name in session_shard_names():
            shard = machine_dir / SHARD_DIR / f"sessions-{name}.json"
            if not shard.exists():
                continue
            text = shard.read_text(encoding="utf-8")
            man._written[name] = text
            man.sessions.update({k: SessionEntry(**v) for k, v in json.loads(text).items()})
        expected = doc.get("session_count")
        if expected is not None and expected != len(man.sessions):
            raise BackupDamaged(f"{path}: lists {expected} sessions but its shards hold {len(man.sessions)}")
        return man
    except (ValueError, TypeError, AttributeError) as exc:
        raise BackupDamaged(f"{path} is damaged: {exc}") from exc


def save(machine_dir: Path, manifest: Manifest) -> None:
    """Write the session shards that changed, then manifest.json (each atomically)."""
    for name, text in manifest.session_shards_json().items():
        if manifest._written.get(name, "{}") != text:
            atomic_write_bytes(machine_dir / SHARD_DIR / f"sessions-{name}.json", text.encode())
            manifest._written[name] = text
    atomic_write_bytes(machine_dir / MANIFEST, manifest.head_json())


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

    def give_back(self, machine_dir: Path, manifest: Manifest) -> None:
        """Return a manifest that was only read (not changed) to the cache."""
        path = machine_dir / MANIFEST
        self._cached = (path, _signature(path), manifest)

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
