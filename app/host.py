"""The system this process runs on: the one place ``sys.platform`` is read, and what follows from it.

Code that depends on the system asks :data:`HOST` what it can do (which engine copies, how a flush reaches
the disk, how start at login works, which program opens a folder) instead of testing the system's name;
tests build other :class:`Host` values. tests/test_layers.py fails on a read of ``sys.platform`` anywhere
else. Calls that exist on one system only are reached through ``getattr`` where they are used, so each
platform's type check (``mypy --platform win32|darwin``) sees the same code.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final

# Windows' process creation flag for a console program started without a console window (winbase.h)
CREATE_NO_WINDOW: Final = 0x08000000


@dataclass(frozen=True)
class Host:
    """A system, named as ``sys.platform`` spells it (``linux``, ``darwin``, ``win32``, ``freebsd14``...)."""

    platform: str

    @property
    def windows(self) -> bool:
        return self.platform == "win32"

    @property
    def macos(self) -> bool:
        return self.platform == "darwin"

    @property
    def linux(self) -> bool:
        return self.platform.startswith("linux")

    @property
    def posix(self) -> bool:
        return not self.windows

    @property
    def engine(self) -> str:
        """The outside copy engine ``auto`` prefers: robocopy on Windows, rsync elsewhere."""
        return "robocopy" if self.windows else "rsync"

    @property
    def flush(self) -> str:
        """How a file's data reaches the disk: ``barrier`` (macOS: fsync leaves it in the drive's cache,
        in any order, so each flush is F_BARRIERFSYNC and a commit F_FULLFSYNC) or ``fsync``."""
        return "barrier" if self.macos else "fsync"

    @property
    def syncfs(self) -> bool:
        """One call writes back a whole file system (Linux's syncfs)."""
        return self.linux

    @property
    def fsync_needs_write(self) -> bool:
        """A file must be open for writing to be flushed (Windows' FlushFileBuffers)."""
        return self.windows

    @property
    def autostart(self) -> str | None:
        """How an app starts at login: ``registry`` (the Run key), ``launchd`` (a LaunchAgent), ``xdg`` (an
        autostart .desktop entry), or None where none is known."""
        if self.windows:
            return "registry"
        if self.macos:
            return "launchd"
        return "xdg" if self.linux or self.platform.startswith("freebsd") else None

    @property
    def opener(self) -> str:
        """How a folder is opened in the file manager: ``startfile`` (Windows' shell), else the program."""
        return "startfile" if self.windows else "open" if self.macos else "xdg-open"

    @property
    def desktop_from_env(self) -> bool:
        """Whether a desktop exists only when DISPLAY or WAYLAND_DISPLAY says so (X11 and Wayland)."""
        return self.linux or self.platform.startswith("freebsd")

    @property
    def who_has_a_file(self) -> str:
        """How to tell who holds a file open: ``exclusive-open`` (Windows: a process's open files cannot
        be listed reliably) or ``open-files`` (psutil's listing)."""
        return "exclusive-open" if self.windows else "open-files"

    @property
    def trims_heap(self) -> bool:
        """glibc's malloc_trim gives freed heap pages back."""
        return self.linux

    @property
    def process_groups(self) -> bool:
        """A child can get a process group of its own and be signalled as one (POSIX)."""
        return self.posix


HOST: Final = Host(sys.platform)
