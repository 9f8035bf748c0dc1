"""How far long work has got: a first sync of 1,800 sessions, a full walk, a restore of hundreds.

The engine reports :class:`Progress` to a sink it is given (nothing when none); :class:`Throttled` passes
on at most a few reports a second, always the first and the last of each step, so a one-session sync
costs nothing measurable and a terminal or tray is never flooded. Reports are made on the thread doing
the work; a sink must be quick and thread-safe (the service's posts an event; the CLI's redraws a line).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.words import size, span


class Step(enum.Enum):
    """What the work is doing now; the value is how people read it."""

    SESSIONS = "backing up sessions"
    SNAPSHOT = "taking a database snapshot"
    LEGACY = "looking at the legacy storage/ tree"
    COPYING = "copying to the backup folder"
    UPLOADING = "uploading to the remote"
    DOWNLOADING = "reading the remote"
    RESTORING = "restoring sessions"
    VERIFYING = "checking the backup"
    ENCRYPTING = "re-encrypting the backup"
    INDEXING = "indexing the backup for search"


_UNITS = {
    Step.SESSIONS: "sessions",
    Step.RESTORING: "sessions",
    Step.VERIFYING: "files",
    Step.COPYING: "files",
    Step.ENCRYPTING: "files",
    Step.UPLOADING: "files",
    Step.DOWNLOADING: "files",
    Step.INDEXING: "sessions",
}


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` (None: not known yet) items of ``step``, ``nbytes`` bytes of them written or
    read so far (0: not counted); ``elapsed`` seconds since the step began."""

    step: Step
    done: int
    total: int | None = None
    elapsed: float = 0.0
    nbytes: int = 0

    @property
    def unit(self) -> str:
        return _UNITS.get(self.step, "")

    @property
    def remaining(self) -> float | None:
        """Seconds left at the pace so far (None until there is a pace to go by)."""
        if not self.total or self.done <= 0 or self.elapsed < 1.0:
            return None
        return self.elapsed / self.done * max(0, self.total - self.done)

    def words(self) -> str:
        """'backing up sessions: 640 of 1,800, 310.2 MiB' (what a plain terminal and `status` say)."""
        if self.total is None:
            text = self.step.value + (f": {self.done:,} {self.unit}".rstrip() if self.done else "")
        else:
            text = f"{self.step.value}: {self.done:,} of {self.total:,}"
        return text + (f", {size(self.nbytes)}" if self.nbytes > 0 else "")

    def sentence(self) -> str:
        """:meth:`words` and the time left: 'backing up sessions: 640 of 1,800, 310.2 MiB, about 2 min
        left' (a log line, ``status``, the agent's status tool)."""
        left = self.left()
        return self.words() + (f", {left}" if left else "")

    def left(self) -> str:
        """'about 2 min left', or '' while there is no pace to go by."""
        seconds = self.remaining
        return f"about {span(seconds)} left" if seconds is not None and seconds >= 1 else ""


Sink = Callable[[Progress], None]


class Report(Protocol):
    """What the engine calls as it goes (:meth:`Throttled.report` or :func:`unreported`)."""

    def __call__(self, step: Step, done: int, total: int | None = None, nbytes: int = 0) -> None: ...


def unreported(step: Step, done: int, total: int | None = None, nbytes: int = 0) -> None:
    """The report of work nobody watches."""


def nowhere(_progress: Progress) -> None:
    """The sink of work nobody watches."""


class Throttled:
    """A sink that forwards at most one report per ``every`` seconds (plus each step's first and last)
    to ``sink``, and fills in ``elapsed`` since the step began. One per piece of work; any thread."""

    def __init__(self, sink: Sink, every: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = sink
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._step: Step | None = None
        self._began = 0.0
        self._sent = float("-inf")

    def report(self, step: Step, done: int, total: int | None = None, nbytes: int = 0) -> None:
        now = self._clock()
        with self._lock:
            first = step is not self._step
            if first:
                self._step, self._began = step, now
            last = total is not None and done >= total
            if not (first or last or now - self._sent >= self._every):
                return
            self._sent = now
            began = self._began
        self._sink(Progress(step, done, total, now - began, nbytes))
