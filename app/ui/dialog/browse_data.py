"""What the Browse backups window reads, off its Tk thread: the hits of a search, the versions of a
session, a version's transcript, and the Markdown file "Save as Markdown…" writes.

The window asks for these through :class:`Fetcher`: one worker thread runs the jobs in order and hands
each result back to the Tk thread through a queue the window polls, so typing never waits for the disk.
A job superseded before it ran (a newer search) is dropped. Everything shown is made inert by the window.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths, wiring
from app.backup import asof, transcript
from app.backup import backup_reader as br
from app.backup.history import History, add_snapshots, history
from app.backup.progress import Report, Throttled
from app.backup.search import find
from app.backup.search_index import Hit, NoWords
from app.errors import BackupError
from app.fsutil import atomic_write_bytes
from app.ui.dialog.protocol import BrowseRequest

logger = logging.getLogger(__name__)

HITS = 100  # sessions a search shows
REFRESH_EVERY = 5.0  # seconds a window searches its index as it is after bringing it up to date
SHOWN_CHARS = (
    400_000  # of a transcript in the window (a Tk text widget slows down past that); saving writes it all
)


@dataclass(frozen=True)
class Searched:
    query: str
    hits: list[Hit]
    note: str  # what the status line says (how many, files not searched)


@dataclass(frozen=True)
class Versions:
    hit: Hit
    history: History
    complete: bool  # snapshots looked into too


@dataclass(frozen=True)
class Shown:
    session_id: str
    copy: str
    text: str


@dataclass(frozen=True)
class Failed:
    what: str  # what could not be done, in words: "search", "read the versions"...
    why: str


@dataclass(frozen=True)
class Note:
    """How far a long job has got (building the index), for the status line."""

    text: str


class Backup:
    """The backup folder a Browse window looks at (built on any thread, then used by its Fetcher's one
    worker thread: it remembers what the last job read)."""

    def __init__(self, request: BrowseRequest, clock: Callable[[], float] = time.monotonic) -> None:
        self.request = request
        self.clock = clock
        self.work_dir = paths.app_data_dir()
        self.keys = wiring.keys()  # an encrypted backup is read with this install's keys
        self._files_read: History | None = None  # the last session's file copies, for its snapshots
        self._refreshed: float | None = None  # when this window last brought the index up to date

    def search(self, query: str, progress: Callable[[str], None]) -> Searched:
        """The sessions holding every word of ``query`` (the last may be a start), or with no word the
        sessions updated last; ``progress`` hears how far building the index has got."""
        tell = Throttled(lambda p: progress(p.sentence()), every=0.5)
        if not query.strip():
            hits, skipped = self._find(None, tell.report)
            note = f"{len(hits)} most recently updated session(s); type to search"
        else:
            try:
                hits, skipped = self._find(query, tell.report, prefix=True)
            except NoWords:
                return Searched(query, [], "type a word (letters or digits)")
            note = (
                f"{len(hits)} session(s) hold every word" if hits else "no session holds all of these words"
            )
        if skipped:
            note += f"; {len(skipped)} session file(s) cannot be read and are not searched"
        return Searched(query, hits, note)

    def _find(
        self, query: str | None, report: Report, *, prefix: bool = False
    ) -> tuple[list[Hit], list[tuple[str, str, str]]]:
        """:func:`find`, bringing the index up to date with every machine folder first only when this
        window has not done so for REFRESH_EVERY seconds (the first search always does): search as you
        type would look through them all at each pause in the typing."""
        r = self.request
        refresh = self._refreshed is None or self.clock() - self._refreshed >= REFRESH_EVERY
        try:
            found = find(
                r.backup_path,
                query,
                HITS,
                (r.source, r.opencode_db),
                report,
                prefix=prefix,
                seal=self.keys,
                refresh=refresh,
            )
        except NoWords:
            if refresh:  # the index was brought up to date before the query was read
                self._refreshed = self.clock()
            raise
        if refresh:
            self._refreshed = self.clock()
        return found

    def versions(self, hit: Hit, *, complete: bool) -> Versions:
        """The versions of a hit's session; ``complete``: the snapshots looked into too. The window asks
        for the files first, then for all: the second adds the snapshots to the files the first read (a
        long chat's copies are megabytes each), reading them again only when the first was not run."""
        machine_dir = br.safe_machine_dir(self.request.backup_path, hit.machine)
        first = self._take_files_read(machine_dir, hit.session_id)
        if complete and first is not None:
            return Versions(hit, add_snapshots(first, self.work_dir), complete)
        h = history(machine_dir, hit.session_id, self.work_dir, with_snapshots=complete, seal=self.keys)
        if not complete:
            self._files_read = h
        return Versions(hit, h, complete)

    def _take_files_read(self, machine_dir: Path, session_id: str) -> History | None:
        """The file copies the last job read, if of this session (forgotten either way)."""
        h, self._files_read = self._files_read, None
        return h if h is not None and (h.machine_dir, h.session_id) == (machine_dir, session_id) else None

    def transcript(self, h: History, rel: str) -> Shown:
        """The transcript of the copy ``rel`` (cut at SHOWN_CHARS)."""
        copy = next(c for c in h.copies if c.rel == rel)
        doc = asof.read_copy(h, copy, self.work_dir)
        text = "\n".join(transcript.markdown(doc, asof.source(h, copy)))
        if len(text) > SHOWN_CHARS:
            text = text[:SHOWN_CHARS] + "\n\n[… cut here; Save as Markdown… writes all of it]"
        return Shown(h.session_id, rel, text)

    def save(self, h: History, rel: str, target: Path) -> Path:
        """The copy's whole transcript as Markdown in ``target`` (replaced atomically)."""
        copy = next(c for c in h.copies if c.rel == rel)
        doc = asof.read_copy(h, copy, self.work_dir)
        text = "\n".join(transcript.markdown(doc, asof.source(h, copy))) + "\n"
        atomic_write_bytes(target, text.encode("utf-8"))
        return target


class Fetcher:
    """One worker thread running the window's jobs in order; results come back through :meth:`results`."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[int, str, str, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self._latest: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="browse-fetch", daemon=True)
        self._thread.start()

    def ask(self, kind: str, what: str, work: Callable[[], Any]) -> int:
        """Queue ``work`` (Tk thread); an older job of the same ``kind`` not yet started is dropped.
        ``what``: what it does, in words, should it fail."""
        with self._lock:
            self._count += 1
            self._latest[kind] = self._count
            number = self._count
        self._jobs.put((number, kind, what, work))
        return number

    def note(self, text: str) -> None:
        """Pass on how far a job has got (its worker thread)."""
        self._results.put((0, Note(text)))

    def results(self) -> list[tuple[int, Any]]:
        """The results ready now (Tk thread): (job number, value, Failed or Note; 0 for a Note)."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            number, kind, what, work = job
            with self._lock:
                if self._latest.get(kind) != number:
                    continue  # a newer one of the same kind is queued
            try:
                value: Any = work()
            except (BackupError, OSError, StopIteration) as exc:
                value = Failed(what, str(exc) or type(exc).__name__)
            except Exception as exc:  # a bug must not leave the window waiting forever
                logger.exception("browse: %s failed", kind)
                value = Failed(what, f"internal error: {exc!r}")
            self._results.put((number, value))
