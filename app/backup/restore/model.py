"""What a restore is asked, what it plans and what it did; the errors it raises."""

from __future__ import annotations

import enum
import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.backup import backup_reader as br
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupError, UsageError


class RestoreRefused(BackupError):
    """The restore cannot run as asked (opencode running, nothing to restore from...); nothing changed."""


class NoSuchSession(UsageError):
    """No backed-up session has the id (or prefix) given: a usage error, like an ambiguous prefix."""


class RestoreFailed(BackupError):
    """A restore stopped part-way; the message says what state opencode's database is in."""


@dataclass(frozen=True)
class RestoreRequest:
    """What the user asked for. Exactly one of ``ids``, ``missing``, ``replace_all`` is set."""

    machine_dir: Path
    db: Path
    work_dir: Path  # the app's data dir: safety copies and temp files live here
    ids: tuple[str, ...] = ()
    missing: bool = False
    replace_all: bool = False
    seal: Seal = PLAIN  # this install's keys, for an encrypted backup
    # (session id, file) for sessions of ``ids`` to restore from that file (a kept version, or a snapshot's
    # copy written out: ``restore --at``) instead of from their newest copy
    files: tuple[tuple[str, Path], ...] = ()


class Action(enum.Enum):
    """What a restore does with one session."""

    ADD = "add"  # absent from opencode: its rows are inserted
    REPLACE = "replace"  # present: its rows are deleted, the backup's inserted, in one transaction
    FAIL = "fail"  # cannot be restored (``reason`` says why); the others still are


class Mode(enum.Enum):
    SESSIONS = "sessions"  # the sessions named
    MISSING = "missing"  # every backed-up session opencode does not have
    ALL = "all"  # rebuild the whole database from the newest snapshot


@dataclass(frozen=True)
class PlanItem:
    """One session of the plan."""

    session_id: str
    title: str
    action: Action
    rows: int
    bytes: int
    path: Path
    sha256: str
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    """What a restore will do; ``snapshot`` is set for a full replace."""

    mode: Mode
    db: Path
    items: tuple[PlanItem, ...]
    snapshot: br.SnapshotRef | None = None
    notes: tuple[str, ...] = ()
    seal: Seal = PLAIN  # the request's, for this folder (strict when the manifest says it is encrypted)
    opened: Path | None = None  # this plan's own private folder of decrypted session files (see discard)

    def discard(self) -> None:
        """Remove the decrypted copies this plan kept (once applied, declined, or a dry run shown)."""
        if self.opened is not None:
            shutil.rmtree(self.opened, ignore_errors=True)

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()

    @functools.cached_property
    def actionable(self) -> tuple[PlanItem, ...]:
        """The items that are not FAIL (computed once: a restore asks at each of 1,800 sessions)."""
        return tuple(i for i in self.items if i.action is not Action.FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "database": str(self.db),
            "snapshot": str(self.snapshot.path) if self.snapshot else None,
            "sessions": [
                {
                    "session_id": i.session_id,
                    "title": i.title,
                    "action": i.action.value,
                    "rows": i.rows,
                    "bytes": i.bytes,
                    "path": str(i.path),
                    "sha256": i.sha256,
                    "reason": i.reason,
                }
                for i in sorted(self.items, key=lambda i: i.session_id)
            ],
            "rows": sum(i.rows for i in self.actionable),
            "bytes": sum(i.bytes for i in self.actionable),
            "notes": list(self.notes),
        }


@dataclass
class RestoreResult:
    """What a restore did."""

    safety_copy: Path | None = None
    restored: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "safety_copy": str(self.safety_copy) if self.safety_copy else None,
            "restored": [{"id": sid, "rows_added": n} for sid, n in self.restored],
            "failed": [{"id": sid, "error": why} for sid, why in self.failed],
            "notes": self.notes,
        }
