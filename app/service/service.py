"""The service: one thread that owns all mutable state and reads one queue of events and commands.

Other threads (watcher, worker, control, signal handlers, a tray) only call :meth:`Service.post`.
After every event the service decides whether to start a sync (debouncer, retry timer, pause) and
publishes an immutable :class:`~app.service.status.Status` to its listeners.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.backup.progress import Progress
from app.backup.result import Outcome, SyncResult
from app.backup.sync import SyncOptions
from app.errors import FailureKind
from app.service.debouncer import Debouncer
from app.service.events import (
    Changed,
    Event,
    JobDone,
    Pause,
    Progressed,
    Quit,
    RestoreDone,
    RestoreNow,
    Resume,
    SyncNow,
    Tick,
)
from app.service.notifier import LogNotifier, Notifier
from app.service.pending import Pending, RunningSync
from app.service.restores import Restores
from app.service.retry import Backoff, EpisodeEvent, Episodes, Grace
from app.service.status import ServiceState, Status
from app.service.worker import Job, RestoreJob

logger = logging.getLogger(__name__)

Listener = Callable[[Status], None]
MAX_WAIT = 60.0  # the service thread wakes at least this often (seconds) even with nothing to do
QUIT_GRACE = 4.0  # how long Quit waits for the cancelled job to report back


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Timing:
    """The debouncer's and retry policy's parameters."""

    delay: float = 5.0
    interval: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    grace: Grace = field(default_factory=Grace)
    full_every: float = 6 * 3600.0  # a change-triggered sync walks everything at most this often


class Service:
    """The state machine. ``submit`` hands a job to the worker; ``cancel`` cancels the running one;
    ``reply`` answers a waiting ``sync`` request. ``clock`` is monotonic seconds, ``wall`` UTC now."""

    def __init__(
        self,
        submit: Callable[[Job | RestoreJob], None],
        *,
        timing: Timing | None = None,
        cancel: Callable[[], None] = lambda: None,
        reply: Callable[[str, SyncResult], None] = lambda _rid, _res: None,
        notifier: Notifier | None = None,
        listeners: Iterable[Listener] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        startup_sync: bool = True,
        last_backup: datetime | None = None,
        source: str | None = None,
        destination: str | None = None,
    ) -> None:
        self._submit = submit
        self._cancel = cancel
        self._reply = reply
        self._notifier = notifier or LogNotifier()
        self._listeners = list(listeners)
        self._clock = clock
        self._wall = wall
        self._timing = timing = timing or Timing()
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._deb = Debouncer(timing.delay, timing.interval)
        self._episodes = Episodes(timing.grace)
        self._pending = Pending(full=startup_sync)
        self._running: RunningSync | None = None
        self._restores = Restores()
        self._next_id = 1
        self._paused = False
        self._failed = False
        self._quitting = False
        self._quit_deadline = 0.0
        self._retry_at: float | None = None
        self._attempts = 0
        self._syncs = 0
        self._last_full = clock()
        self._last: SyncResult | None = None
        self._last_backup = last_backup  # the end of the last sync that backed everything up
        self._sessions: int | None = None
        self._progress: Progress | None = None  # how far the running job has got
        self._started = wall()
        self._where = (source, destination)
        self._status = Status(
            pid=os.getpid(),
            started=self._started,
            last_backup=last_backup,
            source=source,
            destination=destination,
        )
        self._thread: threading.Thread | None = None
        if startup_sync:
            self._deb.force()

    # ---------------------------------------------------------------- any thread
    def post(self, event: Event) -> None:
        """Queue an event for the service thread (any thread; never blocks)."""
        self._queue.put(event)

    @property
    def status(self) -> Status:
        """The latest published Status (any thread)."""
        return self._status

    def start(self) -> None:
        """Start the service thread."""
        self._thread = threading.Thread(target=self.run, name="backup-service", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the service thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # ---------------------------------------------------------------- service thread
    def run(self) -> None:
        """The service thread's body: handle events until Quit (and the cancelled job's end)."""
        self._step(Tick())
        while not self._done():
            try:
                event = self._queue.get(timeout=self._wait_seconds())
            except queue.Empty:
                event = Tick()
            self._step(event)
        self._finish()

    def handle(self, event: Event) -> None:
        """Handle one event on the caller's thread (tests without a service thread use this)."""
        self._step(event)

    def _step(self, event: Event) -> None:
        now = self._clock()
        self._apply(event, now)
        alert = self._episodes.check(now)
        if alert is not None:
            self._notify(alert)
        if not self._quitting:
            self._maybe_start(now)
        self._publish(now)

    def _apply(self, event: Event, now: float) -> None:
        p = self._pending
        if isinstance(event, Changed):
            p.paths.update(event.paths)
            p.database = p.database or not (event.paths or event.appeared)
            p.full = p.full or event.appeared
            self._deb.changed(now)
        elif isinstance(event, SyncNow):
            self._deb.force()
            p.snapshot = p.snapshot or event.snapshot
            p.allow_deletions = p.allow_deletions or event.allow_deletions
            if event.request_id:
                p.requests.append(event.request_id)
        elif isinstance(event, Pause):
            self._paused = True
            logger.info("paused")
        elif isinstance(event, Resume):
            self._paused = False
            logger.info("resumed")
        elif isinstance(event, Quit):
            if not self._quitting:
                self._quitting = True
                self._quit_deadline = now + QUIT_GRACE
                if self._running is not None:
                    self._cancel()
        elif isinstance(event, RestoreNow):
            self._restores.waiting.append(event)
            logger.info("restore requested: %d session(s)", len(event.plan.actionable))
        elif isinstance(event, Progressed):
            self._progressed(event)
        elif isinstance(event, RestoreDone):
            self._restore_done(event)
        elif isinstance(event, JobDone):
            self._job_done(event, now)

    def _progressed(self, event: Progressed) -> None:
        running = self._running.job_id if self._running is not None else None
        restoring = self._restores.running[0] if self._restores.running is not None else None
        if event.job_id in (running, restoring):  # a late report of an ended job shows nothing
            self._progress = event.progress

    def _job_done(self, event: JobDone, now: float) -> None:
        job = self._running
        if job is None or job.job_id != event.job_id:
            return
        self._running, self._progress = None, None
        self._deb.finished()
        result = event.result
        self._syncs += 1
        self._last = result
        for rid in job.requests:
            self._reply(rid, result)
        if result.ok:
            if result.backed_up:
                self._sessions = result.sessions_total
                self._last_backup = result.ended
            self._failed, self._retry_at, self._attempts = False, None, 0
            recovered = self._episodes.success(self._wall())
            if recovered is not None:
                self._notify(recovered)
            return
        # nothing of a failed sync counts as backed up: its changes are pending again, the database too
        p = self._pending
        p.paths |= job.paths
        p.database, p.full = True, p.full or job.full
        if self._quitting:
            return
        kind = result.kind or FailureKind.FATAL
        alert = self._episodes.failure(
            now, self._wall(), kind, result.error or kind.sentence, result.locked_path
        )
        if alert is not None:
            self._notify(alert)
        if kind.retryable:
            self._attempts += 1
            self._retry_at = now + self._timing.backoff.delay(self._attempts)
            self._failed = False
        else:
            self._failed, self._retry_at, self._attempts = True, None, 0

    def _restore_done(self, event: RestoreDone) -> None:
        if not self._restores.finish(event):
            return
        self._progress = None
        self._pending.database = True  # back up what it restored (a user's pause still holds)
        if not self._paused:
            self._deb.force()

    def _maybe_start(self, now: float) -> None:
        if self._running is not None or self._restores.running is not None:
            return
        restore = self._restores.start(self._next_id)  # a confirmed restore goes first, once no sync runs
        if restore is not None:
            self._next_id += 1
            logger.info("restore %d starting", restore.job_id)
            self._submit(restore)
            return
        if not self._deb.forced:
            if self._paused:
                return
            if self._retry_at is not None:
                if now < self._retry_at:
                    return
            else:
                due = self._deb.due_at()
                if due is None or now < due:
                    return
        self._deb.started(now)
        p = self._pending
        # a periodic full walk catches whatever the watcher missed (a queue overflow, a sleep)
        if p.full or now - self._last_full >= self._timing.full_every:
            p.full, self._last_full = True, now
        options = SyncOptions(
            snapshot=p.snapshot,
            allow_deletions=p.allow_deletions,
            dirty=None if p.full else tuple(sorted(p.paths)),
        )
        job = RunningSync(self._next_id, frozenset(p.paths), p.full, tuple(p.requests))
        self._next_id += 1
        self._pending = Pending()
        self._running = job
        self._retry_at = None
        logger.info("sync %d starting (%s)", job.job_id, "full" if p.full else f"{len(p.paths)} path(s)")
        self._submit(Job(job.job_id, options))

    def _wait_seconds(self) -> float:
        """How long the queue may stay silent before timers need a look."""
        now = self._clock()
        if self._quitting:
            return max(0.01, min(0.2, self._quit_deadline - now))
        times = [self._episodes.alert_due_at()]
        if self._retry_at is not None:
            times.append(self._retry_at)
        elif not self._paused:
            times.append(self._deb.due_at())
        soonest = min((t for t in times if t is not None), default=now + MAX_WAIT)
        return min(MAX_WAIT, max(0.01, soonest - now))

    def _done(self) -> bool:
        if not self._quitting:
            return False
        idle = self._running is None and self._restores.running is None
        return idle or self._clock() >= self._quit_deadline

    def _finish(self) -> None:
        self._restores.abandon()
        stopped = SyncResult.failure(
            self._wall(), FailureKind.FATAL, "the service stopped before this sync ran"
        )
        for rid in self._pending.requests:
            self._reply(rid, stopped)
        self._publish(self._clock(), final=True)
        logger.info("service stopped after %d sync(s)", self._syncs)

    def _notify(self, event: EpisodeEvent) -> None:
        try:
            self._notifier.episode(event)
        except Exception:
            logger.exception("notifier failed")

    def _state(self, final: bool) -> ServiceState:
        if final:
            return ServiceState.STOPPED
        if self._quitting:
            return ServiceState.STOPPING
        if self._restores.busy:
            return ServiceState.RESTORING
        if self._running is not None:
            return ServiceState.SYNCING
        if self._paused:
            return ServiceState.PAUSED
        if self._retry_at is not None:
            return ServiceState.RETRYING
        if self._failed:
            return ServiceState.FAILED
        if self._deb.pending:
            return ServiceState.WAITING
        if self._last is not None and self._last.outcome is Outcome.NOTHING_YET:
            return ServiceState.NO_DATA_YET
        return ServiceState.IDLE

    def _at(self, when: float | None, now: float) -> datetime | None:
        if when is None:
            return None
        return self._wall() + timedelta(seconds=max(0.0, when - now))

    def _publish(self, now: float, final: bool = False) -> None:
        last = self._last
        due = None if self._paused or self._retry_at is not None else self._deb.due_at()
        failed = last is not None and not last.ok
        status = Status(
            state=self._state(final),
            pid=os.getpid(),
            started=self._started,
            last_attempt=last.ended if last else None,
            last_backup=self._last_backup,
            last_outcome=last.outcome if last else None,
            last_error=(last.error or None) if failed and last else None,
            last_summary=last.summary() if last else None,
            last_kind=last.kind if failed and last else None,
            locked_path=last.locked_path if failed and last else None,
            sessions=self._sessions,
            syncs=self._syncs,
            pending=self._pending.count(),
            next_sync=self._at(max(due, now), now) if due is not None and not final else None,
            next_retry=self._at(self._retry_at, now) if not final else None,
            failing_since=self._episodes.since,
            paused=self._paused,
            source=self._where[0],
            destination=self._where[1],
            progress=None if final else self._progress,
            encrypted=last.encrypted if last else None,
        )
        if status == self._status:
            return
        self._status = status
        for listener in self._listeners:
            try:
                listener(status)
            except Exception:
                logger.exception("status listener failed")
