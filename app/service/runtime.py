"""Wire one running service: the service thread, the worker, the watcher and the control thread.

Used by ``opencode-backup run --headless`` and by tests that run the whole service in-process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from app.backup import search
from app.backup.progress import Sink
from app.backup.restore import Plan, RestoreRequest, RestoreResult, apply_plan
from app.backup.result import SyncResult
from app.backup.state import load_results
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.service import control
from app.service.events import Quit
from app.service.notifier import Notifier
from app.service.service import Listener, Service, Timing
from app.service.status import Status, StatusFile
from app.service.worker import Job, RestoreJob, Worker

if TYPE_CHECKING:
    from app.service.watcher import Watcher

logger = logging.getLogger(__name__)


class Runtime:
    """All threads of one service around one long-lived SyncContext (its manifest cache is reused).

    ``start()`` and ``stop()`` are called from the main thread; ``stop()`` returns once every thread
    this object started has ended.
    """

    def __init__(
        self,
        ctx: SyncContext,
        *,
        timing: Timing | None = None,
        notifier: Notifier | None = None,
        listeners: Iterable[Listener] = (),
        watch: bool = True,
        control_poll: float = control.POLL_SECONDS,
    ) -> None:
        self.ctx = ctx
        state_dir = ctx.state_dir
        last = load_results(state_dir).backup
        self.service = Service(
            self._submit,
            timing=timing,
            cancel=ctx.cancel.set,
            reply=lambda rid, result: control.write_reply(state_dir, rid, result),
            notifier=notifier,
            listeners=[StatusFile(state_dir), *listeners],
            last_backup=last.ended if last is not None else None,
            source=str(ctx.source),
            destination=str(ctx.backup_path / ctx.machine),
        )
        self.index = search.Follower(ctx.backup_path, ctx.machine, ctx.seal)
        self.worker = Worker(
            self._run, self.service.post, ctx.cancel, run_restore=self._restore, after_sync=self._after_sync
        )
        self.watcher: Watcher | None = None
        if watch:
            # watchdog starts an inotify thread as soon as it is imported: only a running service loads it
            from app.service.watcher import Watcher  # noqa: PLC0415

            self.watcher = Watcher(ctx.source, self.service.post, ctx.opencode_db)
        self.control = control.ControlThread(state_dir, self.service.post, control_poll)

    def _submit(self, job: Job | RestoreJob) -> None:
        self.worker.submit(job)

    def _run(self, options: SyncOptions, progress: Sink) -> SyncResult:
        """Run one sync on the worker thread (the context's caches are shared; only the sink differs)."""
        return run_sync(replace(self.ctx, progress=progress), options)

    def _after_sync(self, result: SyncResult) -> None:
        """The search index follows a sync that wrote the backup (worker thread, after the result is
        posted; a few ms, and only when the index exists)."""
        if result.backed_up:
            self.index.after_sync()

    @staticmethod
    def _restore(plan: Plan, request: RestoreRequest, progress: Sink) -> RestoreResult:
        """Apply one confirmed restore on the worker thread."""
        return apply_plan(plan, request, progress=progress)

    @property
    def status(self) -> Status:
        return self.service.status

    def start(self) -> None:
        """Start every thread (watcher first, so no change made during the start-up sync is missed)."""
        if self.watcher is not None:
            self.watcher.start()
        self.worker.start()
        self.control.start()
        self.service.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Quit the service (cancelling a running sync) and join every thread; True if all ended."""
        self.service.post(Quit())
        done = self.service.join(timeout)
        self.worker.stop(cancel=True)
        self.control.stop()
        if self.watcher is not None:
            self.watcher.stop()
        done = self.worker.join(timeout) and done
        if done:
            self.index.close()  # the worker that used it has ended
        if not done:
            logger.warning("a service thread did not stop within %.0f s", timeout)
        elif self.ctx.remote is not None:
            self.ctx.remote.release()  # the remote's writer lease, for the next writer (the worker is done)
        return done
