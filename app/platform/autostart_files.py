"""What the file-based autostart backends (XDG, LaunchAgent) share: an entry file that exists or not."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from app.platform.autostart_base import AutostartError


def write_entry(path: Path, data: bytes) -> None:
    """Create the folder if needed and replace ``path`` with ``data`` atomically (mode 0644)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AutostartError(f"cannot write {path}: {exc.strerror or exc}") from exc


def remove_entry(path: Path) -> None:
    """Delete ``path``; a missing file is fine."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise AutostartError(f"cannot remove {path}: {exc.strerror or exc}") from exc


class FileEntry:
    """An autostart entry that is one file at ``path``; enabled means the file exists.

    Subclasses say what the file holds (``content``).
    """

    supported = True

    def __init__(self, path: Path, command: Sequence[str]) -> None:
        self.path = path
        self._command = list(command)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def command(self) -> list[str]:
        return list(self._command)

    def content(self) -> bytes:
        raise NotImplementedError

    def is_enabled(self) -> bool:
        return self.path.is_file()

    def enable(self) -> None:
        write_entry(self.path, self.content())

    def disable(self) -> None:
        remove_entry(self.path)
