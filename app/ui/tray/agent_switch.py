"""The tray's Agent tools in opencode check item: this install's MCP server in opencode's global config
(app.opencode.agent_config), behind a small protocol that tests replace. Runs on the tray's thread."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from app import paths
from app.errors import BackupError
from app.opencode import agent_config


class AgentTools(Protocol):
    """The agent tools' entry in opencode's config (app.opencode.agent_config)."""

    def enabled(self) -> bool: ...

    def switch(self, on: bool) -> None: ...


class OpencodeConfigSwitch:
    """The real :class:`AgentTools`: this install's MCP server in opencode's global config."""

    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = config_dir or paths.opencode_config_dir()

    def folders(self) -> list[Path]:
        """opencode's config folder, and opencode 2.0's own where there is one."""
        second = paths.opencode2_config_dir()
        return [self.config_dir] if second is None else [self.config_dir, second]

    def enabled(self) -> bool:
        try:
            return agent_config.apply("status", self.folders(), agent_config.mcp_command()).state.enabled
        except BackupError:
            return False

    def switch(self, on: bool) -> None:
        agent_config.apply("enable" if on else "disable", self.folders(), agent_config.mcp_command())
