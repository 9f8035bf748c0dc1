"""macOS: a per-user LaunchAgent, ``~/Library/LaunchAgents/<label>.plist``, run at login."""

from __future__ import annotations

import plistlib
from collections.abc import Sequence
from pathlib import Path

from app import APP_NAME
from app.platform.autostart_files import remove_entry, write_entry

LABEL = f"com.github.{APP_NAME}"


def launch_agent_plist(argv: Sequence[str], label: str = LABEL) -> bytes:
    """The LaunchAgent's XML plist: starts ``argv`` once at login, in the GUI session only."""
    agent = {
        "Label": label,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": False,  # Quit in the tray must stay quit until the next login
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",  # a tray icon needs the user's desktop session
    }
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)


class LaunchAgent:
    """A LaunchAgent plist in ``folder``; enabled means the file exists (launchd reads it at login)."""

    supported = True

    def __init__(self, folder: Path, command: Sequence[str]) -> None:
        self.path = folder / f"{LABEL}.plist"
        self._command = list(command)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def command(self) -> list[str]:
        return list(self._command)

    def is_enabled(self) -> bool:
        return self.path.is_file()

    def enable(self) -> None:
        write_entry(self.path, launch_agent_plist(self._command))

    def disable(self) -> None:
        remove_entry(self.path)
