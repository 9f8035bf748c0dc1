"""Read what robocopy said without depending on its words; all pure.

robocopy's own words ("ERROR", "Copying File", "Waiting 2 seconds... Retrying...") come from its ``.mui``
resources, and the message after each error from the system (``FormatMessage``), both in the Windows display
language: a German system prints ``FEHLER 32 (0x00000020) Datei wird kopiert C:\\...``. What stays the same in
every language decides here: the exit code (robocopy's table, Microsoft Learn "robocopy": below 8 nothing
failed, 8 some copies failed, 16 a fatal error), the Windows system error number robocopy prints twice (in
decimal, then as ``(0x%08X)``), the path (a folder's ends in a backslash) and which folder of the run it is
in. The English words are only a hint where the path cannot tell. The engine then checks every copy on
disk, and that check has the last word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PureWindowsPath

from app.errors import FailureKind
from app.transfer.classify import VANISHED, worst

# Windows system error codes (Microsoft Learn, "System Error Codes (0-499)" and "(1000-1299)").
_LOCKED_CODES = frozenset({5, 32, 33})  # access denied, sharing violation, lock violation: Drive holds it
_NOT_FOUND_CODES = frozenset({2, 3})  # file not found, path not found
_UNREACHABLE_CODES = frozenset({21, 53, 67, 1231})  # drive not ready, network path or name gone


@dataclass(frozen=True)
class RoboError:
    """The last error robocopy reported for a path, and whether it gave up on it."""

    code: int  # the Windows system error code
    action: str  # robocopy's words for what it was doing, in the display language: shown, never decisive
    path: str
    message: str  # the system's text for ``code``, in the display language: shown only
    final: bool  # False: robocopy tried that path again afterwards
    source_side: bool  # the path is on the run's source side: not found there means it vanished

    @property
    def is_directory(self) -> bool:
        return self.path.endswith("\\")

    @property
    def kind(self) -> FailureKind | None:
        """LOCKED / DEST_MISSING / FATAL, or None when the source file or folder vanished."""
        if self.code in _LOCKED_CODES:
            return FailureKind.LOCKED
        if self.code in _NOT_FOUND_CODES:
            return None if self.source_side else FailureKind.DEST_MISSING
        if self.code in _UNREACHABLE_CODES:
            return FailureKind.DEST_MISSING
        return FailureKind.FATAL  # 112 disk full, 87 invalid parameter, ...

    @property
    def reason(self) -> str:
        if self.kind is None:
            return VANISHED
        return f"{self.kind.value}: ERROR {self.code} {self.action}: {self.message}".rstrip(": ")


# "<timestamp> <word> <n> (0x<n in hex>) <action words> <path>"; the path starts with a drive or \\server.
_ERROR_LINE = re.compile(r"(?:^|\s)(\d+) \(0x([0-9A-Fa-f]{8})\) (.*?) ?((?:[A-Za-z]:\\|\\\\).*)$")
# With /BYTES: "<class words> <tabs> <size in bytes> <tab> <name>".
_FILE_LINE = re.compile(r"^(.*?)\t+\s*(\d+)\t(.+)$")


def _error_line(line: str) -> tuple[int, str, str] | None:
    """(code, action, path) of one of robocopy's error lines: the two spellings of the number must agree."""
    match = _ERROR_LINE.search(line)
    if match is None or int(match.group(1)) != int(match.group(2), 16):
        return None
    return int(match.group(1)), match.group(3).strip(), match.group(4)


def file_line_name(line: str) -> str | None:
    """The file name of one of robocopy's file lines (any language), else None."""
    match = _FILE_LINE.match(line.strip())
    return match.group(3) if match else None


def parse_errors(output: str, source: str | None = None) -> list[RoboError]:
    """The errors in robocopy's output, the last one per path, in order. ``source``: the run's source
    folder, which tells a folder error on the source side from one on the destination side."""
    lines = [line.strip() for line in output.splitlines()]
    last_file_line: dict[str, int] = {}
    for index, line in enumerate(lines):
        name = file_line_name(line)
        if name is not None:
            last_file_line[name.casefold()] = index
    found: dict[str, RoboError] = {}
    for index, line in enumerate(lines):
        parsed = _error_line(line)
        if parsed is None:
            continue
        code, action, path = parsed
        following = [text for text in lines[index + 1 : index + 4] if text]
        # The line after an error is the system's message for it; English output then says it retries.
        message = following[0] if following and _error_line(following[0]) is None else ""
        hinted = any(text.startswith("Waiting") and "Retrying" in text for text in following[:2])
        # A later file line for the same file: robocopy tried it again (its retries print the file anew).
        again = last_file_line.get(PureWindowsPath(path).name.casefold(), -1) > index
        side = _source_side(code, path, action, source)
        found.pop(path.casefold(), None)  # keep insertion order = order of the last report
        found[path.casefold()] = RoboError(code, action, path, message, not (hinted or again), side)
    return list(found.values())


def _source_side(code: int, path: str, action: str, source: str | None) -> bool:
    if not path.endswith("\\"):
        # A file's error names the source file robocopy was copying: "not found" means it is gone.
        return code == 2
    if source is not None:
        return _inside(path, source)
    return "Source" in action  # no folder to compare with: the English words are all there is


def _inside(path: str, folder: str) -> bool:
    """Whether Windows path ``path`` is ``folder`` or inside it (compared without case, as NTFS does)."""
    parts = [p.casefold() for p in PureWindowsPath(path).parts]
    top = [p.casefold() for p in PureWindowsPath(folder).parts]
    return parts[: len(top)] == top


def classify(returncode: int, output: str, *, source: str | None = None) -> FailureKind | None:
    """Outcome of one robocopy run from its exit code and output (``source``: see ``parse_errors``)."""
    return kind_of_run(returncode, [error for error in parse_errors(output, source) if error.final])


def kind_of_run(returncode: int, final: list[RoboError]) -> FailureKind | None:
    """Outcome of one robocopy run: exit 0-7 is success (bits: 1 copied, 2 extra, 4 mismatch); 8 means
    some copies failed and 16 a fatal error, and the errors robocopy gave up on say why."""
    if returncode < 8:
        return None
    if final and all(error.kind is None for error in final):
        return None  # only source files or folders that vanished
    return worst(error.kind for error in final) or FailureKind.FATAL
