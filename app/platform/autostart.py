"""Start at login: one interface, one factory, a backend per OS (imported lazily) and a do-nothing fallback.

The entry starts the tray app (``opencode-backup run``) with the command this install answers to:
a frozen build's own executable, else the console script on ``PATH``, else ``python -m app``.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Protocol, cast

from app import assets, paths
from app.platform.autostart_base import AutostartError

__all__ = ["AutostartError", "for_platform", "launch_command"]

logger = logging.getLogger(__name__)

RUN_ARGS: tuple[str, ...] = ("run",)
SCRIPT_NAME = "opencode-backup"
GUI_SCRIPT_NAME = "opencode-backup-tray"  # Windows: the same entry point without a console window


class Autostart(Protocol):
    """Turns start-at-login on and off for the current user; every call is quick and synchronous."""

    @property
    def supported(self) -> bool:
        """False only for the fallback: enable() then raises AutostartError."""
        ...

    @property
    def location(self) -> str:
        """Where the entry lives (a file path or a registry value), for the user to see."""
        ...

    @property
    def command(self) -> list[str]:
        """The argv the entry starts."""
        ...

    def is_enabled(self) -> bool:
        """True when the entry exists now."""
        ...

    def enable(self) -> None:
        """Create or overwrite the entry (idempotent); raises AutostartError on failure."""
        ...

    def disable(self) -> None:
        """Remove the entry if present (idempotent); raises AutostartError on failure."""
        ...


class Unsupported:
    """The fallback where no backend exists: never enabled, and says so when asked to enable."""

    supported = False

    def __init__(self, platform: str, command: list[str]) -> None:
        self.platform = platform
        self._command = list(command)

    @property
    def location(self) -> str:
        return ""

    @property
    def command(self) -> list[str]:
        return list(self._command)

    def is_enabled(self) -> bool:
        return False

    def enable(self) -> None:
        raise AutostartError(f"start at login is not supported on this platform ({self.platform})")

    def disable(self) -> None:
        """Nothing can be enabled here, so there is nothing to remove."""


def launch_command(
    *,
    frozen: bool,
    executable: str,
    which: Callable[[str, str | None], str | None],
    windows: bool = False,
    args: tuple[str, ...] = RUN_ARGS,
    cwd: str | None = None,
) -> list[str]:
    """The argv that starts the tray app from this install (another command with ``args``); its program
    is named by an absolute path, since a login entry runs from another current directory.

    A frozen build starts its own executable; else the console script beside the interpreter (this
    venv's), else the one on PATH, else ``<python> -m app``. ``which(name, folder)`` searches ``folder``
    (None: PATH); a relative answer is taken from ``cwd`` (default: the current directory), where
    Python 3.11's ``shutil.which`` looks first on Windows. On Windows the tray starts through the GUI
    script (and ``pythonw``), so no console window opens at login, and a frozen build starts the windowed
    tray executable beside the console one it may be running as; any other command (the agent tools' MCP
    server talks over stdio) starts through the console one.
    """
    flavour = PureWindowsPath if windows else PurePosixPath
    here = flavour(os.getcwd() if cwd is None else cwd)

    def found(name: str, where: str | None) -> str | None:
        answer = which(name, where)
        return str(here / answer) if answer else None  # an absolute answer stays as it is

    folder = str(flavour(executable).parent)
    gui = windows and args == RUN_ARGS
    if frozen:
        own = found(GUI_SCRIPT_NAME if gui else SCRIPT_NAME, folder) if windows else None
        return [own or executable, *args]
    names = (GUI_SCRIPT_NAME, SCRIPT_NAME) if gui else (SCRIPT_NAME,)
    for name in names:
        script = found(name, folder) or found(name, None)
        if script:
            return [script, *args]
    if gui:
        executable = found("pythonw", folder) or executable
    return [executable, "-m", "app", *args]


def current_launch_command() -> list[str]:
    """:func:`launch_command` for this process."""
    return launch_command(
        frozen=bool(getattr(sys, "frozen", False)),
        executable=sys.executable,
        which=lambda name, folder: shutil.which(name, path=folder),
        windows=paths.current_platform() == "win32",
    )


def default_icon() -> str:
    """The app's icon (package data) as an absolute path, or a themed icon name when the file is missing."""
    path = assets.app_icon_png()
    return str(path.absolute()) if path.is_file() else "drive-harddisk"


def for_platform(
    platform: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    command: list[str] | None = None,
) -> Autostart:
    """The backend for ``platform`` (default: this one); the only place the platform is decided."""
    platform = paths.current_platform() if platform is None else platform
    env = os.environ if env is None else env
    command = current_launch_command() if command is None else command
    if platform.startswith("linux") or platform.startswith("freebsd"):
        from app.platform.autostart_xdg import XdgAutostart, autostart_dir  # noqa: PLC0415 - one backend per system, imported where it runs

        return XdgAutostart(autostart_dir(env, paths.home_dir(env, platform)), command, default_icon())
    if platform == "darwin":
        from app.platform.autostart_mac import LaunchAgent  # noqa: PLC0415 - one backend per system, imported where it runs

        return LaunchAgent(paths.home_dir(env, platform) / "Library" / "LaunchAgents", command)
    if platform == "win32":
        from app.platform.autostart_win import RunKeyAutostart, WinReg  # noqa: PLC0415 - one backend per system, imported where it runs

        # imported by name so mypy on other platforms never sees winreg's win32-only stubs
        return RunKeyAutostart(cast(WinReg, importlib.import_module("winreg")), command)
    logger.info("start at login: no backend for %s", platform)
    return Unsupported(platform, command)
