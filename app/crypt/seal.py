"""How one backup folder's files are written and read: :class:`Seal`.

A sync writes with the recipients this install trusts (its settings and local key file, never a list
read from the backup folder); every reader opens a file that is age with this install's identities, and a
plain file only where the folder is not (or not yet wholly) encrypted. The identities are loaded the first
time a sealed file is met, so reading a plain backup never touches the keyring. Any thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from app.crypt import age
from app.errors import CryptError

Loader = Callable[[], Sequence[str]]


def _no_identities() -> Sequence[str]:
    return ()


class _Identities:
    """The secret keys, loaded once (by whichever thread first needs them) and shared by a seal's copies."""

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._keys: tuple[str, ...] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[str, ...]:
        with self._lock:
            if self._keys is None:
                self._keys = tuple(self._load())
            return self._keys


class Seal:
    """``recipients``: what a sync encrypts to (empty: it writes plain files); ``identities``: loads the
    secret keys a reader opens sealed files with (called at most once, when first needed). ``strict``: the
    folder read is wholly encrypted, so a plain file in it is refused (see :meth:`for_folder`)."""

    def __init__(
        self, recipients: Sequence[str] = (), identities: Loader = _no_identities, *, strict: bool = False
    ) -> None:
        self.recipients = tuple(recipients)
        self._identities = identities if isinstance(identities, _Identities) else _Identities(identities)
        self.strict = strict
        # what seal_text gave each (session, field) last: a session's title is sealed again at each of its
        # exports (0.27 ms with two recipients, a fifth of a sync's added cost) though it rarely changes
        self._sealed: dict[str, tuple[str, str]] = {}

    def __repr__(self) -> str:
        return f"Seal(recipients={len(self.recipients)}, strict={self.strict})"

    def current(self) -> Seal:
        """A seal is its own source (see :class:`SealSource`)."""
        return self

    def for_folder(self, sealed: bool) -> Seal:
        """This seal for reading a folder whose manifest says it is wholly encrypted (``sealed``) or not."""
        return Seal(self.recipients, self._identities, strict=sealed)  # type: ignore[arg-type]

    @property
    def on(self) -> bool:
        """Whether what is written now is encrypted."""
        return bool(self.recipients)

    def identities(self) -> tuple[str, ...]:
        return self._identities.get()

    # ---- writing --------------------------------------------------------------------------------------

    def seal(self, data: bytes) -> bytes:
        return age.encrypt(data, self.recipients) if self.on else data

    def seal_text(self, text: str, slot: str | None = None) -> str:
        """``text`` sealed (as it is when this seal is off). ``slot`` names where it goes (a session's
        title): the same text in the same slot gets the sealing it got last, which says no more than
        that it did not change."""
        if not self.on or not text:
            return text
        if slot is not None:
            last = self._sealed.get(slot)
            if last is not None and last[0] == text:
                return last[1]
        sealed = age.seal_text(text, self.recipients)
        if slot is not None:
            if len(self._sealed) >= MAX_REMEMBERED:
                self._sealed.clear()
            self._sealed[slot] = (text, sealed)
        return sealed

    def seal_into(self, src: BinaryIO, dst: BinaryIO) -> None:
        """``src`` to its end into ``dst``, encrypted when this seal is on."""
        if self.on:
            age.encrypt_stream(src, dst, self.recipients)
        else:
            while chunk := src.read(1 << 20):
                dst.write(chunk)

    # ---- reading --------------------------------------------------------------------------------------

    def open(self, data: bytes, what: str) -> bytes:
        """The content of a file of the backup: decrypted when it is age; as it is when plain and the
        folder is not wholly encrypted. CryptError (one line) otherwise."""
        if age.is_sealed(data):
            return age.decrypt(data, self.identities(), what)
        if self.strict:
            raise CryptError(f"{what} is not encrypted (age), though this backup is")
        return data

    def open_text(self, value: str, what: str) -> str:
        """A manifest text as it was before sealing (a plain one as it is)."""
        if not age.is_sealed_text(value):
            return value
        return age.open_text(value, self.identities(), what)

    def readable_text(self, value: str, what: str) -> str:
        """:meth:`open_text`, or a placeholder where it cannot be opened (no key): for listings."""
        try:
            return self.open_text(value, what)
        except CryptError:
            return LOCKED_TEXT

    def check(self, path: Path) -> None:
        """Decrypt the file at ``path`` to nowhere: CryptError unless these keys open it whole (age
        checks every chunk)."""
        with open(path, "rb") as fh:
            self.open_into(fh, _Discard(), path.name)  # type: ignore[arg-type]  # a writable file

    def open_into(self, src: BinaryIO, dst: BinaryIO, what: str) -> None:
        """:meth:`open` a chunk at a time (snapshots, large legacy files)."""
        head = src.read(len(age.MAGIC))
        src.seek(0)
        if age.is_sealed(head):
            age.decrypt_stream(src, dst, self.identities(), what)
            return
        if self.strict:
            raise CryptError(f"{what} is not encrypted (age), though this backup is")
        while chunk := src.read(1 << 20):
            dst.write(chunk)


class SealSource(Protocol):
    """Gives the seal in force now: a long-running service's follows ``encryption enable`` and
    ``unlock`` run beside it (each sync asks once, at its start)."""

    def current(self) -> Seal: ...


LOCKED_TEXT = "(encrypted)"
MAX_REMEMBERED = 20_000  # sealed texts kept for seal_text's slots (~1 KB each)
PLAIN = Seal()  # writes plain files; opens plain ones, and says it has no key for sealed ones


def seal_file(seal: Seal, src: Path, dst: BinaryIO) -> tuple[int, str]:
    """``src`` written sealed into ``dst``: the (size, sha256) of what was written."""
    counted = _Counting(dst)
    with open(src, "rb") as fh:
        seal.seal_into(fh, counted)  # type: ignore[arg-type]  # a writable file for pyrage
    return counted.size, counted.digest.hexdigest()


class _Discard:
    """A writable file that keeps nothing."""

    def write(self, data: bytes) -> int:
        return len(data)


class _Counting:
    """A writable file that counts and hashes what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        view = bytes(data)
        self._out.write(view)
        self.size += len(view)
        self.digest.update(view)
        return len(view)

    def flush(self) -> None:
        self._out.flush()

    def writable(self) -> bool:
        return True
