"""Retry policy and failure episodes: pure objects driven by the service thread with an injected clock.

A *failure episode* starts with the first failed sync after a success and ends with the next
successful sync. The user hears about it once: a :class:`FailingSince` alert when the episode has
lasted ``Grace.seconds`` or counted ``Grace.failures`` failed syncs (whichever comes first), and a
:class:`Recovered` note when it ends, only if it was alerted. Two exceptions: what only a person can
fix (a tripped mass-deletion guard, a folder of another install, a damaged index) alerts at once, and
a lock that is still there ``Grace.persist`` seconds into the episode gets one :class:`Persisting`
follow-up (Google Drive holding a file for half an hour will not let go by itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.errors import FailureKind


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base`` seconds after the first failure, doubling, at most ``cap``."""

    base: float = 5.0
    cap: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th consecutive failure (1-based)."""
        return float(min(self.cap, self.base * 2 ** min(max(attempt - 1, 0), 40)))


@dataclass(frozen=True)
class Grace:
    """How long a failure may last before the user is told."""

    seconds: float = 120.0
    failures: int = 2
    persist: float = 1800.0
    immediate: frozenset[FailureKind] = frozenset(k for k in FailureKind if k.needs_a_person)
    escalate: frozenset[FailureKind] = frozenset({FailureKind.LOCKED})
    # what the user chose (uploads wait for an unmetered network or mains power): never alerted
    quiet: frozenset[FailureKind] = frozenset({FailureKind.HELD_BACK})


@dataclass(frozen=True)
class FailingSince:
    """Alert: backups have been failing since ``since`` (``failures`` failed syncs so far); ``path`` is
    the file a LOCKED failure was held up by."""

    since: datetime
    kind: FailureKind
    message: str
    failures: int
    path: str | None = None


@dataclass(frozen=True)
class Persisting:
    """Follow-up: a failure of kind ``kind`` has lasted ``Grace.persist`` seconds (once per episode)."""

    since: datetime
    kind: FailureKind
    message: str
    failures: int
    path: str | None = None


@dataclass(frozen=True)
class Recovered:
    """Backups work again after an alerted episode that began at ``since``."""

    since: datetime
    at: datetime
    failures: int


EpisodeEvent = FailingSince | Persisting | Recovered


@dataclass
class Episodes:
    """Tracks the current failure episode; owned by the service thread."""

    grace: Grace = field(default_factory=Grace)
    started: float | None = None
    since: datetime | None = None
    failures: int = 0
    alerted: bool = False
    escalated: bool = False
    kind: FailureKind = FailureKind.FATAL
    message: str = ""
    path: str | None = None

    def failure(
        self, now: float, wall: datetime, kind: FailureKind, message: str, path: str | None = None
    ) -> FailingSince | Persisting | None:
        """Record a failed sync; returns the episode's one alert when the grace has just run out."""
        if self.started is None:
            self.started, self.since, self.failures = now, wall, 0
            self.alerted = self.escalated = False
        self.failures += 1
        self.kind, self.message, self.path = kind, message, path
        return self.check(now)

    def check(self, now: float) -> FailingSince | Persisting | None:
        """The alert or follow-up, if one is due now and was not given yet (call on timer ticks too)."""
        if self.started is None or self.since is None or self.kind in self.grace.quiet:
            return None
        if not self.alerted:
            if (
                self.failures >= self.grace.failures
                or now - self.started >= self.grace.seconds
                or self.kind in self.grace.immediate
            ):
                self.alerted = True
                return FailingSince(self.since, self.kind, self.message, self.failures, self.path)
            return None
        if (
            not self.escalated
            and self.kind in self.grace.escalate
            and now - self.started >= self.grace.persist
        ):
            self.escalated = True
            return Persisting(self.since, self.kind, self.message, self.failures, self.path)
        return None

    def alert_due_at(self) -> float | None:
        """When :meth:`check` will alert by time alone (None: no episode or nothing left to say)."""
        if self.started is None or self.kind in self.grace.quiet:
            return None
        if not self.alerted:
            return self.started + self.grace.seconds
        if not self.escalated and self.kind in self.grace.escalate:
            return self.started + self.grace.persist
        return None

    def success(self, wall: datetime) -> Recovered | None:
        """Record a good sync: ends the episode; returns the recovery note if the user was alerted."""
        out = None
        if self.started is not None and self.alerted and self.since is not None:
            out = Recovered(self.since, wall, self.failures)
        self.started, self.since, self.failures = None, None, 0
        self.alerted = self.escalated = False
        return out
