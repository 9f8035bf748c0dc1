"""Adopt a machine folder: the user says "this backup folder is this computer's" when the app cannot tell.

A reinstall on a computer without a machine identity (some containers), a folder claimed before
identities were kept, a new user account, or an owner.json that cannot be read: the sync refuses the
folder (another install's) and only a person can say it is this computer's own. :func:`plan` says whose
it is now; :func:`adopt` makes it this install's in one atomic write of owner.json (see
:mod:`app.backup.ownership`). The command line asks first (``opencode-backup adopt``), the tray's
Adopt backup folder… too. Runs on the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.backup import ownership
from app.backup.ownership import Claim, Identity, no_identity
from app.backup.state import PERSON_WAIT, sync_lock
from app.errors import BackupDamaged


@dataclass(frozen=True)
class AdoptPlan:
    """Whose ``machine_dir`` is now. ``owner`` None: nobody's yet (``damaged`` says why when owner.json
    cannot be read); ``mine``: this install's already; ``writing``: another install's writer lease, still
    running (it may be backing up right now)."""

    machine_dir: Path
    owner: Claim | None
    damaged: str | None
    mine: bool
    writing: Claim | None

    @property
    def needed(self) -> bool:
        return not self.mine and (self.owner is not None or self.damaged is not None)

    def text(self) -> str:
        """What adopting would do, in words (the confirmation of the command line and the tray)."""
        where = self.machine_dir
        if self.mine:
            return f"nothing to adopt: the backup folder {where} is this install's already"
        if not self.needed:
            return f"nothing to adopt: no install has claimed {where} yet; the next backup claims it"
        if self.owner is not None:
            head = f"The backup folder {where} belongs to another install (on computer {self.owner.host!r})."
        else:
            head = f"The backup folder {where} has an owner.json that cannot be read ({self.damaged})."
        lines = [
            head,
            "Adopting it makes it this install's: backups from this computer go on in it, with its history.",
            "Adopt it only if it is this computer's own folder (after a reinstall or a new user account). If "
            "another computer backs up into it, that computer is refused from then on: give it (or this one) "
            "its own machineName instead.",
        ]
        if self.writing is not None and self.writing.until is not None:
            lines.append(
                f"Note: an install on computer {self.writing.host!r} holds the writer lease until "
                f"{self.writing.until.astimezone():%H:%M}: it may be backing up into this folder right now."
            )
        return "\n".join(lines)


def plan(machine_dir: Path, state_dir: Path, now: datetime | None = None) -> AdoptPlan:
    """Whose ``machine_dir`` is, as adopting would change it. Reads the backup folder only."""
    me = ownership.install_id(state_dir)
    damaged = None
    try:
        owner = ownership.read_claim(machine_dir, ownership.OWNER)
    except BackupDamaged as exc:
        owner, damaged = None, str(exc)
    writing = None
    try:
        lease = ownership.read_claim(machine_dir, ownership.LEASE)
    except BackupDamaged:
        lease = None
    moment = now or datetime.now(UTC)
    longest = timedelta(seconds=ownership.LEASE_SECONDS) + ownership.CLOCK_SLACK  # beyond it: damage
    if lease is not None and lease.install != me and lease.until is not None:
        writing = lease if timedelta(0) < lease.until - moment <= longest else None
    return AdoptPlan(machine_dir, owner, damaged, owner is not None and owner.install == me, writing)


def adopt(machine_dir: Path, state_dir: Path, identity: Identity = no_identity) -> None:
    """Make ``machine_dir`` this install's (after the user confirmed :func:`plan`), between two syncs."""
    with sync_lock(state_dir, wait=PERSON_WAIT):  # a running sync ends first
        ownership.adopt(machine_dir, ownership.install_id(state_dir), identity)
