"""age encryption through pyrage: the backup folder's files are age files, so they open with the standard
``age`` and ``rage`` tools (``age -d -i key.txt file``) without this app. A short text (a title in the
manifest) is sealed the same way and written ``age:<base64 of the age file>``.

Everything decrypted here comes from an untrusted folder: a file that is not age, is truncated, or is not
encrypted to one of our identities raises :class:`CryptError` with one line, and a file's header is
checked before anything is read past it. Pure; any thread.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import CryptError

MAGIC = b"age-encryption.org/v1\n"
TEXT_PREFIX = "age:"
# bech32 (lower case for the public key, upper case for the secret one), as age-keygen writes them
RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
IDENTITY = re.compile(r"^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$")
MAX_TEXT = 64 << 10  # a sealed text in the manifest (a title, a folder) is never this long


class NoKey(CryptError):
    """The file is encrypted and this install holds no key at all (not: the wrong one)."""


class WrongKey(CryptError):
    """The file is sound age, encrypted to none of the keys given."""


def new_identity() -> tuple[str, str]:
    """A new X25519 identity: (secret key, its public key)."""
    from pyrage import x25519  # noqa: PLC0415 - loaded only where keys are used (start-up time)

    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def public_of(secret: str) -> str:
    """The public key (recipient) of a secret key; CryptError when it is not one."""
    return str(_identity(secret).to_public())


def is_recipient(text: object) -> bool:
    return isinstance(text, str) and RECIPIENT.match(text) is not None


def is_identity(text: object) -> bool:
    return isinstance(text, str) and IDENTITY.match(text) is not None


def is_sealed(head: bytes) -> bool:
    """Whether bytes (a file's first ones) are an age file."""
    return head.startswith(MAGIC)


def file_is_sealed(path: Path) -> bool:
    """Whether the file ``path`` is an age file: its first bytes read, never through a symlink; False when
    it cannot be read (the reader that opens it then says why)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh:
            return is_sealed(fh.read(len(MAGIC)))
    except OSError:
        return False


def encrypt(data: bytes, recipients: Sequence[str]) -> bytes:
    import pyrage  # noqa: PLC0415

    return bytes(pyrage.encrypt(data, _recipients(recipients)))


def decrypt(data: bytes, identities: Sequence[str], what: str) -> bytes:
    """The plaintext of an age file; CryptError (one line naming ``what``) when it is not one, is damaged,
    or none of ``identities`` opens it."""
    import pyrage  # noqa: PLC0415

    if not is_sealed(data):
        raise CryptError(f"{what} is not encrypted (age), though this backup is")
    if not identities:
        raise NoKey(f"{what} is encrypted and this install has no key to open it")
    try:
        return bytes(pyrage.decrypt(data, [_identity(i) for i in identities]))
    except pyrage.DecryptError as exc:
        raise _failed(what, exc) from None


def encrypt_stream(src: BinaryIO, dst: BinaryIO, recipients: Sequence[str]) -> None:
    """``src`` (read to its end) as an age file into ``dst``, a chunk at a time."""
    import pyrage  # noqa: PLC0415

    pyrage.encrypt_io(src, dst, _recipients(recipients))


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: Sequence[str], what: str) -> None:
    """The plaintext of the age file ``src`` into ``dst``, a chunk at a time (see :func:`decrypt`)."""
    import pyrage  # noqa: PLC0415

    head = src.read(len(MAGIC))
    if not is_sealed(head):
        raise CryptError(f"{what} is not encrypted (age), though this backup is")
    if not identities:
        raise NoKey(f"{what} is encrypted and this install has no key to open it")
    src.seek(0)
    try:
        pyrage.decrypt_io(src, dst, [_identity(i) for i in identities])
    except pyrage.DecryptError as exc:
        raise _failed(what, exc) from None


def seal_text(text: str, recipients: Sequence[str]) -> str:
    """``age:`` and the base64 of ``text`` encrypted (a manifest field that says something of the user)."""
    return TEXT_PREFIX + base64.b64encode(encrypt(text.encode(), recipients)).decode("ascii")


def is_sealed_text(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TEXT_PREFIX)


def open_text(value: str, identities: Sequence[str], what: str) -> str:
    """The text :func:`seal_text` sealed; a plain one as it is; CryptError when it cannot be opened."""
    if not is_sealed_text(value):
        return value
    if len(value) > MAX_TEXT:
        raise CryptError(f"{what} is too long to be a sealed text")
    try:
        data = base64.b64decode(value[len(TEXT_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise CryptError(f"{what} is not a sealed text (bad base64)") from None
    try:
        return decrypt(data, identities, what).decode()
    except UnicodeDecodeError:
        raise CryptError(f"{what} does not hold text") from None


def _recipients(keys: Sequence[str]) -> list[object]:
    from pyrage import x25519  # noqa: PLC0415

    if not keys:
        raise CryptError("no recipient to encrypt to")
    try:
        return [x25519.Recipient.from_str(k) for k in keys]
    except Exception as exc:  # pyrage.RecipientError; its text names no secret
        raise CryptError(f"not an age public key: {_why(exc)}") from None


def _identity(secret: str) -> Any:
    from pyrage import x25519  # noqa: PLC0415

    try:
        return x25519.Identity.from_str(secret)
    except Exception:  # pyrage.IdentityError; never repeat the secret in the message
        raise CryptError("not an age secret key (AGE-SECRET-KEY-1…)") from None


def _failed(what: str, exc: BaseException) -> CryptError:
    why = _why(exc)
    if "no matching keys" in why.lower():
        return WrongKey(f"cannot decrypt {what}: it is encrypted to none of this install's keys")
    return CryptError(f"cannot decrypt {what}: {why}")


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
