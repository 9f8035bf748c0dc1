"""Where failure-episode news goes. The headless service logs it; the tray plugs desktop notifications in.

Notifiers are called on the service thread and must return quickly (hand slow work to another thread).
"""

from __future__ import annotations

import logging
from typing import Protocol

from app.service.retry import EpisodeEvent, FailingSince, Persisting, Recovered

logger = logging.getLogger(__name__)


class Notifier(Protocol):
    """Receives at most one :class:`FailingSince`, :class:`Persisting` and :class:`Recovered` per
    failure episode."""

    def episode(self, event: EpisodeEvent) -> None: ...


class LogNotifier:
    """The headless notifier: one log line per episode event."""

    def episode(self, event: EpisodeEvent) -> None:
        """Log the event (service thread)."""
        if isinstance(event, FailingSince | Persisting):
            logger.warning(
                "backups %sfailing since %s (%d failed attempt(s)): %s",
                "still " if isinstance(event, Persisting) else "",
                event.since.isoformat(timespec="seconds"),
                event.failures,
                event.message,
            )
        elif isinstance(event, Recovered):
            logger.warning(
                "backups recovered at %s after failing since %s",
                event.at.isoformat(timespec="seconds"),
                event.since.isoformat(timespec="seconds"),
            )
