"""The restores the service was asked for: the confirmed ones waiting for the worker, and the one it runs.
Owned by the service thread; pure (the worker does the work)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.errors import BackupError
from app.service.events import RestoreDone, RestoreNow
from app.service.worker import RestoreJob


@dataclass
class Restores:
    waiting: list[RestoreNow] = field(default_factory=list)
    running: tuple[int, RestoreNow] | None = None

    @property
    def busy(self) -> bool:
        """A restore waits or runs: no sync may start."""
        return self.running is not None or bool(self.waiting)

    def start(self, job_id: int) -> RestoreJob | None:
        """The next restore for the worker, when one waits and none runs."""
        if self.running is not None or not self.waiting:
            return None
        request = self.waiting.pop(0)
        self.running = (job_id, request)
        return RestoreJob(job_id, request.plan, request.request)

    def finish(self, event: RestoreDone) -> bool:
        """Hand the worker's outcome to whoever asked; False when it is not the running restore's."""
        if self.running is None or self.running[0] != event.job_id:
            return False
        request = self.running[1]
        self.running = None
        if isinstance(event.outcome, Exception):
            request.done.set_exception(event.outcome)
        else:
            request.done.set_result(event.outcome)
        return True

    def abandon(self) -> None:
        """The service stops: whoever still waits hears so (never left waiting forever)."""
        for request in [*self.waiting, *([self.running[1]] if self.running else [])]:
            if not request.done.done():
                request.done.set_exception(
                    BackupError("the backup service stopped before the restore finished")
                )
        self.waiting.clear()
