"""macOS: a per-user LaunchAgent, ``~/Library/LaunchAgents/<label>.plist``, run at login."""

from __future__ import annotations

import plistlib
from collections.abc import Sequence
from pathlib import Path

from app import APP_NAME
from app.platform.autostart_files import FileEntry

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


class LaunchAgent(FileEntry):
    """A LaunchAgent plist in ``folder``; enabled means the file exists (launchd reads it at login)."""

    def __init__(self, folder: Path, command: Sequence[str]) -> None:
        super().__init__(folder / f"{LABEL}.plist", command)

    def content(self) -> bytes:
        return launch_agent_plist(self._command)
