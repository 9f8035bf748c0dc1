"""Retry policy and failure episodes: pure objects driven by the service thread with an injected clock.

A *failure episode* starts with the first failed sync after a success and ends with the next
successful sync. The user hears about it once: a :class:`FailingSince` alert when the episode has
lasted ``Grace.seconds`` or counted ``Grace.failures`` failed syncs (whichever comes first), and a
:class:`Recovered` note when it ends, only if it was alerted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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


@dataclass(frozen=True)
class FailingSince:
    """Alert: backups have been failing since ``since`` (``failures`` failed syncs so far)."""

    since: datetime
    kind: str
    message: str
    failures: int


@dataclass(frozen=True)
class Recovered:
    """Backups work again after an alerted episode that began at ``since``."""

    since: datetime
    at: datetime
    failures: int


EpisodeEvent = FailingSince | Recovered


@dataclass
class Episodes:
    """Tracks the current failure episode; owned by the service thread."""

    grace: Grace = field(default_factory=Grace)
    started: float | None = None
    since: datetime | None = None
    failures: int = 0
    alerted: bool = False
    kind: str = ""
    message: str = ""

    def failure(self, now: float, wall: datetime, kind: str, message: str) -> FailingSince | None:
        """Record a failed sync; returns the episode's one alert when the grace has just run out."""
        if self.started is None:
            self.started, self.since, self.failures, self.alerted = now, wall, 0, False
        self.failures += 1
        self.kind, self.message = kind, message
        return self.check(now)

    def check(self, now: float) -> FailingSince | None:
        """The alert, if it is due now and was not given yet (call on timer ticks too)."""
        if self.started is None or self.alerted or self.since is None:
            return None
        if self.failures >= self.grace.failures or now - self.started >= self.grace.seconds:
            self.alerted = True
            return FailingSince(self.since, self.kind, self.message, self.failures)
        return None

    def alert_due_at(self) -> float | None:
        """When :meth:`check` will alert by time alone (None: no episode or already alerted)."""
        if self.started is None or self.alerted:
            return None
        return self.started + self.grace.seconds

    def success(self, wall: datetime) -> Recovered | None:
        """Record a good sync: ends the episode; returns the recovery note if the user was alerted."""
        out = None
        if self.started is not None and self.alerted and self.since is not None:
            out = Recovered(self.since, wall, self.failures)
        self.started, self.since, self.failures, self.alerted = None, None, 0, False
        return out
