"""The worker thread: runs jobs one at a time and posts each result back to the service.

A job is never run twice at once because there is exactly one worker thread and one job queue.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.backup.progress import Progress, Sink
from app.backup.restore import Plan, RestoreRequest, RestoreResult
from app.backup.result import SyncResult
from app.backup.sync import SyncOptions
from app.errors import BackupError, FailureKind
from app.host import HOST
from app.service.events import Event, JobDone, Progressed, RestoreDone

logger = logging.getLogger(__name__)

RunSync = Callable[[SyncOptions, Sink], SyncResult]
RunRestore = Callable[[Plan, RestoreRequest, Sink], RestoreResult]
"""A job's runner gets the sink its progress goes to (posted to the service, tagged with the job)."""


@dataclass(frozen=True)
class Job:
    """One sync to run; ``job_id`` ties the result to the request."""

    job_id: int
    options: SyncOptions


@dataclass(frozen=True)
class RestoreJob:
    """One confirmed restore to apply."""

    job_id: int
    plan: Plan
    request: RestoreRequest


def _refuse_restores(_plan: Plan, _req: RestoreRequest, _progress: Sink) -> RestoreResult:
    raise BackupError("this service does not restore")


def _nothing_after(_result: SyncResult) -> None:
    """What follows a sync when nothing does."""


class Worker:
    """Owns one thread. ``run_sync`` and ``run_restore`` run on it; ``cancel`` is the SyncContext's
    cancel event (a restore is not cancelled half-way: each session is one transaction anyway).
    ``after_sync`` runs on it too, once a sync's result is posted (the search index follows the sync
    there: off the sync's own path, before the next job)."""

    def __init__(
        self,
        run_sync: RunSync,
        post: Callable[[Event], None],
        cancel: threading.Event,
        run_restore: RunRestore = _refuse_restores,
        after_sync: Callable[[SyncResult], None] = _nothing_after,
    ) -> None:
        self._run_sync = run_sync
        self._run_restore = run_restore
        self._after_sync = after_sync
        self._post = post
        self._cancel = cancel
        self._jobs: queue.SimpleQueue[Job | RestoreJob | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="backup-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job | RestoreJob) -> None:
        """Queue a job (service thread)."""
        self._jobs.put(job)

    def stop(self, cancel: bool = True) -> None:
        """Ask the thread to end; with ``cancel`` the running job is cancelled (any thread)."""
        self._stop.set()
        if cancel:
            self._cancel.set()
        self._jobs.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        """The worker thread's body."""
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                break
            if isinstance(job, RestoreJob):
                self._restore(job)
                continue
            try:
                result = self._run_sync(job.options, self._progress_of(job.job_id))
            except Exception as exc:  # a bug in a job must not kill the service
                logger.exception("sync job crashed")
                result = SyncResult.failure(datetime.now(UTC), FailureKind.FATAL, f"internal error: {exc!r}")
            release_memory()
            self._post(JobDone(result, job.job_id))
            try:
                self._after_sync(result)
            except Exception:  # what follows a sync must not kill the service either
                logger.exception("after the sync")

    def _progress_of(self, job_id: int) -> Sink:
        def post(progress: Progress) -> None:
            self._post(Progressed(progress, job_id))

        return post

    def _restore(self, job: RestoreJob) -> None:
        outcome: RestoreResult | Exception
        try:
            outcome = self._run_restore(job.plan, job.request, self._progress_of(job.job_id))
        except BackupError as exc:
            outcome = exc
        except Exception as exc:  # a bug must not kill the service; the caller hears of it
            logger.exception("restore job crashed")
            outcome = exc
        release_memory()
        self._post(RestoreDone(outcome, job.job_id))


def release_memory() -> None:
    """Give the heap a full sync grew back to the OS, so an idle service stays small (worker thread).

    CPython keeps freed memory in its arenas and glibc keeps freed heap pages; ``malloc_trim``
    returns them. Other platforms only get the garbage collection.
    """
    gc.collect()
    if HOST.trims_heap:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)
