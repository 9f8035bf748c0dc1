"""This install's keys: the secret identities in the OS keyring (macOS Keychain, Windows Credential Locker,
Secret Service on Linux), or, where none works, in a 0600 file in age's own identity-file format (so
``age -d -i`` opens the backup with it); and the recipients a sync encrypts to, in a local file.

The recipients are trusted only from here: the list a machine folder shows (its manifest) is written by
whoever can write the folder, and is never taken as what to encrypt to. Runs on the caller's thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.crypt import age
from app.errors import CryptError
from app.fsutil import atomic_write_bytes, make_private_dirs, stat_signature

logger = logging.getLogger(__name__)

SERVICE = "opencode-session-backup"  # the keyring entry: service and user name
ENTRY = "age-identities"
RECIPIENTS_FILE = "recipients.json"
IDENTITY_FILE = "identities.txt"
UNLOCKED_FILE = "unlocked.txt"  # the public keys of the secret keys ``unlock`` kept: recovery keys, not ours
CHANGED_FILE = "keys.changed"  # rewritten at every change of keys: what a running service looks at
FORMAT = "opencode-session-backup-keys/1"
MAX_FILE = 1 << 20
# what a person does about a damaged recipients file: enable replaces it (the secret keys stay, to read
# what the backup holds); a recipient added with add-recipient must be added again
RENEW_HINT = (
    "run 'opencode-backup encryption enable' again: it makes new keys and a new recovery key "
    "(add any other recipient again with 'encryption add-recipient')"
)
MAX_KEYS = 32  # a Windows credential holds 2,560 bytes: 32 keys of 74 characters


@dataclass(frozen=True)
class Recipients:
    """Who the backup is encrypted to: this install's key, the recovery key (shown once at ``enable``)
    and any added with ``add-recipient``."""

    own: str
    recovery: str
    others: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.own, self.recovery, *self.others)))


@dataclass
class KeyStore:
    """Keys kept under ``folder`` (the app's config folder) and in the OS keyring. ``keyring``: the
    module to use (None: imported when first needed); tests give a fake one only where no real one runs."""

    folder: Path
    keyring: Any = None
    _warned: bool = field(default=False, repr=False)

    # ---- recipients (public, local) -----------------------------------------------------------------

    def recipients(self) -> Recipients | None:
        """What ``enable`` set up on this install (None: never enabled); CryptError when the file is bad."""
        path = self.folder / RECIPIENTS_FILE
        try:
            data = _read_small(path)
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(data)
            own, recovery, others = doc["own"], doc["recovery"], doc.get("others", [])
        except (ValueError, KeyError, TypeError):
            raise CryptError(f"{path} is damaged; {RENEW_HINT}") from None
        keys = [own, recovery, *others] if isinstance(others, list) else []
        if not keys or not all(age.is_recipient(k) for k in keys):
            raise CryptError(f"{path} lists something that is not an age public key; {RENEW_HINT}")
        return Recipients(own, recovery, tuple(others))

    def save_recipients(self, recipients: Recipients) -> None:
        doc = {"format": FORMAT, "own": recipients.own, "recovery": recipients.recovery}
        doc["others"] = list(recipients.others)  # type: ignore[assignment]
        make_private_dirs(self.folder)
        atomic_write_bytes(self.folder / RECIPIENTS_FILE, (json.dumps(doc, indent=2) + "\n").encode())
        self._changed()

    # ---- identities (secret) ------------------------------------------------------------------------

    def identities(self) -> tuple[str, ...]:
        """Every secret key this install holds (keyring first, then the file); () when none."""
        found = [*self._from_keyring(), *self._from_file()]
        return tuple(dict.fromkeys(found))

    def unlocked(self) -> tuple[str, ...]:
        """The secret keys held here that ``unlock`` kept (a recovery key brought from elsewhere), not the
        ones this install made: only such a key is taken for the recovery key by ``enable``."""
        try:
            listed = set(_read_small(self.folder / UNLOCKED_FILE).decode("utf-8", "replace").split())
        except FileNotFoundError:
            return ()
        return tuple(s for s in self.identities() if age.public_of(s) in listed)

    def add_identity(self, secret: str, *, unlocked: bool = False) -> str:
        """Keep ``secret`` (checked first); returns where it is kept, for the person to read. ``unlocked``:
        it is a key brought here by ``unlock``; that is recorded first (a public key only), so a key this
        install made is never taken for one, whatever was cut short."""
        public = age.public_of(secret)
        if unlocked:
            self._mark_unlocked(public)
        ring = self._keyring()
        try:  # read once: what is written back, so a failed read never replaces the keys kept there
            in_ring = self._read_keyring(ring) if ring is not None else []
        except _Unreadable as exc:
            raise CryptError(f"{exc}; nothing was kept: unlock the keyring, then try again") from None
        held = list(dict.fromkeys([*in_ring, *self._from_file()]))
        if secret in held:
            return self.where()
        keys = [*held, secret]
        if len(keys) > MAX_KEYS:
            raise CryptError(f"this install already holds {len(held)} keys; no more can be kept")
        if ring is not None:
            try:
                ring.set_password(SERVICE, ENTRY, "\n".join([*in_ring, secret]))
                self._changed()
                return "the system keyring"
            except Exception as exc:  # any backend's error: locked, refused, gone
                logger.warning("the system keyring refused the key (%s); keeping it in a file", _why(exc))
        self._write_file([*self._from_file(), secret])
        self._changed()
        return str(self.folder / IDENTITY_FILE)

    def _mark_unlocked(self, public: str) -> None:
        path = self.folder / UNLOCKED_FILE
        try:
            listed = _read_small(path).decode("utf-8", "replace").split()
        except FileNotFoundError:
            listed = []
        if public not in listed:
            make_private_dirs(self.folder)
            atomic_write_bytes(path, "".join(f"{k}\n" for k in [*listed, public]).encode())

    def signature(self) -> tuple[int, ...]:
        """Changes whenever this install's keys change (cheap: two stats)."""
        return (*stat_signature(self.folder / RECIPIENTS_FILE), *stat_signature(self.folder / CHANGED_FILE))

    def _changed(self) -> None:
        make_private_dirs(self.folder)
        atomic_write_bytes(self.folder / CHANGED_FILE, datetime.now(UTC).isoformat().encode())

    def where(self) -> str:
        """Where the secret keys are kept, as a person reads it."""
        if self._from_keyring():
            return "the system keyring"
        if (self.folder / IDENTITY_FILE).exists():
            return str(self.folder / IDENTITY_FILE)
        return "nowhere yet"

    def warning(self) -> str | None:
        """One line when the keys are kept in a file because no keyring works here."""
        if (self.folder / IDENTITY_FILE).exists() and self._keyring() is None:
            return (
                f"no system keyring works here: the backup's key is kept in {self.folder / IDENTITY_FILE} "
                "(readable by you only)"
            )
        return None

    def _keyring(self) -> Any:
        """The keyring backend when a real one works here, else None."""
        ring = self.keyring
        if ring is None:
            try:
                import keyring as ring  # noqa: PLC0415 - the keyring is loaded only where keys are used
            except ImportError:
                return None
        try:
            backend = ring.get_keyring()
        except Exception:  # a broken keyring configuration: the file is used
            return None
        priority = getattr(backend, "priority", 1)
        name = type(backend).__module__
        if name.startswith(("keyring.backends.fail", "keyring.backends.null")) or not priority:
            return None
        return ring

    def _from_keyring(self) -> list[str]:
        ring = self._keyring()
        if ring is None:
            return []
        try:
            return self._read_keyring(ring)
        except _Unreadable as exc:
            if not self._warned:
                logger.warning("%s", exc)
                self._warned = True
            return []

    def _read_keyring(self, ring: Any) -> list[str]:
        """The keys in the keyring entry; _Unreadable when the keyring cannot be read now."""
        try:
            value = ring.get_password(SERVICE, ENTRY)
        except Exception as exc:  # any backend's error: locked, refused, gone
            raise _Unreadable(f"cannot read the system keyring ({_why(exc)})") from None
        return _secrets(value or "", "the system keyring")

    def _from_file(self) -> list[str]:
        path = self.folder / IDENTITY_FILE
        try:
            text = _read_small(path).decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return _secrets(text, str(path))

    def _write_file(self, secrets: Sequence[str]) -> None:
        make_private_dirs(self.folder)
        text = identity_file_text(list(dict.fromkeys(secrets)))
        atomic_write_bytes(self.folder / IDENTITY_FILE, text.encode())


class _Unreadable(CryptError):
    """The keyring is there but cannot be read now."""


def identity_file_text(secrets: Sequence[str]) -> str:
    """``secrets`` as an age identity file (what ``age -d -i FILE`` reads)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    for secret in secrets:
        out += [f"# created: {now}", f"# public key: {age.public_of(secret)}", secret]
    return "\n".join(out) + "\n"


def read_identity(text: str, where: str) -> str:
    """The one secret key in ``text`` (an age identity file or the bare key); CryptError otherwise."""
    found = _secrets(text, where)
    if len(found) != 1:
        raise CryptError(f"{where} holds {len(found)} age secret keys, not one")
    return found[0]


def _secrets(text: str, where: str) -> list[str]:
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not age.is_identity(line):
            raise CryptError(f"{where} holds a line that is not an age secret key")
        found.append(line)
    return found


def _read_small(path: Path) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise CryptError(f"{path} is too large to be a key file")
    return data


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] if text else type(exc).__name__).replace("\n", " ")
