"""Pieces of 2.0's importer (:mod:`app.opencode.convert`): a 1.x tool call, error and snapshot in 2.0's
shape, the notice about changed tools, synthetic ids, and type-checked reads of backup values. Pure."""

from __future__ import annotations

import hashlib
import json
from typing import Any

RENAMED_TOOLS = {"bash": "shell", "task": "subagent", "apply_patch": "patch"}
PATH_TOOLS = ("read", "edit", "write")
REMOVED_TOOLS = ("todowrite",)
FINISH = ("stop", "length", "tool-calls", "content-filter", "error", "unknown")
_ERRORS = {
    "ProviderAuthError": "provider.auth",
    "ContentFilterError": "provider.content-filter",
    "ContextOverflowError": "provider.invalid-request",
    "StructuredOutputError": "provider.invalid-output",
    "MessageOutputLengthError": "provider.invalid-output",
    "MessageAbortedError": "aborted",
    "APIError": "provider.error",
}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
INTERRUPTED = "Tool execution was interrupted before V2 migration"
CLEARED = "[Old tool result content cleared]"


def dumps(value: object) -> str:
    """``JSON.stringify``: no spaces, non-ASCII kept (the text 2.0 writes into ``data``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def synthetic_id(source: str, used: set[str]) -> str:
    """``syntheticID()``: the first 16 characters of ``source`` and 14 base62 digits of a sha256."""
    salt = 0
    while True:
        seed = "v1-synthetic:" + source + (f":{salt}" if salt else "")
        value = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
        suffix = ""
        while len(suffix) < 14:
            suffix = _BASE62[value % 62] + suffix
            value //= 62
        salt += 1
        out = source[:16] + suffix
        if out not in used:
            used.add(out)
            return out


def migrate_tool(part: dict[str, Any], fallback: object) -> dict[str, Any]:
    """A 1.x tool part as a 2.0 tool call (completed, failed, or interrupted by the migration)."""
    st = obj(part.get("state"))
    when = obj(st.get("time"))
    base: dict[str, Any] = {"type": "tool", "id": part.get("callID"), "name": part.get("tool")}
    if part.get("metadata"):
        base["providerState"] = part["metadata"]
    status = st.get("status")
    ended = {"created": when.get("start"), "completed": when.get("end")}
    state: dict[str, Any]
    if status == "completed":
        if when.get("compacted") is None:
            attached = st.get("attachments")
            files = attached if isinstance(attached, list) else []
            content = [{"type": "text", "text": st.get("output", "")}] + [_file(obj(f)) for f in files]
        else:
            content = [{"type": "text", "text": CLEARED}]
        state = {"status": "completed", "input": st.get("input", {}), "content": content}
        if "metadata" in st:
            state["metadata"] = st["metadata"]
        return dict(base, state=state, time=ended)
    if status == "error":
        error = {"type": "tool.execution", "message": st.get("error", "")}
        state = {"status": "error", "input": st.get("input", {}), "error": error}
        metadata = st.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("output"), str):
            state["content"] = [{"type": "text", "text": metadata["output"]}]
        if metadata:
            state["metadata"] = metadata
        return dict(base, state=state, time=ended)
    error = {"type": "tool.interrupted", "message": INTERRUPTED}
    state = {"status": "error", "input": st.get("input", {}), "error": error}
    if status == "running" and st.get("metadata"):
        state["metadata"] = st["metadata"]
    return dict(base, state=state, time={"created": when.get("start") if status == "running" else fallback})


def _file(f: dict[str, Any]) -> dict[str, Any]:
    out = {"type": "file", "uri": f.get("url"), "mime": f.get("mime")}
    if f.get("filename"):
        out["name"] = f["filename"]
    return out


def migrate_error(err: dict[str, Any]) -> dict[str, Any]:
    """A 1.x message error as 2.0's ``{type, message}``."""
    name = err.get("name")
    data = obj(err.get("data"))
    if "message" in data:
        message = data["message"]
    else:
        message = "The model exceeded its output limit" if name == "MessageOutputLengthError" else name
    return {"type": _ERRORS.get(name, "unknown") if isinstance(name, str) else "unknown", "message": message}


def snapshot_of(owned: list[dict[str, Any]]) -> dict[str, Any]:
    """The file snapshots an assistant message's step parts name: start, end and the patched files."""
    start = (
        next((p["snapshot"] for p in owned if p.get("type") == "step-start" and p.get("snapshot")), None)
        or next((p["snapshot"] for p in owned if p.get("type") == "snapshot" and "snapshot" in p), None)
        or next((p["hash"] for p in owned if p.get("type") == "patch" and "hash" in p), None)
    )
    ends = [p["snapshot"] for p in owned if p.get("type") == "step-finish" and p.get("snapshot")]
    files: list[Any] = []
    for p in owned:
        if p.get("type") == "patch" and isinstance(p.get("files"), list):
            files += [f for f in p["files"] if f not in files]
    out: dict[str, Any] = {}
    if start:
        out["start"] = start
    if ends:
        out["end"] = ends[-1]
    if files:
        out["files"] = files
    return out


def legacy_tool_notice(projected: list[dict[str, Any]]) -> str | None:
    """The system notice 2.0 appends when the session called tools that changed since 1.x."""
    start = max((i for i, m in enumerate(projected) if m["type"] == "compaction"), default=-1)
    called: set[str] = set()
    for m in projected[start + 1 :]:
        if m["type"] == "assistant" and isinstance(m["data"].get("content"), list):
            called.update(
                c["name"]
                for c in m["data"]["content"]
                if c.get("type") == "tool" and isinstance(c.get("name"), str)
            )
    renamed = [n for n in RENAMED_TOOLS if n in called]
    paths = [f"`{n}`" for n in PATH_TOOLS if n in called]
    removed = [f"`{n}`" for n in REMOVED_TOOLS if n in called]
    parts = []
    if len(renamed) == 1:
        new = RENAMED_TOOLS[renamed[0]]
        parts.append(f"The `{renamed[0]}` tool is now `{new}` and must be called by that name.")
    elif renamed:
        pairs = "; ".join(f"`{n}` is now `{RENAMED_TOOLS[n]}`" for n in renamed)
        parts.append(f"The following tools were renamed and must be called by their new names: {pairs}.")
    if "task" in called:
        parts.append(
            "The `subagent` tool takes `agent` instead of `subagent_type` and `sessionID` instead of "
            "`task_id`."
        )
    if len(paths) == 1:
        parts.append(f"The {paths[0]} tool now takes `path` instead of `filePath`.")
    elif paths:
        parts.append(f"The following tools now take `path` instead of `filePath`: {', '.join(paths)}.")
    if "skill" in called:
        parts.append("The `skill` tool now takes `id` instead of `name`.")
    if len(removed) == 1:
        parts.append(f"The {removed[0]} tool is no longer available and must not be called.")
    elif removed:
        names = ", ".join(removed)
        parts.append(f"The following tools are no longer available and must not be called: {names}.")
    return "\n\n".join(["The available tools have changed.", *parts]) if parts else None


def parse(text: object) -> Any:
    """The JSON value of a text column, or None when it is not JSON."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text_of(part: dict[str, Any], key: str = "text") -> str:
    value = part.get(key)
    return value if isinstance(value, str) else ""


def integer(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def number(value: object) -> float | int:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
