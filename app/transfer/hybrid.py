"""The ``auto`` engine's split: small jobs in-process, big ones by rsync or robocopy.

Starting rsync costs ~45 ms before it copies a byte; a normal sync copies one or two session files
(~2 ms in Python with fsync). The external engine earns its start-up on first syncs, reconciles and
snapshots. Both engines give the same guarantees (atomic files, 0600/0700), so the choice is only speed.
"""

from __future__ import annotations

import threading

from app.transfer.base import CopyJob, CopyResult, Engine

SMALL_FILES = 64
SMALL_BYTES = 16 << 20


class SplitEngine:
    """Send jobs of at most ``max_files`` files and ``max_bytes`` bytes to ``small``, the rest to ``big``."""

    def __init__(
        self, big: Engine, small: Engine, *, max_files: int = SMALL_FILES, max_bytes: int = SMALL_BYTES
    ) -> None:
        self.big = big
        self.small = small
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.name = f"{big.name}+{small.name}"

    def pick(self, job: CopyJob) -> Engine:
        """The engine for ``job`` (stat-only look at the sources)."""
        if len(job.paths) > self.max_files:
            return self.big
        total = 0
        for rel in job.paths:
            try:
                total += (job.src_root / rel).stat().st_size
            except OSError:
                continue  # the engine reports it
            if total > self.max_bytes:
                return self.big
        return self.small

    def copy(self, job: CopyJob, cancel: threading.Event) -> CopyResult:
        """Copy with the engine ``pick`` chooses; runs on the worker thread."""
        return self.pick(job).copy(job, cancel)
