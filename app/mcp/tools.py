"""The three agent tools: names, JSON schemas, argument checks, and the call into the engine.

opencode shows them to the model as ``session_backup_status``, ``session_backup_sync`` and
``session_backup_restore`` (its server key ``session_backup`` + ``_`` + the name here). Listing them
costs nothing; :mod:`app.mcp.actions`, and with it the engine, is imported on the first call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.mcp.calls import CallContext, ToolResult, UnknownTool

STATUS = "status"
SYNC = "sync"
RESTORE = "restore"
MAX_SESSIONS = 200  # ids in one restore call; a model listing more is better served by the default


@dataclass(frozen=True)
class ToolSpec:
    """One tool as ``tools/list`` shows it."""

    name: str
    title: str
    description: str
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    read_only: bool = False
    destructive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": {
                "type": "object",
                "properties": {k: dict(v) for k, v in self.properties.items()},
                "additionalProperties": False,
            },
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": True,
                "openWorldHint": False,
            },
        }


def specs() -> tuple[ToolSpec, ...]:
    """The tools, in the order ``tools/list`` gives them."""
    return (
        ToolSpec(
            STATUS,
            "Backup status",
            "Show the state of the opencode session backup: the backup folder, how many sessions it "
            "holds and its size, the last successful backup, the last result, the backups made since "
            "the backup service started and the changes waiting to be backed up. Changes nothing.",
            read_only=True,
        ),
        ToolSpec(
            SYNC,
            "Back up now",
            "Back up opencode's sessions now: everything that changed since the last backup. Uses the "
            "running backup service when there is one, otherwise runs one backup itself. Long backups "
            "report progress. Nothing is ever deleted from the backup.",
            {
                "force": {
                    "type": "boolean",
                    "default": False,
                    "description": "also take a full snapshot of opencode's database (slower; for a "
                    "complete backup, e.g. before an upgrade)",
                }
            },
        ),
        ToolSpec(
            RESTORE,
            "Restore sessions",
            "Bring sessions back from the backup into opencode. Without confirm it only returns the "
            "plan (which sessions would be added or replaced, and where the safety copy of opencode's "
            "database would go) and changes nothing: show the plan to the user and call again with "
            "confirm true only after they agreed. By default it restores every backed-up session "
            "opencode no longer has, also ones deleted a while ago; with sessions it restores (and "
            "replaces) exactly those. It never replaces opencode's whole database: that is done with "
            "opencode closed, from the tray app or 'opencode-backup restore --all --replace'.",
            {
                "confirm": {
                    "type": "boolean",
                    "default": False,
                    "description": "true: restore now (after the user agreed to the plan); "
                    "false or absent: only show the plan",
                },
                "sessions": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "maxItems": MAX_SESSIONS,
                    "description": "session ids or unique id prefixes to restore; absent: every "
                    "backed-up session opencode does not have",
                },
            },
            destructive=True,
        ),
    )


class Tools:
    """The tool box the server offers; ``flags`` are the settings given on ``mcp``'s command line."""

    def __init__(self, flags: Mapping[str, object] | None = None) -> None:
        self._flags = dict(flags or {})
        self._specs = {s.name: s for s in specs()}

    def list(self) -> list[dict[str, Any]]:
        """``tools/list``'s answer (any thread; imports nothing)."""
        return [s.to_json() for s in self._specs.values()]

    def call(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        """Run tool ``name`` on the caller's thread (a call thread of the server).

        Raises UnknownTool; arguments that do not fit the schema come back as an error result, which
        lets the model correct itself (MCP 2025-11-25 asks for that instead of a protocol error).
        """
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownTool(name)
        problem = check_arguments(spec, arguments)
        if problem:
            return ToolResult(f"Invalid arguments for {name}: {problem}", is_error=True)
        from app.mcp import actions  # noqa: PLC0415 - the engine loads here, on the first call, never at start-up

        if name == STATUS:
            return actions.status(self._flags)
        if name == SYNC:
            return actions.sync(self._flags, bool(arguments.get("force", False)), ctx)
        sessions = tuple(arguments.get("sessions") or ())
        return actions.restore(self._flags, bool(arguments.get("confirm", False)), sessions, ctx)


def check_arguments(spec: ToolSpec, arguments: Mapping[str, Any]) -> str | None:
    """What is wrong with ``arguments`` for ``spec`` in one phrase, or None when they fit its schema
    (the schemas here use booleans and arrays of non-empty strings only)."""
    for key, value in arguments.items():
        schema = spec.properties.get(key)
        if schema is None:
            known = ", ".join(spec.properties) or "none"
            return f"unknown argument {key!r} (arguments: {known})"
        if schema["type"] == "boolean" and not isinstance(value, bool):
            return f"{key} must be true or false"
        if schema["type"] == "array":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                return f"{key} must be a list of non-empty strings"
            if len(value) > schema.get("maxItems", len(value)):
                return f"{key} lists {len(value)} items; at most {schema['maxItems']}"
    return None
