"""What a tool call is given and what it answers, shared by the server, the tool table and the actions."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from app.safe_text import clean_lines


class UnknownTool(LookupError):
    """No tool has this name (a JSON-RPC error, not a tool result)."""


@dataclass(frozen=True)
class ToolResult:
    """What a tool answers: plain text, and whether it is an error the model should relay."""

    text: str
    is_error: bool = False

    def to_json(self) -> dict[str, Any]:
        """The MCP result; its text made inert (it quotes titles and errors, and opencode shows it on a
        terminal)."""
        return {"content": [{"type": "text", "text": clean_lines(self.text)}], "isError": self.is_error}


class CallContext(Protocol):
    """What a running tool call may use; the handler runs on the call's own thread."""

    @property
    def cancel(self) -> threading.Event:
        """Set when the client cancelled the call or went away."""
        ...

    def progress(self, message: str) -> None:
        """Tell the client what the call is doing now (any thread; a no-op without a progress token)."""
        ...
