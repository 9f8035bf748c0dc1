"""Map an OS error to the ``FailureKind`` the service retries on, and name the harmless skips.

Every engine uses this table, so a locked file means the same thing whichever engine copied it.
The reasons ``VANISHED``, ``NOT_REGULAR`` and ``CHANGED`` appear in ``CopyResult.failed`` for paths that were
skipped for a harmless reason; a result whose ``failed`` holds only those has ``kind`` None.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping

from app.errors import FailureKind

VANISHED = "vanished"
"""Reason for a listed source file that no longer exists (opencode deleted it meanwhile)."""

NOT_REGULAR = "not a regular file"
"""Reason for a listed source path that is a symlink, folder or device; never followed or copied."""

CHANGED = "changed since it was planned"
"""Reason for a listed source file whose content is no longer what the caller planned to copy (opencode
rewrote it meanwhile): its copy is not put in place under the planned size and digest."""

CANCELLED = "cancelled"
"""``CopyResult.detail`` (and the reason of each path not done) when the caller's cancel event was set."""

BENIGN_REASONS = frozenset({VANISHED, NOT_REGULAR, CHANGED})
"""Reasons that are not failures: the caller's next scan sees the change and plans again."""

# Another process holds the file (Google Drive syncing it, an antivirus scan) or the
# folder refuses a write for now: worth retrying.
_LOCKED_NAMES = ("EBUSY", "EACCES", "EPERM", "EDEADLK", "ETXTBSY", "EAGAIN", "EWOULDBLOCK")
# The thing is not there: on the destination side it means the drive is not mounted
# (ENOTCONN: a crashed FUSE mount such as rclone or google-drive-ocamlfuse).
_NOT_FOUND_NAMES = ("ENOENT", "ENOTDIR", "ENODEV", "ENXIO", "ESTALE", "ENOTCONN")
# ENOSPC, EDQUOT, EROFS, EIO and anything unknown: a person has to act.


def _codes(names: Iterable[str]) -> frozenset[int]:
    # getattr: not every platform's errno module defines every name (ETXTBSY on Windows).
    return frozenset(code for name in names if isinstance(code := getattr(errno, name, None), int))


_LOCKED_ERRNOS = _codes(_LOCKED_NAMES)
_NOT_FOUND_ERRNOS = _codes(_NOT_FOUND_NAMES)

# Windows system error codes checked before errno (Python maps several of them to EACCES).
_WINERROR: Mapping[int, str] = {
    32: "locked",  # ERROR_SHARING_VIOLATION
    33: "locked",  # ERROR_LOCK_VIOLATION
    21: "not_found",  # ERROR_NOT_READY: removable or virtual drive gone
    53: "not_found",  # ERROR_BAD_NETPATH
    67: "not_found",  # ERROR_BAD_NET_NAME
    1231: "not_found",  # ERROR_NETWORK_UNREACHABLE
}

_SEVERITY = (FailureKind.SOURCE_MISSING, FailureKind.LOCKED, FailureKind.DEST_MISSING, FailureKind.FATAL)


def kind_for_errno(
    code: int | None, *, winerror: int | None = None, on_destination: bool = True
) -> FailureKind:
    """Classify an errno (and optional Windows error code); pure, any thread.

    A not-found error is DEST_MISSING when it happened at the destination and SOURCE_MISSING
    at the source; the caller says which with ``on_destination``.
    """
    group = _WINERROR.get(winerror) if winerror is not None else None
    if group is None and code is not None:
        if code in _LOCKED_ERRNOS:
            group = "locked"
        elif code in _NOT_FOUND_ERRNOS:
            group = "not_found"
    if group == "locked":
        return FailureKind.LOCKED
    if group == "not_found":
        return FailureKind.DEST_MISSING if on_destination else FailureKind.SOURCE_MISSING
    return FailureKind.FATAL


def kind_for_oserror(exc: OSError, *, on_destination: bool = True) -> FailureKind:
    """Classify ``exc`` raised while copying; pure, any thread. See ``kind_for_errno``."""
    winerror = getattr(exc, "winerror", None)
    return kind_for_errno(
        exc.errno, winerror=winerror if isinstance(winerror, int) else None, on_destination=on_destination
    )


def is_not_found(exc: OSError) -> bool:
    """True when ``exc`` says a path does not exist (used to spot a source file that vanished)."""
    return exc.errno in _NOT_FOUND_ERRNOS and getattr(exc, "winerror", None) not in (21, 53, 67, 1231)


def worst(kinds: Iterable[FailureKind | None]) -> FailureKind | None:
    """The kind that decides the outcome when several files failed differently (FATAL wins)."""
    present = {kind for kind in kinds if kind is not None}
    if not present:
        return None
    others = present - set(_SEVERITY)  # GUARD never comes from an engine; treat it as fatal
    return FailureKind.FATAL if others else max(present, key=_SEVERITY.index)
