"""Copy with robocopy (Windows): pure command builder and output parser, and the engine.

robocopy copies named files of one folder and writes straight into the final name, so it
copies into a private ``.incoming-<pid>`` folder under the destination root (same volume)
and each finished file is then moved into place with ``os.replace``, which is atomic.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from app.errors import FailureKind
from app.fsutil import make_private_dirs
from app.transfer.base import INCOMING_PREFIX, CopyJob, CopyResult
from app.transfer.classify import CANCELLED, VANISHED, kind_for_oserror, worst
from app.transfer.runner import Runner, run

logger = logging.getLogger(__name__)

"""Folders named like this under the destination root are robocopy's scratch space: ignore them."""

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


@dataclass(frozen=True)
class RoboError:
    """The last ``ERROR n`` robocopy reported for a path, and whether it gave up on it."""

    code: int
    action: str  # "Copying File", "Creating Destination Directory", ...
    path: str
    message: str
    final: bool  # False: robocopy said 'Retrying...' after it

    @property
    def is_directory(self) -> bool:
        return self.action.endswith("Directory")

    @property
    def kind(self) -> FailureKind | None:
        """LOCKED / DEST_MISSING / FATAL, or None when the source file or folder vanished."""
        if self.code in (5, 32, 33):  # access denied, sharing violation, lock violation
            return FailureKind.LOCKED
        if self.code in (2, 3):  # file / path not found
            source_side = "Source" in self.action or (self.code == 2 and self.action == "Copying File")
            return None if source_side else FailureKind.DEST_MISSING
        if self.code in (21, 53, 67, 1231):  # drive not ready, network path gone
            return FailureKind.DEST_MISSING
        return FailureKind.FATAL  # 112 disk full, 87 invalid parameter, ...

    @property
    def reason(self) -> str:
        if self.kind is None:
            return VANISHED
        return f"{self.kind.value}: ERROR {self.code} {self.action}: {self.message}"


_ERROR = re.compile(
    # date time ERROR code (hex) action path; the path starts with a drive letter or \\server
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ERROR (\d+) \(0x[0-9A-Fa-f]+\) (.+?) ((?:[A-Za-z]:|\\\\).*)$"
)


def parse_errors(output: str) -> list[RoboError]:
    """The errors in robocopy's output, the last one per path, in order; pure."""
    found: dict[str, RoboError] = {}
    lines = [line.strip() for line in output.splitlines()]
    for index, line in enumerate(lines):
        match = _ERROR.match(line)
        if match is None:
            continue
        following = [text for text in lines[index + 1 : index + 4] if text]
        message = following[0] if following and not following[0].startswith("Waiting") else ""
        retried = any(text.startswith("Waiting") and "Retrying" in text for text in following[:2])
        code, action, path = int(match.group(1)), match.group(2), match.group(3)
        found.pop(path.casefold(), None)  # keep insertion order = order of the last report
        found[path.casefold()] = RoboError(code, action, path, message, final=not retried)
    return list(found.values())


def classify(returncode: int, output: str) -> FailureKind | None:
    """Outcome of one robocopy run; pure. Exit 0-7 is success (bits: 1 copied, 2 extra,
    4 mismatch); 8 means some copies failed and 16 a fatal error: the errors say why."""
    if returncode < 8:
        return None
    final = [error for error in parse_errors(output) if error.final]
    if final and all(error.kind is None for error in final):
        return None  # only source files that vanished
    return worst(error.kind for error in final) or FailureKind.FATAL


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
        """Run robocopy once and move its copies into place; a (kind, detail) means stop the run."""
        src_dir, tmp_dir = job.src_root / folder, incoming / folder
        try:
            result = self._runner(argv(src_dir, tmp_dir, group, binary=self._binary), cancel=cancel)
        except OSError as exc:
            return FailureKind.FATAL, f"could not run robocopy: {exc}"
        errors = [error for error in parse_errors(result.output) if error.final]
        outcome = _Outcome(result.returncode, classify(result.returncode, result.output), errors)
        for name in group:
            rel = f"{folder}/{name}" if folder else name
            tally.add(rel, *_place(src_dir / name, tmp_dir / name, job.dst_root / rel, outcome))
        if result.cancelled:
            return FailureKind.FATAL, CANCELLED
        if outcome.kind in (FailureKind.DEST_MISSING, FailureKind.FATAL):
            return outcome.kind, errors[0].reason if errors else f"robocopy exit {result.returncode}"
        return None


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


def _place(src: Path, copy: Path, final: Path, outcome: _Outcome) -> tuple[str | None, FailureKind | None]:
    """Move robocopy's copy of one file into place: (None, None) on success, else (reason, kind)."""
    name = src.name.casefold()
    mine = [e for e in outcome.errors if e.is_directory or PureWindowsPath(e.path).name.casefold() == name]
    if mine:
        return mine[-1].reason, mine[-1].kind
    if not _trusted(src, copy, outcome.returncode):
        if not src.exists():
            return VANISHED, None  # robocopy silently copies nothing when no file matches
        # An error line we could not tie to this name (e.g. an OEM-mangled name): blame the run.
        return f"not copied (robocopy exit {outcome.returncode})", outcome.kind or FailureKind.FATAL
    try:
        make_private_dirs(final.parent)
        os.replace(copy, final)
    except OSError as exc:
        kind = kind_for_oserror(exc, on_destination=True)
        logger.warning("could not move %s into place (%s): %s", final, kind.value, exc)
        return f"{kind.value}: {exc.strerror or exc}", kind
    return None, None


def _trusted(src: Path, copy: Path, rc: int) -> bool:
    """Whether robocopy's copy is complete. After a failed run (exit >= 8) a copy without an
    error line may still be partial, so it must be as long as its source."""
    try:
        return copy.is_file() and (rc < 8 or copy.stat().st_size == src.stat().st_size)
    except OSError:
        return False


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
