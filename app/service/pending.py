"""What the service thread keeps between events: the changes not yet in a sync, and the sync running."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunningSync:
    """The job the worker is running now, and what it took from the pending changes."""

    job_id: int
    paths: frozenset[str]
    full: bool
    requests: tuple[str, ...]


@dataclass
class Pending:
    """Changes not yet handed to a sync."""

    paths: set[str] = field(default_factory=set)
    database: bool = False  # the database changed since the last sync that backed it up
    full: bool = False
    snapshot: bool = False
    allow_deletions: bool = False
    requests: list[str] = field(default_factory=list)

    def count(self) -> int:
        return len(self.paths) + int(self.database or self.full)
