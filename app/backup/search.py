"""Searching the backup folder: bring the index up to date, then ask it; and let it follow each sync.

:func:`search` and :func:`find` are what the faces call (the command line, the agent's tool, the Browse
window); :class:`Follower` is what a sync's caller runs once the sync has committed (the service's worker
keeps one, after posting the result; a sync in a command's or the agent's process, ``wiring.sync_once``,
uses :func:`after_sync`): off the sync's own path, on an index that exists only (a first search builds
it), giving up rather than waiting for another writer. Runs on the caller's thread.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from app.backup.catalog import live_session_ids
from app.backup.progress import Report, unreported
from app.backup.search_index import Hit, Index, index_path, open_index, remove, with_opencode
from app.backup.search_refresh import refresh as refresh_index
from app.crypt.seal import PLAIN, Seal, SealSource
from app.errors import BackupError

logger = logging.getLogger(__name__)

AFTER_SYNC_WAIT = 0.5  # seconds the service waits for another writer (a search building the index)


def search(
    backup_path: Path,
    query: str | None,
    limit: int,
    report: Report = unreported,
    *,
    prefix: bool = False,
    seal: Seal = PLAIN,
    refresh: bool = True,
) -> tuple[list[Hit], list[tuple[str, str, str]]]:
    """Bring the index up to date with the backup folder (building it, with progress, when missing), then
    search it. Returns the hits and the files the index could not read (machine, file, why). A damaged
    index is built again once. ``query`` None: the sessions updated last. ``refresh`` False: the index as
    it is, unless it is empty (search as you type, just after a search that refreshed it)."""
    for attempt in (1, 2):
        try:
            with open_index(backup_path) as index:
                if refresh or index.empty:
                    refresh_index(index, report=report, seal=seal)
                hits = index.recent(limit) if query is None else index.search(query, limit, prefix=prefix)
                return hits, index.skipped()
        except sqlite3.OperationalError as exc:  # busy, or a query SQLite refused: the index is fine
            raise BackupError(f"the search index cannot be used now: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if attempt == 2:
                raise BackupError(f"the search index cannot be used: {exc}") from None
            logger.warning("the search index is damaged (%s); building it again", exc)
            remove(index_path(backup_path))
    raise AssertionError("unreachable")


def find(
    backup_path: Path,
    query: str | None,
    limit: int,
    opencode: tuple[Path, Path | None],
    report: Report = unreported,
    *,
    prefix: bool = False,
    seal: Seal = PLAIN,
    refresh: bool = True,
) -> tuple[list[Hit], list[tuple[str, str, str]]]:
    """:func:`search`, each hit marked with whether this computer's opencode has the session (from its
    database(s): ``opencode`` is the data folder and the database named by OPENCODE_DB, if any)."""
    hits, skipped = search(backup_path, query, limit, report, prefix=prefix, seal=seal, refresh=refresh)
    try:
        live = live_session_ids(*opencode, {h.session_id: h.store for h in hits}.get)
    except (sqlite3.Error, OSError, BackupError) as exc:
        logger.info("cannot tell which sessions opencode has: %s", exc)
        live = set()
    return with_opencode(hits, live), skipped


def after_sync(backup_path: Path, machine: str, seal: Seal = PLAIN) -> None:
    """Let the index follow a sync of ``machine``'s folder, if there is an index (a command's sync; the
    service keeps a :class:`Follower`). Never raises."""
    follower = Follower(backup_path, machine, seal)
    try:
        follower.after_sync()
    finally:
        follower.close()


class Follower:
    """Keeps the index up with the syncs of one machine folder of this install (the service's worker
    thread): only an index that exists (a first search builds it), giving up rather than waiting for
    another writer, never raising (the index is a cache, the sync has committed, the next search catches
    up). It keeps the index open between syncs: opening and closing it (a checkpoint of its log) took
    2.5 ms of an 11 ms update after a bench P1 sync."""

    def __init__(self, backup_path: Path, machine: str, seal: SealSource = PLAIN) -> None:
        self.backup_path = backup_path
        self.machine = machine
        self.seal = seal
        self._index: Index | None = None
        self._file: tuple[int, int] | None = None  # the index file's (device, inode) when opened

    def after_sync(self) -> None:
        try:
            t0 = time.perf_counter()
            index = self._open()
            if index is None:
                return
            done = refresh_index(index, [self.machine], ours=True, seal=self.seal.current())
            logger.debug("search index: %d read, %d dropped in %.1f ms", done.read, done.dropped,
                         (time.perf_counter() - t0) * 1000)  # fmt: skip
        except (sqlite3.Error, OSError, BackupError) as exc:
            logger.info("the search index was not updated after the sync (%s); the next search will", exc)
            self.close()

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self._index, self._file = None, None

    def _open(self) -> Index | None:
        """The index, opened again when its file was removed or replaced (a search rebuilt it)."""
        path = index_path(self.backup_path)
        try:
            st = path.stat()
        except FileNotFoundError:
            self.close()
            return None
        if self._index is None or self._file != (st.st_dev, st.st_ino):
            self.close()
            self._index = open_index(self.backup_path, timeout=AFTER_SYNC_WAIT)
            self._file = (st.st_dev, st.st_ino)
        if self._index.empty:  # built anew (damaged, or of another format): the next search builds it
            self.close()
            return None
        return self._index
