"""Encryption as a person switches it: what ``opencode-backup encryption`` and the tray's Encrypt
backups… do. Keys are made here and kept by :class:`~app.crypt.keys.KeyStore`; the setting ``encryption``
is the switch; the next sync (which the faces run at once) re-encrypts the folder in place
(:mod:`app.backup.rekey`). Nothing here writes into the backup folder. Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from app import config
from app.backup import manifest as mf
from app.crypt import age
from app.crypt.keys import KeyStore, Recipients, identity_file_text, read_identity
from app.crypt.seal import Seal
from app.errors import BackupError, CryptError, UsageError
from app.fsutil import atomic_create
from app.wiring import key_store

PROBE_FILES = 20  # the encrypted files a key is tried on before it is called wrong


@dataclass(frozen=True)
class Report:
    """``encryption status``."""

    enabled: bool
    recipients: tuple[str, ...]
    can_decrypt: bool
    folder: str | None  # "encrypted", "re-encrypting", "plain"; None: no backup here yet
    kept_in: str
    warning: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "recipients": list(self.recipients),
            "can_decrypt": self.can_decrypt,
            "folder": self.folder,
            "key_kept_in": self.kept_in,
        }


@dataclass(frozen=True)
class NewKeys:
    """What ``enable`` is about to keep: the recipients, this install's new secret key (None: the one it
    made when encryption was on before) and the new recovery secret to show once (None: an earlier
    recovery key stays it; :attr:`reused` says which, for a person)."""

    recipients: Recipients
    own_secret: str | None
    recovery_secret: str | None

    @property
    def reused(self) -> str:
        """Which recovery key stays and why, as the command line and the tray say it ('' when a new one
        is to be shown)."""
        if self.recovery_secret is not None:
            return ""
        if self.own_secret is None:  # turned off before: the keys made then are used again
            return (
                "Backups will be encrypted again with the keys this computer made before. "
                f"The recovery key is the one you stored then ({self.recipients.recovery})."
            )
        return (  # a new computer, unlocked with the recovery key
            "Backups will be encrypted with a new key for this computer. The recovery key is the one this "
            f"computer was unlocked with ({self.recipients.recovery})."
        )


def new_keys(store: KeyStore | None = None) -> NewKeys:
    """The keys ``enable`` will use (see :class:`NewKeys`). Nothing is stored: :func:`keep` does, once
    the person has the recovery key."""
    store = key_store() if store is None else store
    try:
        mine, damaged = store.recipients(), False
    except CryptError:  # recipients.json is damaged: new keys and a new recovery key replace it
        mine, damaged = None, True
    if mine is not None:
        if not any(age.public_of(secret) == mine.own for secret in store.identities()):
            raise UsageError(
                "this install's key is no longer in the keyring; "
                "run 'opencode-backup encryption unlock' with the recovery key first"
            )
        return NewKeys(mine, None, None)
    own_secret, own = age.new_identity()
    unlocked = store.unlocked()  # never a key this install made (an enable cut before its recipients)
    if unlocked and not damaged:  # a key unlocked here before (this is a new computer): the recovery key
        return NewKeys(Recipients(own, age.public_of(unlocked[0])), own_secret, None)
    recovery_secret, recovery = age.new_identity()
    return NewKeys(Recipients(own, recovery), own_secret, recovery_secret)


def keep(recipients: Recipients, own_secret: str | None, env: Mapping[str, str] | None = None) -> str:
    """Store this install's secret key and the recipients, then turn the switch on; returns where the
    secret is kept."""
    store = key_store()
    kept = store.add_identity(own_secret) if own_secret is not None else store.where()
    store.save_recipients(recipients)
    config.save_settings({"encryption": True}, env)
    return kept


def disable(env: Mapping[str, str] | None = None) -> None:
    """Turn the switch off (the next sync writes plain files again). The keys stay: the folder's files
    are decrypted with them, and older copies elsewhere still need them."""
    config.save_settings({"encryption": False}, env)


def add_recipient(public: str) -> Recipients:
    """Encrypt to ``public`` too, from the next sync on (which re-encrypts every file for it)."""
    public = public.strip()
    if not age.is_recipient(public):
        raise UsageError(f"not an age public key (age1…): {public[:80]!r}")
    store = key_store()
    mine = store.recipients()
    if mine is None:
        raise UsageError("encryption is not set up here; run 'opencode-backup encryption enable' first")
    if public in mine.all:
        return mine
    updated = Recipients(mine.own, mine.recovery, (*mine.others, public))
    store.save_recipients(updated)
    return updated


@dataclass(frozen=True)
class Unlocked:
    """What ``unlock`` did: where the key is kept, and whether it was tried on the backup (False: no
    encrypted file of it is on this computer yet, e.g. a remote's empty mirror, so any key is kept)."""

    kept_in: str
    checked: bool


def unlock(secret_text: str, settings: config.Settings, where: str) -> Unlocked:
    """Check the key ``secret_text`` (an age identity file or the bare key) opens the backup, then keep
    it. UsageError (nothing kept) for a malformed key or one that opens none of the backup's encrypted
    files; kept unchecked when there is none here to try."""
    try:
        secret = read_identity(secret_text, where)
        age.public_of(secret)
    except CryptError as exc:
        raise UsageError(str(exc)) from None
    tried = 0
    for path in _sealed_files(settings.backup_path):
        tried += 1
        try:
            Seal((), lambda: [secret]).check(path)
            break
        except (CryptError, OSError):
            continue
    else:
        if tried:
            raise UsageError(f"this key opens none of the backup's encrypted files in {settings.backup_path}")
    return Unlocked(key_store().add_identity(secret, unlocked=True), checked=tried > 0)


def export_identities(path: Path) -> int:
    """Write this install's secret keys as an age identity file (0600, never over an existing file);
    returns how many."""
    held = key_store().identities()
    if not held:
        raise UsageError("this install holds no key; run 'opencode-backup encryption enable' first")
    _create(path, identity_file_text(held), "the keys")
    return len(held)


def write_recovery(path: Path, secret: str) -> None:
    """The recovery key as an age identity file at ``path`` (0600; never over an existing file)."""
    _create(path, identity_file_text([secret]), "the recovery key")


def _create(path: Path, text: str, what: str) -> None:
    """A new 0600 file at ``path`` holding ``text`` (``what``: its name for a person); never over an
    existing file, a link included, even one that appears meanwhile. UsageError (one line) otherwise."""
    try:
        atomic_create(path, text.encode())
    except FileExistsError:
        raise UsageError(f"{path} exists; choose a new file for {what}") from None
    except OSError as exc:
        raise UsageError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None


def status(settings: config.Settings) -> Report:
    store = key_store()
    try:
        mine = store.recipients()
    except CryptError as exc:
        raise UsageError(str(exc)) from None
    folder, listed = _folder_state(settings.machine_dir)
    recipients = mine.all if mine is not None else listed
    held = store.identities()
    return Report(
        enabled=settings.encryption,
        recipients=recipients,
        can_decrypt=bool(held) and _opens(settings.machine_dir, held),
        folder=folder,
        kept_in=store.where(),
        warning=store.warning(),
    )


def _folder_state(machine_dir: Path | None) -> tuple[str | None, tuple[str, ...]]:
    if machine_dir is None or not (machine_dir / mf.MANIFEST).is_file():
        return None, ()
    try:
        enc = mf.load(machine_dir, machine_dir.name).encryption
    except BackupError:
        return None, ()
    if enc.rekey_to is not None:
        return "re-encrypting", enc.rekey_to
    return ("encrypted" if enc.recipients else "plain"), enc.recipients


def _opens(machine_dir: Path | None, held: tuple[str, ...]) -> bool:
    """Whether these keys open this machine's encrypted files (the first one found; True when none)."""
    for path in _sealed_files(machine_dir.parent if machine_dir else None, only=machine_dir):
        try:
            Seal((), lambda: held).check(path)
            return True
        except (CryptError, OSError):
            return False
    return True


def _sealed_files(backup_path: Path | None, only: Path | None = None) -> Iterator[Path]:
    """Up to PROBE_FILES encrypted session files of the backup (of one machine folder with ``only``)."""
    if backup_path is None or not backup_path.is_dir():
        return
    found = 0
    folders = [only] if only is not None else sorted(p for p in backup_path.iterdir() if p.is_dir())
    for machine in folders:
        for path in _session_files(machine):
            if age.file_is_sealed(path):
                yield path
                found += 1
                if found >= PROBE_FILES:
                    return


def _session_files(machine: Path) -> Iterator[Path]:
    root = machine / "sessions"
    with contextlib.suppress(OSError):
        for project in sorted(os.scandir(root), key=lambda e: e.name):
            if project.is_dir(follow_symlinks=False):
                for entry in sorted(os.scandir(project.path), key=lambda e: e.name):
                    if entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                        yield Path(entry.path)
