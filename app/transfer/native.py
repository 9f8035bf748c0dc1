"""Copy with Python alone: the engine used when no suitable rsync or robocopy is installed.

Each file is written to ``.<name>.tmp-<pid>`` next to its final name, fsynced, given the
source's modification time and renamed into place, so a reader never sees half a file; its sha256 is
taken as it is written, and a copy whose content is not the one the caller planned is not renamed.
New folders are 0700 and new files 0600 on Unix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from app.errors import FailureKind
from app.fsutil import PRIVATE_FILE, Content, flush, make_private_dirs, over_leftover
from app.transfer.base import CopyJob, CopyResult
from app.transfer.classify import (
    CANCELLED,
    CHANGED,
    NOT_REGULAR,
    VANISHED,
    is_not_found,
    kind_for_oserror,
    worst,
)

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# O_NOFOLLOW: a symlink is never followed (it could point at secrets outside opencode's
# folder); O_NONBLOCK: opening a FIFO must not hang. Both are 0 where they do not exist.
_READ_FLAGS = (
    os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class _Cancelled(Exception):
    """The cancel event was set in the middle of a file."""


class _SourceProblem(Exception):
    """The source file could not be read; ``reason`` goes to ``failed``, ``kind`` may be None."""

    def __init__(self, reason: str, kind: FailureKind | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class NativeEngine:
    """Engine copying file by file with Python; no external program."""

    name = "native"

    def copy(self, job: CopyJob, cancel: threading.Event) -> CopyResult:
        """Copy every path of ``job`` on the calling (worker) thread; checks ``cancel`` between
        files and between 1 MiB chunks. Every listed path ends in ``copied`` or ``failed``.

        A locked file is skipped and the others are still copied; a missing destination or a
        fatal error (disk full) stops the run. The destination root is never created.
        """
        if not job.src_root.is_dir():
            return _stop(job, (), {}, FailureKind.SOURCE_MISSING, f"source folder missing: {job.src_root}")
        if not job.dst_root.is_dir():
            return _stop(job, (), {}, FailureKind.DEST_MISSING, f"backup folder missing: {job.dst_root}")
        copied: list[str] = []
        failed: dict[str, str] = {}
        kinds: list[FailureKind | None] = []
        for path in job.paths:
            if cancel.is_set():
                return _stop(job, copied, failed, FailureKind.FATAL, CANCELLED)
            try:
                _copy_file(job.src_root / path, job.dst_root / path, job.expect.get(path), cancel)
            except _Cancelled:
                return _stop(job, copied, failed, FailureKind.FATAL, CANCELLED)
            except _SourceProblem as problem:
                failed[path] = problem.reason
                kinds.append(problem.kind)
                continue
            except OSError as exc:
                kind = _destination_kind(exc, job.dst_root)
                logger.warning("could not copy %s (%s): %s", path, kind.value, exc)
                failed[path] = f"{kind.value}: {exc.strerror or exc}"
                if kind in (FailureKind.DEST_MISSING, FailureKind.FATAL):
                    return _stop(job, copied, failed, kind, failed[path])
                kinds.append(kind)
                continue
            copied.append(path)
        return CopyResult(copied=tuple(copied), failed=failed, kind=worst(kinds), synced=True)


def _destination_kind(exc: OSError, dst_root: Path) -> FailureKind:
    if is_not_found(exc) and dst_root.is_dir():
        # The root is still there: a sub-folder deleted meanwhile is worth a retry, a file
        # standing where a folder must go is not.
        return FailureKind.LOCKED if exc.errno == errno.ENOENT else FailureKind.FATAL
    return kind_for_oserror(exc, on_destination=True)


def _stop(
    job: CopyJob, copied: Sequence[str], failed: dict[str, str], kind: FailureKind, detail: str
) -> CopyResult:
    """Result of a run that stopped early: every path not done is failed with ``detail``."""
    done = set(copied) | failed.keys()
    rest = {path: detail for path in job.paths if path not in done}
    return CopyResult(copied=tuple(copied), failed={**failed, **rest}, kind=kind, detail=detail, synced=True)


def _copy_file(src: Path, dst: Path, want: Content | None, cancel: threading.Event) -> None:
    """Copy one file atomically, unless what it read is not ``want`` (the planned content); raises
    ``_SourceProblem`` for the source, OSError for the destination."""
    try:
        src_fd = os.open(src, _READ_FLAGS)
    except OSError as exc:
        raise _source_problem(exc, src) from exc
    try:
        info = os.fstat(src_fd)
        if not stat.S_ISREG(info.st_mode):
            raise _SourceProblem(NOT_REGULAR, None)
        make_private_dirs(dst.parent)
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        tmp_fd = over_leftover(tmp, partial(os.open, tmp, _WRITE_FLAGS, PRIVATE_FILE))
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(tmp_fd, "wb") as writer:
                while block := _read(src_fd, src):
                    if cancel.is_set():
                        raise _Cancelled
                    writer.write(block)
                    digest.update(block)
                    size += len(block)
                if want is not None and (size, digest.hexdigest()) != want:
                    raise _SourceProblem(CHANGED, None)  # opencode rewrote it since the plan
                writer.flush()
                flush(writer.fileno())
            os.utime(tmp, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    finally:
        os.close(src_fd)


def _read(fd: int, src: Path) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except OSError as exc:
        raise _source_problem(exc, src) from exc


def _source_problem(exc: OSError, src: Path) -> _SourceProblem:
    if is_not_found(exc):
        return _SourceProblem(VANISHED, None)
    if exc.errno is not None and exc.errno == getattr(errno, "ELOOP", None):
        return _SourceProblem(NOT_REGULAR, None)  # O_NOFOLLOW refused a symlink
    kind = kind_for_oserror(exc, on_destination=False)
    logger.warning("could not read %s (%s): %s", src, kind.value, exc)
    return _SourceProblem(f"{kind.value}: {exc.strerror or exc}", kind)
