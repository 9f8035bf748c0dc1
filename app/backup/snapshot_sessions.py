"""The sessions inside a machine folder's snapshots: which ones each holds (cached), and one of them as a
session file, so that ``history`` lists, ``show`` reads and ``restore --at`` restores a snapshot's copy.

A snapshot is read only through :func:`app.backup.snapshot_check.checked_snapshot` (decompressed with a
cap into a private temp file, ``integrity_check`` first), and only from its plain tables, by
:class:`app.opencode.sessions.Reader` (the exporter a sync uses), so what comes out is a session file
like any other, validated by :func:`app.backup.backup_reader.parse_session`. Opening one costs seconds
on a large database, so what each holds is kept in this user's cache folder
(``<cache>/snapshots/<sha256 of the snapshot's path, 16 hex>.json``: its size, mtime and, per session,
its time_updated and number of messages); a snapshot whose size or mtime changed is opened again.
Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from app import paths
from app.backup import backup_reader as br
from app.backup.snapshot_check import SnapshotRef, checked_snapshot
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupDamaged, BackupError
from app.fsutil import atomic_write_bytes, make_private_dirs
from app.opencode.schema import quote
from app.opencode.sessions import Reader

logger = logging.getLogger(__name__)

FOLDER = "snapshots"
FORMAT = 1


@dataclass(frozen=True)
class Held:
    """A session as a snapshot holds it: its last change (ms) and number of messages."""

    time_updated: int
    messages: int


def contents(
    ref: SnapshotRef, work_dir: Path, cache: Path | None = None, seal: Seal = PLAIN
) -> dict[str, Held]:
    """Session id -> how ``ref`` holds it (from the cache when the snapshot is unchanged). Raises
    BackupDamaged for a snapshot that cannot be read."""
    st = ref.path.lstat()
    key = _cache_file(ref, cache)
    cached = _load(key, st.st_size, st.st_mtime_ns)
    if cached is not None:
        return cached
    with checked_snapshot(ref, work_dir, seal=seal) as db, Reader(db) as reader:
        held: dict[str, Held] = {}
        for store in reversed(reader.stores):  # 2.0's last: where a session is in both, it lives there
            counts = dict(reader.conn.execute(_count_sql(store.tag)).fetchall())
            for sid, updated in reader.conn.execute(f"SELECT id, time_updated FROM {quote(store.root)}"):
                if isinstance(sid, str) and isinstance(updated, int):
                    held[sid] = Held(updated, int(counts.get(sid, 0)))
    data = {"format": FORMAT, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sessions": {sid: [h.time_updated, h.messages] for sid, h in held.items()}}  # fmt: skip
    with contextlib.suppress(OSError):  # a cache: not kept is only slower next time
        make_private_dirs(key.parent)
        atomic_write_bytes(key, json.dumps(data).encode(), fsync=False)
    return held


def extract(ref: SnapshotRef, session_id: str, work_dir: Path, seal: Seal = PLAIN) -> bytes:
    """The session file (its bytes) of ``session_id`` as ``ref`` holds it, validated. Raises BackupDamaged
    when the snapshot cannot be read or does not hold it."""
    with checked_snapshot(ref, work_dir, seal=seal) as db, Reader(db) as reader:
        for store in reader.stores:  # 2.0 first, as a sync exports it
            info = reader.info(session_id, store)
            if info is not None:
                data = reader.export(info, fingerprint=f"snapshot {ref.stamp}")
                br.parse_session(data, ref.path, session_id)  # the checks every session file gets
                return data
    raise BackupDamaged(f"snapshot {ref.path.name} does not hold session {session_id}")


def materialize(ref: SnapshotRef, session_id: str, work_dir: Path, seal: Seal = PLAIN) -> Path:
    """:func:`extract` written to a private file under ``work_dir/as-of/`` (what a restore of a snapshot's
    copy reads, like a session file of the backup); the files older than a day there are removed."""
    folder = work_dir / "as-of"
    make_private_dirs(folder)
    for old in folder.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < time.time() - 86400:
                old.unlink()
    path = folder / f"{session_id}-{ref.stamp}.json"
    atomic_write_bytes(path, extract(ref, session_id, work_dir, seal))
    return path


def _count_sql(tag: str) -> str:
    table = "session_message" if tag == "v2" else "message"
    return f"SELECT session_id, count(*) FROM {quote(table)} GROUP BY session_id"


def _cache_file(ref: SnapshotRef, cache: Path | None) -> Path:
    digest = hashlib.sha256(str(ref.path.absolute()).encode("utf-8", "surrogateescape")).hexdigest()
    return (cache or paths.app_cache_dir() / FOLDER) / f"{digest[:16]}.json"


def _load(path: Path, size: int, mtime_ns: int) -> dict[str, Held] | None:
    """The cached contents, if they are of this very file; anything odd in the cache is ignored."""
    try:
        data = json.loads(path.read_bytes())
        if data["format"] != FORMAT or data["size"] != size or data["mtime_ns"] != mtime_ns:
            return None
        return {str(sid): Held(int(v[0]), int(v[1])) for sid, v in data["sessions"].items()}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def safe_contents(ref: SnapshotRef, work_dir: Path, seal: Seal = PLAIN) -> dict[str, Held]:
    """:func:`contents`, or nothing (with a warning) for a snapshot that cannot be read."""
    try:
        return contents(ref, work_dir, seal=seal)
    except (BackupError, OSError) as exc:
        logger.warning("snapshot %s is not looked into: %s", ref.path.name, exc)
        return {}
