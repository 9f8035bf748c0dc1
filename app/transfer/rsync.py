"""Copy with rsync: capability detection, a pure command builder and a small engine.

The exit-code table and message parsing live in ``rsync_output`` (re-exported here).

rsync writes each file to a temp name in the target folder and renames it into place, so a
reader never sees half a file. It runs with umask 077 and without ``-p``, so new files are
0600 and new folders 0700 whatever the source's permissions.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from app.errors import FailureKind
from app.fsutil import content_of
from app.transfer.base import CopyJob, CopyResult
from app.transfer.classify import BENIGN_REASONS, CANCELLED, CHANGED
from app.transfer.rsync_output import Issue, classify, kind_of_run, parse_output
from app.transfer.runner import Runner, run

__all__ = [
    "Issue",
    "RsyncEngine",
    "RsyncFlavor",
    "argv",
    "classify",
    "detect_flavor",
    "parse_output",
    "parse_version",
]

logger = logging.getLogger(__name__)

IO_TIMEOUT_SECONDS = 120
STDIN = Path("-")
"""``argv``'s list file meaning rsync's standard input: no temp file to leave behind if we are killed."""


@dataclass(frozen=True)
class RsyncFlavor:
    """What the installed rsync can do, read from ``rsync --version``."""

    name: str = "unknown"  # "rsync" (samba), "openrsync" (macOS 15+) or "unknown"
    version: tuple[int, ...] = ()
    has_info: bool = False
    has_files_from: bool = False
    from0: bool = False
    omit_dir_times: bool = False


_GNU_VERSION = re.compile(r"^rsync\s+version\s+v?(\d+)\.(\d+)\.(\d+)", re.MULTILINE)


def parse_version(text: str) -> RsyncFlavor:
    """Capabilities from ``rsync --version`` output; pure.

    openrsync prints the same text whether or not its build has --files-from, so it is
    treated as lacking it (the factory then uses the native engine).
    """
    if "openrsync" in text:
        return RsyncFlavor(name="openrsync")
    match = _GNU_VERSION.search(text)
    if match is None:
        return RsyncFlavor()
    version = tuple(int(part) for part in match.groups())
    return RsyncFlavor(
        name="rsync",
        version=version,
        has_info=version >= (3, 1, 0),
        has_files_from=version >= (2, 6, 0),
        from0=version >= (2, 6, 0),
        omit_dir_times=version >= (2, 6, 4),
    )


def argv(job: CopyJob, list_file: Path, flavor: RsyncFlavor, *, binary: str = "rsync") -> list[str]:
    """The rsync command copying the paths listed in ``list_file`` (``STDIN``: its input); pure.

    No ``-r``: only files are listed, and ``--files-from`` already creates their parent
    folders. No ``-p``/``-a``: permissions come from the umask. No ``--inplace``/``--partial``:
    temp file + rename is what makes each file appear atomically. No ``--info``: rsync's
    default messages (errors, 'skipping non-regular file') are what ``classify`` reads.
    """
    if not flavor.has_files_from:
        raise ValueError(f"this rsync ({flavor.name}) has no --files-from")
    return [
        binary,
        "-t",  # keep modification times
        "--ignore-times",  # the caller decided these changed, even with equal size and mtime
        *(["--omit-dir-times"] if flavor.omit_dir_times else []),  # FUSE drives refuse folder times
        f"--timeout={IO_TIMEOUT_SECONDS}",  # a stalled destination fails instead of hanging
        f"--files-from={list_file}",
        *(["--from0"] if flavor.from0 else []),
        "--",
        # Absolute paths: a relative one with ':' would be taken for a remote host.
        os.path.abspath(job.src_root) + os.sep,
        os.path.abspath(job.dst_root) + os.sep,
    ]


def detect_flavor(runner: Runner = run, binary: str = "rsync") -> RsyncFlavor:
    """Run ``rsync --version`` on the calling thread; an unusable rsync gives an empty flavor."""
    try:
        result = runner([binary, "--version"], cancel=threading.Event(), timeout=15)
    except OSError as exc:
        logger.info("rsync is not usable: %s", exc)
        return RsyncFlavor()
    return parse_version(result.stdout) if result.returncode == 0 else RsyncFlavor()


class RsyncEngine:
    """Engine copying with an rsync binary. ``extra_args`` go before the paths (tests: --bwlimit)."""

    name = "rsync"

    def __init__(
        self,
        runner: Runner = run,
        flavor: RsyncFlavor | None = None,
        binary: str = "rsync",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._runner = runner
        self._flavor = flavor
        self._binary = binary
        self._extra_args = extra_args

    def copy(self, job: CopyJob, cancel: threading.Event) -> CopyResult:
        """Copy ``job`` with one rsync run on the calling (worker) thread.

        Every listed path ends up in exactly one of ``copied`` / ``failed``. The destination
        root is never created: if it is missing the result is DEST_MISSING.
        """
        if not job.paths:
            return CopyResult(copied=())
        if not job.src_root.is_dir():
            return _all_failed(job, FailureKind.SOURCE_MISSING, f"source folder missing: {job.src_root}")
        if not job.dst_root.is_dir():
            return _all_failed(job, FailureKind.DEST_MISSING, f"backup folder missing: {job.dst_root}")
        if self._flavor is None:
            self._flavor = detect_flavor(self._runner, self._binary)
        flavor = self._flavor
        if not flavor.has_files_from:
            return _all_failed(
                job, FailureKind.FATAL, f"{self._binary} ({flavor.name}) cannot copy a file list"
            )
        sep = "\0" if flavor.from0 else "\n"
        unlistable = {
            path: "name has a line break" for path in job.paths if not flavor.from0 and "\n" in path
        }
        listed = [path for path in job.paths if path not in unlistable]
        # "./": rsync skips list lines starting with '#' or ';' as comments, even with --from0.
        names = b"".join(b"./" + os.fsencode(path) + sep.encode() for path in listed)
        command = argv(job, STDIN, flavor, binary=self._binary)
        command[1:1] = self._extra_args
        try:
            result = self._runner(command, cancel=cancel, input=names, env={"LC_ALL": "C"})
        except OSError as exc:
            return _all_failed(job, FailureKind.FATAL, f"could not run rsync: {exc}")
        return _result(job, result.returncode, result.output, result.cancelled, unlistable)


def _result(job: CopyJob, rc: int, output: str, cancelled: bool, failed: dict[str, str]) -> CopyResult:
    issues = parse_output(output, job)
    for issue in issues:
        for path in issue.paths:
            failed.setdefault(path, issue.reason)
    kind = FailureKind.FATAL if cancelled else kind_of_run(rc, issues)
    if kind is None and any(reason not in BENIGN_REASONS for reason in failed.values()):
        kind = FailureKind.FATAL  # keep the promise: kind None means only harmless skips
    copied = []
    for path in job.paths:
        if path in failed:
            continue
        # claim only what is really at the destination: after a failed run, an older copy of a file
        # being replaced is there too, so the content must be the source's (or the one planned)
        arrived = _arrived(job, path, checked=rc != 0 or cancelled)
        if arrived is None:
            copied.append(path)
        elif arrived == CHANGED:
            failed[path] = CHANGED
        else:
            failed[path] = CANCELLED if cancelled else f"not copied (rsync exit {rc})"
            kind = kind or FailureKind.FATAL
    unexplained = [issue.reason for issue in issues if not issue.paths and issue.kind is not None]
    detail = CANCELLED if cancelled else "; ".join(unexplained[:3])
    if kind is not None:
        logger.warning("rsync exit %d (%s): %s", rc, kind.value, detail or next(iter(failed.values()), ""))
    return CopyResult(copied=tuple(copied), failed=failed, kind=kind, detail=detail)


def _arrived(job: CopyJob, path: str, *, checked: bool) -> str | None:
    """None when ``path`` is at the destination: with the content the caller planned (``job.expect``),
    else (``checked``) with the source's, else at all. ``CHANGED`` when the planned content is not there
    because the source changed since; else "missing". rsync verifies each transfer against its source, so
    only a source rewritten after the plan makes a copy that differs from it."""
    dst, src = job.dst_root / path, job.src_root / path
    want = job.expect.get(path)
    try:
        if want is not None:
            if content_of(dst, want[0]) == want:
                return None
            return CHANGED if content_of(src, want[0]) not in (None, want) else "missing"
        if not checked:
            return None if dst.is_file() else "missing"
        there = content_of(dst)
        return None if there is not None and there == content_of(src) else "missing"
    except OSError:
        return "missing"  # what cannot be read cannot be claimed


def _all_failed(job: CopyJob, kind: FailureKind, detail: str) -> CopyResult:
    return CopyResult(copied=(), failed=dict.fromkeys(job.paths, detail), kind=kind, detail=detail)
