"""The agent tools: names, JSON schemas, argument checks, and the call into the engine.

opencode shows them to the model as ``session_backup_status``, ``session_backup_sync``,
``session_backup_restore``, ``session_backup_search`` and ``session_backup_show`` (its server key
``session_backup`` + ``_`` + the name here). Listing them costs nothing; :mod:`app.mcp.actions` (and
:mod:`app.mcp.finding`), and with them the engine, are imported on the first call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.mcp.calls import CallContext, ToolResult, UnknownTool

STATUS = "status"
SYNC = "sync"
RESTORE = "restore"
SEARCH = "search"
SHOW = "show"
MAX_SESSIONS = 200  # ids in one restore call; a model listing more is better served by the default
MAX_HITS = 50  # sessions one search returns
AT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "description": "a time, ISO 8601 (local time unless it carries an offset; a date alone means the end of "
    "that day): the session as it was then, as the backup held it",
}


@dataclass(frozen=True)
class ToolSpec:
    """One tool as ``tools/list`` shows it."""

    name: str
    title: str
    description: str
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    read_only: bool = False
    destructive: bool = False
    required: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": {
                "type": "object",
                "properties": {k: dict(v) for k, v in self.properties.items()},
                "additionalProperties": False,
                **({"required": list(self.required)} if self.required else {}),
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
                "at": {
                    **AT,
                    "description": "with exactly one session: restore it as it was at this time (ISO 8601, "
                    "local time unless it carries an offset; a date alone means the end of that day), "
                    "also from another computer's backup",
                },
            },
            destructive=True,
        ),
        ToolSpec(
            SEARCH,
            "Search the backups",
            "Find backed-up opencode sessions by the words in them: every session of every computer that "
            "backs up to this folder, also sessions deleted from opencode. Every word must occur. Each "
            "hit gives the session id, title, computer, last update, whether opencode has it now and a "
            "snippet with the words found between ** and **. Read one with the show tool. Changes nothing.",
            {
                "query": {"type": "string", "minLength": 1, "maxLength": 500, "description": "plain words"},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_HITS,
                    "default": 10,
                    "description": "at most this many sessions",
                },
            },
            read_only=True,
            required=("query",),
        ),
        ToolSpec(
            SHOW,
            "Read a backed-up session",
            "Read a backed-up opencode session as Markdown, without restoring it: its messages in order, "
            "each tool call on one line. From this computer's backup or another computer's. Long sessions "
            "come in pieces: the answer says where it was cut and how to get the rest. Changes nothing.",
            {
                "session": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 500,
                    "description": "a session id, the start of one, or its exact title",
                },
                "at": AT,
                "from_message": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 1,
                    "description": "start at this message (to read the rest of a long session)",
                },
            },
            read_only=True,
            required=("session",),
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
        # the engine loads here, on the first call, never at start-up
        from app.mcp import actions, finding  # noqa: PLC0415

        if name == STATUS:
            return actions.status(self._flags)
        if name == SYNC:
            return actions.sync(self._flags, bool(arguments.get("force", False)), ctx)
        if name == SEARCH:
            return finding.search(self._flags, arguments["query"], int(arguments.get("limit", 10)), ctx)
        if name == SHOW:
            first = int(arguments.get("from_message", 1))
            return finding.show(self._flags, arguments["session"], arguments.get("at"), first, ctx)
        sessions = tuple(arguments.get("sessions") or ())
        if arguments.get("at") is not None:
            return finding.restore_at(
                self._flags, bool(arguments.get("confirm", False)), sessions, arguments["at"], ctx
            )
        return actions.restore(self._flags, bool(arguments.get("confirm", False)), sessions, ctx)


def check_arguments(spec: ToolSpec, arguments: Mapping[str, Any]) -> str | None:
    """What is wrong with ``arguments`` for ``spec`` in one phrase, or None when they fit its schema
    (the schemas here use booleans, bounded strings and integers, and arrays of non-empty strings)."""
    for key in spec.required:
        if key not in arguments:
            return f"{key} is required"
    for key, value in arguments.items():
        schema = spec.properties.get(key)
        if schema is None:
            known = ", ".join(spec.properties) or "none"
            return f"unknown argument {key!r} (arguments: {known})"
        kind = schema["type"]
        if kind == "boolean" and not isinstance(value, bool):
            return f"{key} must be true or false"
        if kind == "string":
            low, high = schema.get("minLength", 0), schema.get("maxLength", 1 << 20)
            if not isinstance(value, str) or not low <= len(value) <= high:
                return f"{key} must be a text of {low} to {high} characters"
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{key} must be a whole number"
            if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
                return f"{key} must be from {schema.get('minimum')} to {schema.get('maximum', 'any')}"
        if kind == "array":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                return f"{key} must be a list of non-empty strings"
            if len(value) > schema.get("maxItems", len(value)):
                return f"{key} lists {len(value)} items; at most {schema['maxItems']}"
    return None
