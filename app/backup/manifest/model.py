"""The manifest in memory: its entries, the names of session files and shards, and its JSON head."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from app.opencode.snapshot import parse_snapshot_name

MANIFEST_FORMAT = "opencode-session-backup-manifest/3"
# format 3 with "encryption": what an encrypted folder's manifest is (an older build refuses it, rather than
# writing plain files into it)
SEALED_FORMAT = "opencode-session-backup-manifest/4"
V2_FORMAT = "opencode-session-backup-manifest/2"  # no delta: read, never written
V1_FORMAT = "opencode-session-backup-manifest/1"
MANIFEST = "manifest.json"
SHARD_DIR = "manifest.d"
SESSION_SHARDS = 64
# the entries a sync changed are kept in manifest.json's "delta" (its commit writes nothing else) until
# they pass this size; then they are folded into their shards, which are written together
MAX_DELTA_BYTES = 32 << 10
SHARD_NAME = re.compile(r"^(sessions|storage)-[0-9a-f]{2}$")
SHARD_FILE = re.compile(r"^(?P<name>(sessions|storage)-[0-9a-f]{2})(\.(?P<h>[0-9a-f]{16}))?\.json$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


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
    store: str = "v1"  # where opencode keeps the session: "v1" (1.x tables) or "v2" (opencode 2.0's)

    @property
    def mark(self) -> str:
        """The cheap part of the fingerprint (before its first ``/``): what a sync compares first."""
        return self.fingerprint.partition("/")[0]


@dataclass(frozen=True, slots=True)  # slots: a legacy tree can have hundreds of thousands of these
class FileEntry:
    size: int
    sha256: str
    mtime_ns: int = 0  # for storage/ files: the source file's mtime when it was copied
    raw_size: int = 0  # for snapshots: the size of the database inside (caps its decompression)


@dataclass(frozen=True)
class ShardRef:
    """A shard file the manifest names, with the size and hash it must have (None: format 1)."""

    file: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Encryption:
    """What the folder's files are encrypted to (age public keys; none: plain files), as the last commit
    left it. ``rekey_to``: a re-encryption under way, to these keys (empty: to plain files), which has
    done every file up to ``done`` in its order; until it ends a folder holds files of both kinds. A public
    record for people and other machines: a sync encrypts to this install's own list, never to this one."""

    recipients: tuple[str, ...] = ()
    rekey_to: tuple[str, ...] | None = None
    done: str = ""

    @property
    def sealed(self) -> bool:
        """Every file is encrypted: a plain one where one is expected is refused."""
        return bool(self.recipients) and self.rekey_to is None

    @property
    def target(self) -> tuple[str, ...]:
        """What the folder is (or is becoming) encrypted to."""
        return self.recipients if self.rekey_to is None else self.rekey_to

    def as_json(self) -> dict[str, Any] | None:
        if not self.recipients and self.rekey_to is None:
            return None
        doc: dict[str, Any] = {"scheme": "age", "recipients": list(self.recipients)}
        if self.rekey_to is not None:
            doc["rekey"] = {"to": list(self.rekey_to), "done": self.done}
        return doc


PLAIN = Encryption()


@dataclass
class Manifest:
    """The destination's manifest in memory: sessions, snapshots and summary (storage/ shards on demand).
    A plain value: what a process keeps to load and save it faster is its store's
    (:mod:`app.backup.manifest.cache`). A sync changes it in place and gives it to its store to save."""

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
    encryption: Encryption = PLAIN
    shards: dict[str, ShardRef] = field(default_factory=dict)  # as committed (loaded or last saved)
    # storage shard -> {relpath: entry, or None for removed}: the committed changes not yet in that shard
    storage_delta: dict[str, dict[str, FileEntry | None]] = field(default_factory=dict)

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
            parsed = parse_snapshot_name(rel.removeprefix("snapshots/"))
            if parsed:
                found.append((parsed[0], parsed[1], rel))
        return found

    def head_json(self, delta: str = "{}", ref_lines: dict[str, tuple[ShardRef, str]] | None = None) -> bytes:
        """manifest.json itself: everything but the entries, which live in the shards it names, and
        ``delta``: the JSON of the changes not yet folded into them (see ``write.save``). ``ref_lines``:
        shard name -> (its ref, its line) as formatted before; brought up to date here (a sync formats
        only the refs it changed)."""
        sealing = self.encryption.as_json()
        doc = {
            "format": MANIFEST_FORMAT if sealing is None else SEALED_FORMAT,
            "machine": self.machine,
            "app_version": self.app_version,
            "opencode_schema": self.opencode_schema,
            "updated": self.updated,
            "session_count": len(self.sessions),
            "files": {
                k: {"size": v.size, "sha256": v.sha256, "raw_size": v.raw_size}
                for k, v in sorted(self.files.items())
            },
            "storage_files": self.storage_files,
            "storage_bytes": self.storage_bytes,
            "last_result": self.last_result,
            "last_full_thinning": self.last_full_thinning,
            **({} if sealing is None else {"encryption": sealing}),
            "delta": _Raw(delta),
            "shards": {},
        }
        text = _lines(doc)
        if not self.shards:
            return text.encode()
        # the shard names and files are checked names ([a-z0-9.-], SHARD_FILE) and the digests hex: written
        # as they are, 0.3 ms for 320 where a json.dumps each took 1 ms
        lines = {} if ref_lines is None else ref_lines
        for k, v in self.shards.items():
            if k not in lines or lines[k][0] is not v:  # only the shards a sync changed are formatted
                fields = f'"file": "{v.file}", "size": {_number(v.size)}, "sha256": {_text(v.sha256)}'
                lines[k] = (v, f'  "{k}": {{{fields}}}')
        for gone in lines.keys() - self.shards.keys():
            del lines[gone]
        refs = ",\n".join(lines[k][1] for k in sorted(lines))
        return (text.removesuffix('"shards": {}\n}') + f'"shards": {{\n{refs}\n }}\n}}').encode()

    def stores(self) -> dict[str, str]:
        """Session id -> the tag of the opencode store it was backed up from."""
        return {sid: e.store for sid, e in self.sessions.items()}

    def store_of(self, session_id: str) -> str | None:
        """The tag of the opencode store ``session_id`` was backed up from (None: not backed up)."""
        entry = self.sessions.get(session_id)
        return entry.store if entry is not None else None


def marks(man: Manifest) -> dict[str, str]:
    """Session id -> the mark of its fingerprint (:attr:`SessionEntry.mark`), computed afresh (a sync asks
    its store's cache, which keeps them up to date)."""
    return {sid: e.mark for sid, e in man.sessions.items()}


def encoded_entry(sid: str, entry: SessionEntry) -> str:
    """One entry as a shard lists it: ``"<id>":{...}``."""
    return _compact(sid) + ":" + _compact(vars(entry))


def _lines(doc: dict[str, Any]) -> str:
    """``doc`` as JSON with one line per key, and one line per entry of ``files``: as readable as
    ``indent=1`` and written by the C encoder (indent takes the pure-Python one: 1.6 ms of a 40 ms sync
    with 320 shards named)."""

    def dumps(value: object) -> str:
        return value if isinstance(value, _Raw) else json.dumps(value, ensure_ascii=False)

    lines = []
    for key, value in doc.items():
        if key == "files" and isinstance(value, dict) and value:
            inner = ",\n".join(f"  {dumps(k)}: {dumps(v)}" for k, v in value.items())
            lines.append(f" {dumps(key)}: {{\n{inner}\n }}")
        else:
            lines.append(f" {dumps(key)}: {dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


class _Raw(str):
    """Text that is JSON already (written as it is)."""


def _number(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _text(value: str | None) -> str:
    return "null" if value is None else json.dumps(value)


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def safe_name(name: str) -> str:
    """A path component from a database value: ids are [A-Za-z0-9_-]; anything else is escaped, so two
    different names never map to one (``a b`` -> ``a%20b``, ``a_b`` stays)."""
    cleaned = _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), name)
    if cleaned.startswith("."):
        cleaned = "%2E" + cleaned[1:]
    return cleaned or "%00"


def session_path(project_id: str, session_id: str) -> str:
    """Where a session's file lives in the machine folder."""
    return f"sessions/{safe_name(project_id)}/{safe_name(session_id)}.json"


def session_shard_of(session_id: str) -> str:
    """The shard (``sessions-XX``) that lists a session."""
    digest = hashlib.sha1(session_id.encode("utf-8"), usedforsecurity=False).digest()
    return f"sessions-{digest[0] % SESSION_SHARDS:02x}"


def shard_of(relpath: str) -> str:
    """The shard (two hex digits) that lists a ``storage/`` file."""
    return hashlib.sha1(relpath.encode("utf-8"), usedforsecurity=False).hexdigest()[:2]


def all_shards() -> list[str]:
    return [f"{i:02x}" for i in range(256)]
