"""Numbers and moments as people read them, the same in every face: the tray, the command line, the
agent tools. Pure."""

from __future__ import annotations

from datetime import UTC, datetime


def span(seconds: float) -> str:
    """A short human duration: '40 s', '2 min', '3 h', '2 days'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def size(n: int) -> str:
    """A byte count: 812 B, 43.1 KiB, 132.0 MiB, 2.4 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{n} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def when(moment: datetime | None, now: datetime) -> str:
    """A moment as local time and how long ago: ``2025-11-30 14:02:11 (5 min ago)``, or ``none yet``."""
    if moment is None:
        return "none yet"
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{local} ({span((now - moment).total_seconds())} ago)"


def minutes(moment: datetime | None, unknown: str = "unknown") -> str:
    """A moment as local 'YYYY-MM-DD HH:MM' (one without a zone is UTC), as lists of sessions show when each
    was updated; ``unknown`` when there is none."""
    if moment is None:
        return unknown
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
