"""The errors this program raises, and what the user sees for each.

    BackupError                  base; ``str(e)`` is one line a user can act on
    ├── ConfigError              bad settings or flags            -> exit 2, nothing written
    ├── UsageError               bad command-line use             -> exit 2
    │     └── KeyMissing         the backup is encrypted and this install has no key -> exit 2
    ├── SyncFailed               a sync could not complete        -> exit 1; ``kind`` says why
    │     kinds: LOCKED, DEST_MISSING, SOURCE_MISSING, OFFLINE, RATE_LIMITED, HELD_BACK, GUARD, FOREIGN,
    │            DAMAGED, SIGN_IN, FATAL
    ├── TransferError            an engine failed (carries a kind) -> wrapped in SyncFailed
    └── BackupDamaged            a file at the destination is unreadable or hostile -> exit 1
    CryptError                   a key or an age file cannot be used (wrong key, damaged, not age;
                                 app.crypt.age) -> exit 2. Not a BackupError: the code that reads a
                                 backup tells it apart (no key: KeyMissing; a damaged file: BackupDamaged)

The live service retries LOCKED, DEST_MISSING, SOURCE_MISSING, OFFLINE (an rclone remote cannot be reached)
RATE_LIMITED (a remote asks us to slow down) and HELD_BACK (uploads wait for an unmetered network or mains
power, as set; never alerted) with backoff and stops retrying on GUARD, FOREIGN (the
folder is another install's: ``adopt`` when it is this computer's), DAMAGED (the backup's index cannot be
read: ``repair``), SIGN_IN (rclone can no longer sign in to the remote: ``rclone config reconnect``) and
FATAL.
"""

from __future__ import annotations

import enum
from pathlib import Path


class FailureKind(enum.Enum):
    """Why a sync failed; the service decides retries from this alone."""

    LOCKED = "locked"
    DEST_MISSING = "dest_missing"
    SOURCE_MISSING = "source_missing"
    OFFLINE = "offline"
    RATE_LIMITED = "rate_limited"
    HELD_BACK = "held_back"
    GUARD = "guard"
    FOREIGN = "foreign"
    DAMAGED = "damaged"
    SIGN_IN = "sign_in"
    FATAL = "fatal"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def needs_a_person(self) -> bool:
        """Waiting cannot fix it: the user is told at once and decides (restore or override the guard,
        adopt the folder or name this computer apart, repair the index)."""
        return self in (FailureKind.GUARD, FailureKind.FOREIGN, FailureKind.DAMAGED, FailureKind.SIGN_IN)

    @property
    def sentence(self) -> str:
        """What a user reads in a notification or the status line."""
        return _SENTENCES[self]


_RETRYABLE = frozenset(
    {
        FailureKind.LOCKED,
        FailureKind.DEST_MISSING,
        FailureKind.SOURCE_MISSING,
        FailureKind.OFFLINE,
        FailureKind.RATE_LIMITED,
        FailureKind.HELD_BACK,
    }
)

_SENTENCES = {
    FailureKind.LOCKED: "A file in the backup folder is locked or busy (Google Drive may be syncing it); "
    "the backup will be retried.",
    FailureKind.DEST_MISSING: "The backup folder is not reachable (drive not mounted or folder removed); "
    "the backup will be retried.",
    FailureKind.SOURCE_MISSING: "opencode's data was not found where expected; the backup will be retried.",
    FailureKind.OFFLINE: "The backup remote cannot be reached (no network, or its server is down); the "
    "sessions are backed up on this computer and the upload will be retried.",
    FailureKind.RATE_LIMITED: "The backup remote asks us to slow down (a rate limit or a daily quota); the "
    "sessions are backed up on this computer and the upload will be retried later.",
    FailureKind.HELD_BACK: "Uploads wait, as set, for an unmetered network or mains power; the sessions are "
    "backed up on this computer.",
    FailureKind.GUARD: "opencode lost most of its sessions since the last backup; the backup was left "
    "untouched. Restore them, or run 'opencode-backup sync --allow-deletions' if this was intended.",
    FailureKind.FOREIGN: "The backup folder belongs to another install; backups are held back. If it is "
    "this computer's own folder (after a reinstall), choose Adopt backup folder… in the menu.",
    FailureKind.DAMAGED: "The backup's index is damaged; backups are held back. Run 'opencode-backup "
    "repair' to rebuild it from the files present.",
    FailureKind.SIGN_IN: "rclone can no longer sign in to the backup remote; run 'rclone config reconnect "
    "REMOTE:' (or 'rclone config' for a changed password), then Sync now.",
    FailureKind.FATAL: "The backup failed; see the log for details.",
}

# What a user runs for the two failures that only a person can decide (said in the errors themselves)
ADOPT_HINT = "run 'opencode-backup adopt' (or choose Adopt backup folder… in the tray menu)"
REPAIR_HINT = "run 'opencode-backup repair' to rebuild the backup's index from the files present"


class BackupError(Exception):
    """Base of every error this program reports to the user."""


def not_reachable(folder: Path) -> BackupError:
    """The one line a command that reads the backup says when ``folder`` (the backup folder, or this
    machine's in it) is not there."""
    return BackupError(f"backup folder not reachable (not mounted, or no backup yet): {folder}")


class ConfigError(BackupError):
    """Settings are invalid; nothing has been written."""


class UsageError(BackupError):
    """The command line is wrong."""


class KeyMissing(UsageError):
    """The backup is encrypted and this install holds no key to open it (``encryption unlock``)."""


UNLOCK_HINT = "run 'opencode-backup encryption unlock' with the recovery key"


class TransferError(BackupError):
    """A transfer engine failed; ``kind`` classifies it, ``path`` names the file it failed on."""

    def __init__(self, message: str, kind: FailureKind, path: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


class SyncFailed(BackupError):
    """A sync did not complete; the destination is consistent (maybe not up to date). ``path``: the
    file a LOCKED failure was held up by, when known."""

    def __init__(self, message: str, kind: FailureKind, path: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


class CryptError(Exception):
    """Cannot encrypt or decrypt (wrong key, damaged or not age), or a key file of this install is
    damaged; ``str(e)`` is one line."""


class BackupDamaged(BackupError):
    """A backup file failed verification or is hostile; it was not used."""


class BackupMoved(BackupDamaged):
    """A file of the backup went away between being listed and being read: a sync (ours or another
    machine's cloud client) moved it. Worth a second look, unlike damage."""
