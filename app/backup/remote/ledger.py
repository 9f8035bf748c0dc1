"""What the remote holds, as far as this computer knows: the ledger, a small SQLite database by the mirror.

A row is a file of the remote machine folder, with the size and sha256 of the content it holds there; a
row is written only after rclone said the file arrived (its log's "Copied"/"Moved" lines) or after the
file was compared with the mirror's, and removed once rclone deleted it (its content made "unknown"
first: a file that may be gone is never taken as there). So the ledger may lag behind the remote (a kill
after rclone's work, before the ledger's write: the next push puts the file up again, which changes
nothing), never run ahead of it. ``meta`` keeps what the remote's committed manifest was
(to compare the mirror's with), the remote intent a cut upload left, when the last upload finished.

storage/ rows (a legacy tree can have 100,000) stay in the database and are looked up by shard; the
others (a few thousand at most) are read once into memory. One writer (the sync, under the sync lock);
``status`` opens it read-only. Runs on the worker thread (or a command's).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.backup.manifest import MANIFEST, shard_of
from app.fsutil import Content, make_private_dirs, sha256_file

LEDGER = "ledger.db"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS file (path TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " shard TEXT) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS file_shard ON file(shard) WHERE shard IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)


def _shard(rel: str) -> str | None:
    return shard_of(rel) if rel.startswith("storage/") else None


class Ledger:
    """The ledger of one remote machine folder (``path``: its database file, created 0600 when missing)."""

    def __init__(self, path: Path) -> None:
        make_private_dirs(path.parent)
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._files: dict[str, Content] = {}
        self._meta: dict[str, str] = {}
        self._version = -1
        self.refresh()

    def close(self) -> None:
        self._db.close()

    def refresh(self) -> None:
        """Read again what another process (``repair`` or ``adopt`` beside the running service) wrote since:
        SQLite's data_version changes with every commit of another connection (one query, ~5 us)."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        self._version = version
        rows = self._db.execute("SELECT path, size, sha256 FROM file WHERE shard IS NULL")
        self._files = {rel: (size, sha) for rel, size, sha in rows}
        self._meta = dict(self._db.execute("SELECT key, value FROM meta"))

    # --- reading ---------------------------------------------------------------------------------

    def get(self, rel: str) -> Content | None:
        """What the remote holds at ``rel`` (None: nothing, as far as we know)."""
        if rel.startswith("storage/"):
            row = self._db.execute("SELECT size, sha256 FROM file WHERE path = ?", (rel,)).fetchone()
            return (row[0], row[1]) if row else None
        return self._files.get(rel)

    def outside_storage(self) -> Mapping[str, Content]:
        """Every file on the remote outside storage/ (sessions, snapshots, index shards, versions...)."""
        return self._files

    def in_shard(self, shard: str) -> dict[str, Content]:
        """The storage/ files on the remote that the index lists in ``storage-<shard>``."""
        return {
            rel: (size, sha)
            for rel, size, sha in self._db.execute(
                "SELECT path, size, sha256 FROM file WHERE shard = ?", (shard,)
            )
        }

    def storage_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM file WHERE shard IS NOT NULL").fetchone()[0])

    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def meta_json(self, key: str, default: Any) -> Any:
        raw = self._meta.get(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            return default

    # --- writing ---------------------------------------------------------------------------------

    def record(
        self,
        arrived: Mapping[str, Content] = {},
        gone: Iterable[str] = (),
        meta: Mapping[str, str | None] = {},
    ) -> None:
        """In one transaction: files that are now on the remote with that content, files that are not
        there any more, and meta values (None: removed)."""
        gone = [rel for rel in gone if rel not in arrived]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO file (path, size, sha256, shard) VALUES (?, ?, ?, ?)",
                [(rel, c[0], c[1], _shard(rel)) for rel, c in arrived.items()],
            )
            db.executemany("DELETE FROM file WHERE path = ?", [(rel,) for rel in gone])
            for key, value in meta.items():
                if value is None:
                    db.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        for rel, content in arrived.items():
            if not rel.startswith("storage/"):
                self._files[rel] = content
        for rel in gone:
            self._files.pop(rel, None)
        for key, value in meta.items():
            if value is None:
                self._meta.pop(key, None)
            else:
                self._meta[key] = value

    def reset(self, files: Mapping[str, Content], meta: Mapping[str, str]) -> None:
        """Forget everything, then know ``files`` and ``meta`` (what a comparison with the remote found)."""
        with self._transaction() as db:
            db.execute("DELETE FROM file")
            db.execute("DELETE FROM meta")
        self._files, self._meta = {}, {}
        self.record(files, (), meta)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def ledger_file(cache: Path, machine: str) -> Path:
    """Where the ledger of ``machine``'s folder on a remote lives, in that remote's cache folder."""
    return cache / "ledgers" / machine / LEDGER


def read_meta(path: Path) -> dict[str, str]:
    """The meta values of the ledger at ``path``, opened read-only ({} when there is none or it cannot be
    read): what ``status`` shows about uploads, without taking the writer's place."""
    if not path.is_file():
        return {}
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return dict(db.execute("SELECT key, value FROM meta"))
        finally:
            db.close()
    except sqlite3.Error:
        return {}


@dataclass(frozen=True)
class UploadState:
    """What ``status`` says about a remote: when the last upload finished (None: none yet) and whether
    the mirror holds a committed backup that is not on the remote yet."""

    uploaded: datetime | None
    pending: bool


def upload_state(cache: Path, machine_dir: Path) -> UploadState:
    """The upload state of ``machine_dir`` (a mirror's machine folder) from its ledger; reads only."""
    meta = read_meta(ledger_file(cache, machine_dir.name))
    uploaded = None
    with contextlib.suppress(ValueError, TypeError):
        uploaded = datetime.fromisoformat(meta.get("uploaded_at", ""))
    try:
        mine = sha256_file(machine_dir / MANIFEST)
    except OSError:
        return UploadState(uploaded, False)
    try:
        committed = json.loads(meta.get("committed", "{}")).get("sha256", "")
    except (ValueError, AttributeError):
        committed = ""
    return UploadState(uploaded, mine != committed)
