"""When to start the next sync: a pure object, no threads, no real time (the caller passes ``now``).

Rules (``delay`` = syncDelaySeconds, ``interval`` = minIntervalSeconds):

- the first change of a burst schedules a sync ``delay`` after it (later changes do not push it back);
- an unforced sync starts no sooner than ``interval`` after the previous sync started;
- a change that arrives while a sync runs, or after it, is kept pending: it always leads to another
  sync (a running sync may have read the database before that change);
- ``force()`` starts a sync as soon as no sync is running, bypassing delay and interval.

Bound (proved by ``tests/test_service_debouncer.py`` with hypothesis): a change at time ``t`` is
covered by a sync that starts at or before ``max(t + max(delay, interval), f)``, where ``f`` is the
end of the sync running at ``t`` (``t`` itself when none runs). So at most ``delay + interval`` after
the change, plus the running sync's duration when the change arrived during one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Debouncer:
    """Owned by one thread (the service thread); times are seconds on one monotonic clock."""

    delay: float
    interval: float
    pending_since: float | None = None
    forced: bool = False
    running: bool = False
    last_start: float | None = None

    def changed(self, now: float) -> None:
        """Record a change at ``now``."""
        if self.pending_since is None:
            self.pending_since = now

    def force(self) -> None:
        """Ask for a sync as soon as no sync runs."""
        self.forced = True

    @property
    def pending(self) -> bool:
        """True when a change or a forced request is not yet covered by a started sync."""
        return self.forced or self.pending_since is not None

    def due_at(self) -> float | None:
        """When the next sync should start (maybe in the past); None: nothing to do or one is running."""
        if self.running or not self.pending:
            return None
        if self.forced:
            return float("-inf")
        assert self.pending_since is not None
        due = self.pending_since + self.delay
        if self.last_start is not None:
            due = max(due, self.last_start + self.interval)
        return due

    def started(self, now: float) -> bool:
        """A sync starts at ``now``; every change recorded so far is covered by it. Returns whether it
        was forced."""
        forced = self.forced
        self.running = True
        self.last_start = now
        self.pending_since = None
        self.forced = False
        return forced

    def finished(self) -> None:
        """The running sync ended (either way)."""
        self.running = False
