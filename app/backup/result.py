"""What one sync did, as the CLI prints it, the manifest records it and the service shows it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from app.errors import FailureKind


class Outcome(enum.Enum):
    """How a sync ended. NOTHING_YET: opencode has not written its data folder yet (a new install),
    and nothing was ever backed up from it: not a failure, there is simply nothing to copy."""

    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    NOTHING_YET = "nothing-yet"


@dataclass(frozen=True)
class SyncResult:
    """The outcome of one sync. ``kind`` says why it failed; ``locked_path`` names the file a LOCKED
    failure was held up by (relative to the machine folder when it is inside it); ``destination`` is the
    machine folder it wrote to."""

    outcome: Outcome
    started: datetime
    finished: datetime | None = None
    duration_s: float = 0.0
    sessions_total: int = 0
    sessions_exported: int = 0
    sessions_removed: int = 0
    storage_copied: int = 0
    storage_removed: int = 0
    snapshot: str | None = None
    bytes_copied: int = 0
    versions_made: int = 0
    rekeyed: int = 0  # files re-encrypted for a change of keys (encryption turned on or off)
    encrypted: bool = False  # what it wrote is encrypted (age)
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    kind: FailureKind | None = None
    locked_path: str | None = None
    error: str = ""
    note: str = ""  # why a sync had nothing to do (NOTHING_YET)
    destination: str | None = None  # the machine folder it backed up to
    uploaded_bytes: int = 0  # sent to an rclone remote after the local commit

    @classmethod
    def failure(
        cls, when: datetime, kind: FailureKind, error: str, locked_path: str | None = None
    ) -> SyncResult:
        """A failed result for a sync that never ran or crashed."""
        return cls(Outcome.FAILED, when, when, kind=kind, error=error, locked_path=locked_path)

    @property
    def ok(self) -> bool:
        """True unless the sync failed (a sync with nothing to back up yet is not a failure)."""
        return self.outcome is not Outcome.FAILED

    @property
    def backed_up(self) -> bool:
        """True when the backup now holds everything opencode had (a last *successful* backup)."""
        return self.outcome in (Outcome.OK, Outcome.WARNING)

    @property
    def ended(self) -> datetime:
        return self.finished or self.started

    def summary(self) -> str:
        """One line for logs and the terminal."""
        if self.outcome is Outcome.FAILED:
            return self.error
        if self.outcome is Outcome.NOTHING_YET:
            return self.note or "nothing to back up yet"
        bits = [f"{self.sessions_exported} session(s) updated", f"{self.sessions_total} in opencode"]
        if self.sessions_removed:
            bits.append(f"{self.sessions_removed} removed (kept in versions/)")
        if self.storage_copied or self.storage_removed:
            bits.append(f"storage/: {self.storage_copied} copied, {self.storage_removed} removed")
        if self.snapshot:
            bits.append(f"snapshot {self.snapshot}")
        if self.skipped:
            bits.append(f"{len(self.skipped)} damaged file(s) not copied")
        if self.rekeyed:
            bits.append(f"{self.rekeyed} file(s) re-encrypted")
        bits.append(f"{self.bytes_copied:,} bytes in {self.duration_s:.2f}s")
        if self.uploaded_bytes:
            bits.append(f"{self.uploaded_bytes:,} bytes uploaded")
        return ", ".join(bits)
