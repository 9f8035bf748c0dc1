"""``manifest.d/intent.json``: what a sync is about to change, written before its first change.

Between its first change at the destination and its commit (``manifest.json``), a sync replaces session
and snapshot files and moves deleted ones to ``versions/``; a crash there leaves files that no longer match
the committed manifest. The intent names them: each path it lists holds either the content the manifest
records or one of the contents the intent records (or, for removals, is gone). Several, because a sync
that follows an interrupted one may be interrupted too, with a newer content for the same file: its
intent keeps the earlier sync's candidates as well. ``verify`` accepts exactly that and says
a sync was interrupted; the next sync finishes the job and removes the intent after its own commit.
Untrusted like everything in the backup folder: read with caps and checks.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import untrusted as u
from app.errors import BackupDamaged
from app.fsutil import atomic_write_bytes

INTENT = "manifest.d/intent.json"
FORMAT = "opencode-session-backup-intent/2"
V1_FORMAT = "opencode-session-backup-intent/1"
MAX_CANDIDATES = 64
MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class Intent:
    """A sync's pending changes: ``writes`` maps a path to the (size, sha256) contents it may hold;
    ``removes`` lists the paths it moves to ``versions/<stamp>/``."""

    stamp: str
    writes: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    removes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.writes and not self.removes


def write(machine_dir: Path, intent: Intent) -> None:
    doc = {
        "format": FORMAT,
        "stamp": intent.stamp,
        "writes": {k: [list(c) for c in v] for k, v in sorted(intent.writes.items())},
        "removes": sorted(intent.removes),
    }
    atomic_write_bytes(machine_dir / INTENT, json.dumps(doc, separators=(",", ":")).encode())


def clear(machine_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (machine_dir / INTENT).unlink()


def load(machine_dir: Path) -> Intent | None:
    """The intent an interrupted sync left, or None. (Format 1 held one content per path.)"""
    path = machine_dir / INTENT
    if not path.exists() and not path.is_symlink():
        return None
    doc = u.obj(u.parse_json(u.read_capped(path, MAX_BYTES, INTENT), INTENT), INTENT)
    if doc.get("format") not in (FORMAT, V1_FORMAT):
        raise BackupDamaged(f"{INTENT}: unknown format {u.short(doc.get('format'))}")
    writes = {}
    for rel, value in u.obj(doc.get("writes", {}), INTENT).items():
        _path(rel)
        listed = [value] if doc["format"] == V1_FORMAT else value
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_CANDIDATES:
            raise BackupDamaged(f"{INTENT} is damaged: the entry of {u.short(rel)}")
        writes[rel] = tuple(_content(rel, c) for c in listed)
    removes = doc.get("removes", [])
    if not isinstance(removes, list):
        raise BackupDamaged(f"{INTENT} is damaged: removes is not a list")
    for rel in removes:
        _path(rel)
    return Intent(u.text(doc.get("stamp", ""), f"{INTENT} stamp", 100), writes, tuple(removes))


def _path(rel: object) -> None:
    root = rel.split("/", 1)[0] if isinstance(rel, str) else ""
    u.relpath(rel, INTENT, root if root in ("sessions", "snapshots", "storage") else "sessions")


def _content(rel: str, value: object) -> tuple[int, str]:
    if not isinstance(value, list) or len(value) != 2:
        raise BackupDamaged(f"{INTENT} is damaged: the entry of {u.short(rel)}")
    return u.integer(value[0], f"{INTENT} size", high=u.MAX_FILE_BYTES), u.digest(value[1], INTENT)
