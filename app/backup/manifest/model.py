"""The manifest in memory: its entries, the names of session files and shards, and its JSON head."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.opencode.snapshot import parse_snapshot_name

MANIFEST_FORMAT = "opencode-session-backup-manifest/3"
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


class Sessions(dict[str, SessionEntry]):
    """The manifest's sessions: a dict that notes which ids each change touched, so a save re-encodes
    and a plan compares only those (looking at all 1,800 entries each sync took ~0.8 ms of 10)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logs: list[set[str]] = []

    def log(self) -> set[str]:
        """A set that collects every id changed from now on (its owner empties it as it catches up)."""
        changed: set[str] = set()
        self._logs.append(changed)
        return changed

    def _note(self, key: str) -> None:
        for changed in self._logs:
            changed.add(key)

    def __setitem__(self, key: str, value: SessionEntry) -> None:
        super().__setitem__(key, value)
        self._note(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._note(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Sessions:  # type: ignore[override,misc]
        self.update(other)
        return self

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._note(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, SessionEntry]:
        key, value = super().popitem()
        self._note(key)
        return key, value

    def setdefault(self, key: str, default: SessionEntry) -> SessionEntry:
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        for key in self:
            self._note(key)
        super().clear()


@dataclass
class Manifest:
    """The destination's manifest in memory: sessions, snapshots and summary (storage/ shards on demand).

    A sync changes it in place and gives it to :func:`save`; nothing else mutates it."""

    machine: str
    app_version: str = ""
    opencode_schema: str | None = None
    updated: str = ""
    sessions: dict[str, SessionEntry] = field(default_factory=Sessions)  # a Sessions (made one if not)
    files: dict[str, FileEntry] = field(default_factory=dict)
    storage_files: int = 0
    storage_bytes: int = 0
    last_result: dict[str, Any] = field(default_factory=dict)
    last_full_thinning: str = ""
    shards: dict[str, ShardRef] = field(default_factory=dict)  # as committed (loaded or last saved)
    # storage shard -> {relpath: entry, or None for removed}: the committed changes not yet in that shard
    storage_delta: dict[str, dict[str, FileEntry | None]] = field(default_factory=dict)
    # session shard name -> {session id: entry} as the committed shard file lists them (before the delta)
    _base: dict[str, dict[str, SessionEntry]] = field(default_factory=dict, repr=False, compare=False)
    # session id -> (entry, its JSON, its shard) and shard name -> JSON as last read or written: a save
    # re-encodes only changed entries, rebuilds only the shards they are in (``_built``, with ``_members``)
    # and writes only the shards that differ
    _encoded: dict[str, tuple[SessionEntry, str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _texts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _built: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _members: dict[str, set[str]] = field(default_factory=dict, repr=False, compare=False)
    # (storage shard name, sha256 of its bytes) of every shard text that passed every check of
    # ``load_shard`` or that a save wrote from checked entries: the same bytes are read again without the
    # per-entry checks (5 shards of ~400 entries took 5 ms of a 20 ms sync). The bytes are still read and
    # hashed each time, so a shard changed outside is checked again in full
    _checked: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)
    # shard name -> (its ref, its line in manifest.json), for the refs head_json formatted before
    _ref_lines: dict[str, tuple[ShardRef, str]] = field(default_factory=dict, repr=False, compare=False)
    # the shard files the last save stopped naming (removed by the next save: a reader may still hold the
    # manifest that named them), and whether manifest.d/ was swept of every other unnamed shard since load
    _retired: set[str] = field(default_factory=set, repr=False, compare=False)
    _swept: bool = field(default=False, repr=False, compare=False)
    # per reader of the changes (session_shard_texts, marks): the Sessions it follows and the ids changed
    _logs: dict[str, tuple[dict[str, SessionEntry], set[str]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _marks: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # the files this process put in versions/ since it last thinned their versions, and when that was
    # (a warm service thins at most once a minute, not after each of the syncs a chat brings)
    _unthinned: set[str] = field(default_factory=set, repr=False, compare=False)
    _thinned_at: datetime | None = field(default=None, repr=False, compare=False)

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

    def head_json(self, delta: str = "{}") -> bytes:
        """manifest.json itself: everything but the entries, which live in the shards it names, and
        ``delta``: the JSON of the changes not yet folded into them (see ``write.save``)."""
        doc = {
            "format": MANIFEST_FORMAT,
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
            "delta": _Raw(delta),
            "shards": {},
        }
        text = _lines(doc)
        if not self.shards:
            return text.encode()
        # the shard names and files are checked names ([a-z0-9.-], SHARD_FILE) and the digests hex: written
        # as they are, 0.3 ms for 320 where a json.dumps each took 1 ms; and kept, a sync formats only the
        # few refs it changed
        lines = self._ref_lines
        for k, v in self.shards.items():
            if k not in lines or lines[k][0] is not v:  # only the shards a sync changed are formatted
                fields = f'"file": "{v.file}", "size": {_number(v.size)}, "sha256": {_text(v.sha256)}'
                lines[k] = (v, f'  "{k}": {{{fields}}}')
        for gone in lines.keys() - self.shards.keys():
            del lines[gone]
        refs = ",\n".join(lines[k][1] for k in sorted(lines))
        return (text.removesuffix('"shards": {}\n}') + f'"shards": {{\n{refs}\n }}\n}}').encode()

    def __post_init__(self) -> None:
        if not isinstance(self.sessions, Sessions):
            self.sessions = Sessions(self.sessions)

    def _changed_since(self, reader: str) -> set[str] | None:
        """The session ids changed since ``reader`` last asked (None: not known, look at them all; from
        then on they are noted)."""
        known = self._logs.get(reader)
        if known is not None and known[0] is self.sessions:
            changed = set(known[1])
            known[1].clear()
            return changed
        if isinstance(self.sessions, Sessions):
            self._logs[reader] = (self.sessions, self.sessions.log())
        return None

    def marks(self) -> dict[str, str]:
        """Session id -> the mark of its fingerprint (:attr:`SessionEntry.mark`) for every session, kept up
        to date by the changes noted; the caller only reads it."""
        changed = self._changed_since("marks")
        if changed is None:
            self._marks = {sid: e.mark for sid, e in self.sessions.items()}
        else:
            for sid in changed:
                entry = self.sessions.get(sid)
                if entry is None:
                    self._marks.pop(sid, None)
                else:
                    self._marks[sid] = entry.mark
        return self._marks

    def stores(self) -> dict[str, str]:
        """Session id -> the tag of the opencode store it was backed up from."""
        return {sid: e.store for sid, e in self.sessions.items()}

    def session_shard_texts(self) -> dict[str, str]:
        """Shard name (``sessions-XX``) -> its JSON text, for every shard (empty ones as ``{}``).

        Only the shards whose entries changed since the last call are rebuilt: a sync that changed one
        session re-encodes one entry and one shard, not 1,800 entries (3 ms of a 17 ms sync before)."""
        cache, members = self._encoded, self._members
        changed = self._changed_since("shards")
        if not self._built:
            members.clear()
            members.update({f"sessions-{i:02x}": set() for i in range(SESSION_SHARDS)})
            dirty = set(members)
        else:
            dirty = set()
        look_at = self.sessions.keys() if changed is None or not self._built else changed
        for sid in look_at:
            entry = self.sessions.get(sid)
            hit = cache.get(sid)
            if entry is None:  # gone (looked at only when a change of it was noted)
                if hit is not None:
                    del cache[sid]
                    members[hit[2]].discard(sid)
                    dirty.add(hit[2])
                continue
            if hit is not None and hit[0] is entry and self._built:
                continue
            shard = hit[2] if hit is not None else session_shard_of(sid)
            cache[sid] = (entry, _compact(sid) + ":" + _compact(vars(entry)), shard)
            members[shard].add(sid)
            dirty.add(shard)
        if look_at is not changed:
            for gone in cache.keys() - self.sessions.keys():
                shard = cache.pop(gone)[2]
                members[shard].discard(gone)
                dirty.add(shard)
        for shard in dirty:
            self._built[shard] = "{" + ",".join(cache[sid][1] for sid in sorted(members[shard])) + "}"
        return dict(self._built)


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
