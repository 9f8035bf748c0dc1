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

    def enabled(self) -> bool:
        try:
            return agent_config.read(self.config_dir, agent_config.mcp_command()).enabled
        except BackupError:
            return False

    def switch(self, on: bool) -> None:
        change = agent_config.enable if on else agent_config.disable
        change(self.config_dir, agent_config.mcp_command())
