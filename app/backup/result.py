"""What one sync did, as the CLI prints it, the manifest records it and the service shows it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SyncResult:
    """The outcome of one sync. ``result`` is ok | warning | failed; ``kind`` is a FailureKind value."""

    result: str
    started: str
    finished: str = ""
    duration_s: float = 0.0
    sessions_total: int = 0
    sessions_exported: int = 0
    sessions_removed: int = 0
    storage_copied: int = 0
    storage_removed: int = 0
    snapshot: str | None = None
    bytes_copied: int = 0
    versions_made: int = 0
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    kind: str | None = None
    error: str = ""

    @classmethod
    def failure(cls, when: datetime, kind: str, error: str) -> SyncResult:
        """A failed result for a sync that never ran or crashed (``kind``: a FailureKind value)."""
        stamp = when.isoformat(timespec="seconds")
        return cls(result="failed", started=stamp, finished=stamp, kind=kind, error=error)

    @property
    def ok(self) -> bool:
        return self.result != "failed"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = list(self.skipped)
        d["warnings"] = list(self.warnings)
        return d

    def summary(self) -> str:
        """One line for logs and the terminal."""
        if self.result == "failed":
            return self.error
        bits = [f"{self.sessions_exported} session(s) updated", f"{self.sessions_total} in opencode"]
        if self.sessions_removed:
            bits.append(f"{self.sessions_removed} removed (kept in versions/)")
        if self.storage_copied or self.storage_removed:
            bits.append(f"storage/: {self.storage_copied} copied, {self.storage_removed} removed")
        if self.snapshot:
            bits.append(f"snapshot {self.snapshot}")
        if self.skipped:
            bits.append(f"{len(self.skipped)} damaged file(s) not copied")
        bits.append(f"{self.bytes_copied:,} bytes in {self.duration_s:.2f}s")
        return ", ".join(bits)
