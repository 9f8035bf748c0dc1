"""Checks for what is read from the backup folder, which is untrusted input.

The backup folder usually lives in a cloud-synced folder that other machines and programs write. Every
name, path, number and document read from it goes through these functions before it is used: a value
that does not fit raises :class:`~app.errors.BackupDamaged` with one line naming the file, never a
traceback (OverflowError, RecursionError, TypeError, MemoryError) and never a path outside the machine
folder. Pure except :func:`read_capped` and :func:`regular_file`, which only ``lstat`` and read.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from app.crypt.age import NoKey
from app.crypt.seal import Seal
from app.errors import UNLOCK_HINT, BackupDamaged, BackupMoved, CryptError, KeyMissing

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")  # session and project ids
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_FILE_BYTES = 1 << 50  # a size any real file stays below (1 PiB)
MAX_INT = (1 << 63) - 1
_BAD_COMPONENT = re.compile(r"[\x00-\x1f\\:*?\"<>|]")  # control characters and what Windows refuses


def opened(seal: Seal, data: bytes, path: Path) -> bytes:
    """The content of a file of the backup (``data``: its bytes), decrypted when it is encrypted; a plain
    one where the folder is wholly encrypted is refused. KeyMissing when there is no key at all."""
    try:
        return seal.open(data, path.name)
    except NoKey as exc:
        raise KeyMissing(f"{exc}; {UNLOCK_HINT}") from None
    except CryptError as exc:
        raise BackupDamaged(f"refusing {exc}") from None


def short(value: object) -> str:
    """A value for an error message: one line, at most 80 characters."""
    text = str(value) if isinstance(value, BaseException) else repr(value)
    text = text.replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def read_capped(path: Path, cap: int, what: str | None = None) -> bytes:
    """The bytes of a regular file (never through a symlink), refusing one above ``cap`` bytes."""
    name = what or path.name
    try:
        st = path.lstat()
    except FileNotFoundError as exc:
        raise BackupMoved(f"cannot read {name}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise BackupDamaged(f"cannot read {name}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BackupDamaged(f"refusing {name}: not a regular file")
    if st.st_size > cap:
        raise BackupDamaged(f"refusing {name}: {st.st_size:,} bytes is more than it can be ({cap:,})")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise BackupMoved(f"cannot read {name}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise BackupDamaged(f"cannot read {name}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        # read(cap + 1) would allocate cap + 1 bytes (64 MB for a 60 KB shard) before reading a byte
        size = os.fstat(fd).st_size
        data = fh.read(min(cap, size) + 1)
        if size < len(data) <= cap:  # it grew meanwhile: the rest, up to the cap
            data += fh.read(cap + 1 - len(data))
    if len(data) > cap:
        raise BackupDamaged(f"refusing {name}: more than it can be ({cap:,} bytes)")
    return data


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON that must hold plain finite numbers; any failure is one BackupDamaged line."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise BackupDamaged(f"{what} is damaged: not valid JSON ({short(exc)})") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def obj(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BackupDamaged(f"{what} is damaged: expected an object, got {type(value).__name__}")
    return value


def integer(value: object, what: str, low: int = 0, high: int = MAX_INT) -> int:
    """An int within [low, high] (not a bool, not a float such as 1e999)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BackupDamaged(f"{what} is damaged: expected a whole number, got {short(value)}")
    if not low <= value <= high:
        raise BackupDamaged(f"{what} is damaged: {short(value)} is out of range")
    return value


def text(value: object, what: str, limit: int = 4096, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise BackupDamaged(f"{what} is damaged: expected text, got {short(value)}")
    return value


def digest(value: object, what: str) -> str:
    if not isinstance(value, str) or not SHA256.match(value):
        raise BackupDamaged(f"{what} is damaged: not a sha256: {short(value)}")
    return value


def number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BackupDamaged(f"{what} is damaged: expected a number, got {short(value)}")
    return float(value)


def relpath(value: object, what: str, root: str) -> str:
    """A plain relative POSIX path below ``root/`` (``sessions``, ``snapshots``, ``storage``...): no ``..``,
    no empty, absolute or drive components, no backslashes or control characters."""
    if not isinstance(value, str) or not value.startswith(root + "/") or len(value) > 4096:
        raise BackupDamaged(f"{what}: refusing a path outside {root}/: {short(value)}")
    # one search of the whole path ('/' is not a bad character) and list lookups in C: the manifest holds
    # 100,000 of these and a check per component took 14 us a path
    parts = value.split("/")
    if _BAD_COMPONENT.search(value) or "" in parts or "." in parts or ".." in parts:
        raise BackupDamaged(f"{what}: refusing the path {short(value)}")
    if value.startswith("/"):  # what PurePosixPath.is_absolute() tests, without building one (2 us)
        raise BackupDamaged(f"{what}: refusing the absolute path {short(value)}")
    return value


def regular_file(machine_dir: Path, rel: str) -> Path | None:
    """``machine_dir / rel`` when it is a regular file reached without a symlink; None when absent.

    Raises BackupDamaged when a component is a symlink or the target is something else."""
    path = machine_dir
    parts = rel.split("/")
    for i, part in enumerate(parts):
        path = path / part
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackupDamaged(f"cannot look at {rel}: {exc.strerror or exc}") from None
        last = i == len(parts) - 1
        if stat.S_ISLNK(st.st_mode):
            raise BackupDamaged(f"refusing {rel}: {'it' if last else '/'.join(parts[: i + 1])} is a symlink")
        if last and not stat.S_ISREG(st.st_mode):
            raise BackupDamaged(f"refusing {rel}: not a regular file")
        if not last and not stat.S_ISDIR(st.st_mode):
            return None
    return path
