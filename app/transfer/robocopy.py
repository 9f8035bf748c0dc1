"""Copy with robocopy (Windows): a pure command builder and the engine; ``robocopy_output`` reads its output.

robocopy copies named files of one folder and writes straight into the final name, so it
copies into a private ``.incoming-<pid>`` folder under the destination root (same volume)
and each finished file is then moved into place with ``os.replace``, which is atomic. A copy is
moved only when its size and sha256 are those planned for it (its source's, when no plan says), and
nothing of a cancelled run is moved at all: a robocopy stopped mid-file leaves a partial copy and exits
with code 1, robocopy's "files were copied".
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from app.errors import FailureKind
from app.fsutil import Content, content_of, make_private_dirs
from app.transfer.base import INCOMING_PREFIX, CopyJob, CopyResult
from app.transfer.classify import CANCELLED, CHANGED, VANISHED, kind_for_oserror, worst
from app.transfer.robocopy_output import RoboError, classify, kind_of_run, parse_errors
from app.transfer.runner import Runner, run

__all__ = [
    "FLAGS",
    "INCOMING_PREFIX",
    "RoboError",
    "RobocopyEngine",
    "argv",
    "batches",
    "classify",
    "parse_errors",
]

logger = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 30_000  # CreateProcess allows 32,767; leave room for the program path

FLAGS = (
    "/R:2",  # retry a failed copy twice (default: a million) so a lock cannot stall the worker
    "/W:2",  # wait 2 s between retries (default: 30 s)
    "/FFT",  # compare times at 2 s (FAT) granularity: Google Drive's virtual drive rounds mtimes
    "/XJ",  # never follow junction points out of opencode's folder (or into a loop)
    "/COPY:DT",  # data and times only: a read-only attribute would block the later os.replace
    "/NP",  # no percentage progress; it is written with carriage returns into the lines we parse
    "/NJH",  # no job header ...
    "/NJS",  # ... and no job summary: only file and error lines are left to parse
    "/NDL",  # no folder lines (there is one robocopy call per folder)
    "/BYTES",  # sizes as plain byte counts rather than locale-formatted '1.2 m'
)


def argv(src_dir: Path, dst_dir: Path, names: Sequence[str], *, binary: str = "robocopy") -> list[str]:
    """The robocopy command copying ``names`` (plain file names) from ``src_dir`` to ``dst_dir``; pure."""
    return [binary, str(src_dir), str(dst_dir), *names, *FLAGS]


def batches(
    src_dir: Path,
    dst_dir: Path,
    names: Sequence[str],
    *,
    binary: str = "robocopy",
    limit: int = MAX_COMMAND_CHARS,
) -> list[list[str]]:
    """Split ``names`` into groups whose command line stays within ``limit`` characters; pure."""
    base = len(subprocess.list2cmdline(argv(src_dir, dst_dir, [], binary=binary)))
    groups: list[list[str]] = []
    current: list[str] = []
    size = base
    for name in names:
        extra = len(subprocess.list2cmdline([name])) + 1
        if current and size + extra > limit:
            groups.append(current)
            current, size = [], base
        current.append(name)
        size += extra
    if current:
        groups.append(current)
    return groups


class RobocopyEngine:
    """Engine copying with robocopy.exe, one call per folder (and per ~30,000 characters of names)."""

    name = "robocopy"

    def __init__(self, runner: Runner = run, binary: str = "robocopy") -> None:
        self._runner = runner
        self._binary = binary

    def copy(self, job: CopyJob, cancel: threading.Event) -> CopyResult:
        """Copy ``job`` on the calling (worker) thread; every listed path ends in ``copied`` or
        ``failed``. The destination root is never created; the incoming folder is removed."""
        if not job.src_root.is_dir():
            return _stop(job, _Tally(), FailureKind.SOURCE_MISSING, f"source folder missing: {job.src_root}")
        if not job.dst_root.is_dir():
            return _stop(job, _Tally(), FailureKind.DEST_MISSING, f"backup folder missing: {job.dst_root}")
        incoming = job.dst_root / f"{INCOMING_PREFIX}{os.getpid()}"
        shutil.rmtree(incoming, ignore_errors=True)
        tally = _Tally()
        try:
            for folder, names in _by_folder(job.paths).items():
                for group in batches(job.src_root / folder, incoming / folder, names, binary=self._binary):
                    if cancel.is_set():
                        return _stop(job, tally, FailureKind.FATAL, CANCELLED)
                    stop = self._copy_group(job, incoming, folder, group, cancel=cancel, tally=tally)
                    if stop is not None:
                        return _stop(job, tally, *stop)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        return CopyResult(copied=tuple(tally.copied), failed=tally.failed, kind=worst(tally.kinds))

    def _copy_group(
        self,
        job: CopyJob,
        incoming: Path,
        folder: str,
        group: list[str],
        *,
        cancel: threading.Event,
        tally: _Tally,
    ) -> tuple[FailureKind, str] | None:
        """Run robocopy once and move its checked copies into place; a (kind, detail) means stop the run."""
        src_dir, tmp_dir = job.src_root / folder, incoming / folder
        try:
            result = self._runner(argv(src_dir, tmp_dir, group, binary=self._binary), cancel=cancel)
        except OSError as exc:
            return FailureKind.FATAL, f"could not run robocopy: {exc}"
        if result.cancelled:
            # Stopped mid-file it leaves a partial copy and exits 1 ("files were copied"): move nothing.
            return FailureKind.FATAL, CANCELLED
        errors = [error for error in parse_errors(result.output, str(src_dir)) if error.final]
        outcome = _Outcome(result.returncode, kind_of_run(result.returncode, errors), errors)
        stops: list[tuple[FailureKind, str]] = []
        for name in group:
            rel = f"{folder}/{name}" if folder else name
            reason, kind = _place(
                src_dir / name, tmp_dir / name, job.dst_root / rel, job.expect.get(rel), outcome
            )
            tally.add(rel, reason, kind)
            if reason is not None and kind in (FailureKind.DEST_MISSING, FailureKind.FATAL):
                stops.append((kind, reason))
        worse = worst(kind for kind, _ in stops)
        return next((stop for stop in stops if stop[0] is worse), None)


@dataclass(frozen=True)
class _Outcome:
    """One robocopy run: exit code, its classification and the errors it gave up on."""

    returncode: int
    kind: FailureKind | None
    errors: list[RoboError]


@dataclass
class _Tally:
    """What one engine run has done so far (owned by the worker thread)."""

    copied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    kinds: list[FailureKind | None] = field(default_factory=list)

    def add(self, rel: str, reason: str | None, kind: FailureKind | None) -> None:
        if reason is None:
            self.copied.append(rel)
        else:
            self.failed[rel] = reason
            self.kinds.append(kind)


def _place(
    src: Path, copy: Path, final: Path, planned: Content | None, outcome: _Outcome
) -> tuple[str | None, FailureKind | None]:
    """Move robocopy's copy of one file into place if it holds what was planned (without a plan: what its
    source holds now): (None, None) on success, else (reason, kind). The files decide; robocopy's output
    only explains a file that is not there."""
    want = planned if planned is not None else _readable(src)
    if want is not None:
        try:
            if content_of(copy, want[0]) == want:
                os_error = _move(copy, final)
                return (None, None) if os_error is None else _refused(final, os_error)
        except OSError as exc:  # the copy is held (Google Drive or a virus scanner reading it): later
            return _refused(final, exc)
    if not src.exists():
        return VANISHED, None  # robocopy silently copies nothing when no file matches
    if planned is not None and _readable(src, planned[0]) not in (None, planned):
        return CHANGED, None  # opencode rewrote it since the plan: the next scan plans it again
    name = src.name.casefold()
    mine = [e for e in outcome.errors if e.is_directory or PureWindowsPath(e.path).name.casefold() == name]
    if mine:
        return mine[-1].reason, mine[-1].kind
    # No error line tied to this name (none printed, or an OEM-mangled name): blame the run.
    return f"not copied (robocopy exit {outcome.returncode})", outcome.kind or FailureKind.FATAL


def _move(copy: Path, final: Path) -> OSError | None:
    """``os.replace`` a checked copy over its final name (atomic, same volume); the error if it failed."""
    try:
        make_private_dirs(final.parent)
        os.replace(copy, final)
    except OSError as exc:
        return exc
    return None


def _refused(final: Path, exc: OSError) -> tuple[str, FailureKind]:
    kind = kind_for_oserror(exc, on_destination=True)
    logger.warning("could not check or move %s into place (%s): %s", final, kind.value, exc)
    return f"{kind.value}: {exc.strerror or exc}", kind


def _readable(src: Path, size: int | None = None) -> Content | None:
    """The source's content, None when it is gone or cannot be read (robocopy's output then says why)."""
    try:
        return content_of(src, size)
    except OSError:
        return None


def _by_folder(paths: Sequence[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        folders.setdefault(folder, []).append(name)
    return folders


def _stop(job: CopyJob, tally: _Tally, kind: FailureKind, detail: str) -> CopyResult:
    """Result of a run that stopped early: every path not done is failed with ``detail``."""
    done = set(tally.copied) | tally.failed.keys()
    rest = {path: detail for path in job.paths if path not in done}
    return CopyResult(copied=tuple(tally.copied), failed={**tally.failed, **rest}, kind=kind, detail=detail)
