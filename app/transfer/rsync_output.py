"""Read what rsync said: its exit code and messages, tied to the listed paths; all pure.

rsync runs under LC_ALL=C, so messages are in English and non-ASCII bytes of names are
printed as ``\\#ooo`` escapes, which are decoded here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass

from app.errors import FailureKind
from app.transfer.base import CopyJob
from app.transfer.classify import NOT_REGULAR, VANISHED, kind_for_errno, worst


@dataclass(frozen=True)
class Issue:
    """One rsync message about some listed paths (``paths`` is empty when it names none)."""

    paths: tuple[str, ...]
    reason: str
    kind: FailureKind | None  # None: a harmless skip (``reason`` is VANISHED or NOT_REGULAR)
    symptom: bool = False  # a consequence of another error (broken pipe); never decides the kind


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ERRNO = re.compile(r"\((\d+)\)\s*$")
_TEMP_NAME = re.compile(r"^\.(.+)\.[A-Za-z0-9]{6}$")
_ESCAPE = re.compile(rb"\\#([0-7]{3})")
_SENDER_WORDS = ("[sender]", "link_stat", "send_files", "read errors mapping", "file has vanished")
_SYMPTOMS = ("Broken pipe", "connection unexpectedly closed", "error in rsync protocol data stream")
_TEXT_KINDS = (
    ("No space left", FailureKind.FATAL),
    ("Disk quota exceeded", FailureKind.FATAL),
    ("Read-only file system", FailureKind.FATAL),
    ("Permission denied", FailureKind.LOCKED),
    ("Device or resource busy", FailureKind.LOCKED),
    ("Resource temporarily unavailable", FailureKind.LOCKED),
    ("Text file busy", FailureKind.LOCKED),
    ("Operation not permitted", FailureKind.LOCKED),
    ("Resource deadlock avoided", FailureKind.LOCKED),
    ("No such file or directory", FailureKind.DEST_MISSING),
    ("Not a directory", FailureKind.DEST_MISSING),
    ("Transport endpoint is not connected", FailureKind.DEST_MISSING),
    ("Stale file handle", FailureKind.DEST_MISSING),
)


def _unescape(text: str) -> str:
    # rsync prints unprintable bytes of a name as \#ooo (all non-ASCII bytes under LC_ALL=C).
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), text.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


def _kind_of(line: str, *, on_destination: bool) -> FailureKind:
    kind = next((kind for text, kind in _TEXT_KINDS if text in line), None)
    if kind is None:
        code = _ERRNO.search(line)
        return kind_for_errno(int(code.group(1)) if code else None, on_destination=on_destination)
    if kind is FailureKind.DEST_MISSING and not on_destination:
        return FailureKind.SOURCE_MISSING
    return kind


def parse_output(output: str, job: CopyJob | None = None) -> list[Issue]:
    """Every error or skip rsync reported; pure.

    With ``job``, each message is tied to the listed paths it concerns (a file, its rsync
    temp file, or every listed path under a folder) and its side is told by its path;
    without, the side is told by rsync's words (``[sender]``, ``link_stat``...).
    """
    listed = set(job.paths) if job else set()
    src = os.path.abspath(job.src_root) + os.sep if job else None
    dst = os.path.abspath(job.dst_root) + os.sep if job else ""
    issues = []
    for raw_line in output.splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("rsync error:", "rsync warning:", "***")):
            continue
        quoted = _QUOTED.search(line)
        where = _unescape(quoted.group(1)) if quoted else ""
        if src is None:
            on_destination = not any(word in line for word in _SENDER_WORDS)
        else:
            on_destination = not where.startswith(src)
        root = dst if on_destination else src or ""
        rel = "" if where.rstrip(os.sep) + os.sep == root else where.removeprefix(root)
        paths = _listed_under(rel.rstrip("/"), listed) if quoted and listed else ()
        if line.startswith("skipping non-regular file"):
            issues.append(Issue(paths, NOT_REGULAR, None))
        elif line.startswith("file has vanished") or (not on_destination and "No such file" in line):
            issues.append(Issue(paths, VANISHED, None))
        elif line.startswith("rsync:") or "failed" in line or "error" in line.lower():
            kind = _kind_of(line, on_destination=on_destination)
            reason = f"{kind.value}: " + re.sub(r"^rsync:\s*(\[\w+\]\s*)?", "", line)
            issues.append(Issue(paths, reason, kind, symptom=any(text in line for text in _SYMPTOMS)))
    return issues


def _listed_under(rel: str, listed: Collection[str]) -> tuple[str, ...]:
    """The listed paths a message path means: itself, its temp file, or everything below a folder."""
    if rel in listed:
        return (rel,)
    folder, _, name = rel.rpartition("/")
    temp = _TEMP_NAME.match(name)
    if temp and (real := f"{folder}/{temp.group(1)}" if folder else temp.group(1)) in listed:
        return (real,)
    if rel in ("", "."):
        return tuple(sorted(listed))
    return tuple(sorted(path for path in listed if path.startswith(rel + "/")))


def classify(returncode: int, output: str, job: CopyJob | None = None) -> FailureKind | None:
    """Why rsync failed, from its exit code and messages; pure.

    None when every listed file was copied or harmlessly skipped (exit 24, or exit 23 whose
    only messages are vanished / non-regular source files). ``job`` makes the side of each
    message exact (see ``parse_output``).
    """
    return kind_of_run(returncode, parse_output(output, job))


def kind_of_run(returncode: int, issues: list[Issue]) -> FailureKind | None:
    """The exit-code table applied to already parsed messages; see ``classify``."""
    if returncode in (0, 24):
        return None
    if returncode in (30, 35):  # I/O timeout: the destination stalled (e.g. a busy Drive)
        return FailureKind.LOCKED
    if returncode not in (3, 11, 12, 23):  # 20: signal; 1, 2, 4, 5...: misuse or protocol
        return FailureKind.FATAL
    if returncode == 23 and issues and all(issue.kind is None for issue in issues):
        return None
    return worst(issue.kind for issue in issues if not issue.symptom) or FailureKind.FATAL
