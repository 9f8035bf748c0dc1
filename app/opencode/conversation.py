"""A session's rows read as a conversation: its messages in order, each with its role, time and parts.

Both stores: opencode 1.x keeps a message per ``message`` row and its parts in ``part`` rows (``data`` is
JSON text: ``{"role": ...}`` and ``{"type": "text" | "reasoning" | "tool" | "file" | ...}``), ordered by
creation time then id as 2.0's importer orders them; opencode 2.0 folds a message and its parts into one
``session_message`` row (``type`` user, assistant, system, synthetic, compaction..., its ``data`` holding
``text`` or ``content``), ordered by ``seq``. The rows come from the backup folder: every value is checked
for its type as it is used, and a row that does not parse is shown as a note, never trusted or raised.
Pure; any thread. Messages are made one at a time (:func:`messages` is a generator), so a face can show
the first ones of a long session before the last are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.opencode.convert_parts import integer, obj, parse, text_of

Row = Mapping[str, Any]
SUMMARY_CHARS = 120  # a tool call's input, on its one line
# the input field that says what a tool call did, for the tools opencode ships (1.x and 2.0 names)
_SUBJECT = ("command", "filePath", "path", "pattern", "url", "query", "description", "prompt", "name")


@dataclass(frozen=True)
class Part:
    """One piece of a message. ``kind``: text, reasoning, tool, file or note (something else opencode
    records, named in ``text``). A tool call has ``tool``, ``status`` and ``text`` = its input, summed up."""

    kind: str
    text: str
    tool: str = ""
    status: str = ""


@dataclass(frozen=True)
class Message:
    """One message: ``role`` is user or assistant (2.0 also: system, synthetic, compaction...); ``time``
    in ms since the epoch (0: not recorded); ``model`` as provider/model for an assistant's."""

    id: str
    role: str
    time: int
    parts: tuple[Part, ...]
    agent: str = ""
    model: str = ""


def messages(rows: Mapping[str, Sequence[Row]], store: str) -> Iterator[Message]:
    """The messages of a session's rows (a session file's ``rows``) in order; ``store``: v1 or v2."""
    if store == "v2":
        return _v2(rows.get("session_message", ()))
    return _v1(rows.get("message", ()), rows.get("part", ()))


def texts(rows: Mapping[str, Sequence[Row]], store: str) -> Iterator[str]:
    """The text parts of every message, in order (what the search index holds of a conversation). A 1.x
    message's own JSON is not parsed, nor a part's that holds no text: a tool's output is most of a
    session's bytes (600 bench sessions: 0.76 s through :func:`messages`, 0.11 s so)."""
    if store == "v2":
        for m in _v2(rows.get("session_message", ())):
            yield from (p.text for p in m.parts if p.kind == "text")
        return
    by_message: dict[str, list[Row]] = {}
    for r in rows.get("part", ()):
        if _worded(r.get("data")):
            by_message.setdefault(str(r.get("message_id")), []).append(r)
    for row in sorted(rows.get("message", ()), key=_created):
        for r in sorted(by_message.get(str(row.get("id")), ()), key=lambda r: str(r.get("id"))):
            part = obj(parse(r.get("data")))
            if part.get("type") == "text" and not part.get("ignored"):
                yield text_of(part)


def first_time(rows: Mapping[str, Sequence[Row]], store: str) -> int:
    """When the session was created (ms), from its own row; 0 when not recorded."""
    root = rows.get("session_v2" if store == "v2" else "session", ())
    return integer(root[0].get("time_created")) if root else 0


# ------------------------------------------------------------------ opencode 1.x

_TYPED = '{"type":"'  # how opencode writes a part's JSON: its type first


def _worded(data: object) -> bool:
    """Whether a 1.x part's JSON may be a text part, told without parsing it."""
    if not isinstance(data, str):
        return False
    if data.startswith(_TYPED):
        return data.startswith("text", len(_TYPED))
    return '"text"' in data  # as a key or a value: inside a JSON string a quote is escaped


def _created(row: Row) -> tuple[int, str]:
    """How 2.0's importer orders 1.x messages: by creation time, then id."""
    return integer(row.get("time_created")), str(row.get("id"))


def _v1(message_rows: Sequence[Row], part_rows: Sequence[Row]) -> Iterator[Message]:
    by_message: dict[str, list[Row]] = {}
    for r in part_rows:
        by_message.setdefault(str(r.get("message_id")), []).append(r)
    for row in sorted(message_rows, key=_created):
        data = obj(parse(row.get("data")))
        rid = str(row.get("id"))
        role = data.get("role")
        when = integer(obj(data.get("time")).get("created")) or integer(row.get("time_created"))
        if role not in ("user", "assistant"):
            yield Message(rid, "unknown", when, (Part("note", "a message that cannot be read"),))
            continue
        owned = sorted(by_message.get(rid, ()), key=lambda r: str(r.get("id")))
        parts = tuple(p for r in owned if (p := _v1_part(obj(parse(r.get("data"))))) is not None)
        model = "/".join(v for v in (data.get("providerID"), data.get("modelID")) if isinstance(v, str))
        agent = data.get("agent") or data.get("mode")
        yield Message(rid, role, when, parts, agent if isinstance(agent, str) else "", model)


def _v1_part(p: dict[str, Any]) -> Part | None:
    kind = p.get("type")
    if kind == "text":
        return None if p.get("ignored") else Part("text", text_of(p))
    if kind == "reasoning":
        return Part("reasoning", text_of(p))
    if kind == "tool":
        state = obj(p.get("state"))
        return _tool(p.get("tool"), state.get("status"), state.get("input"))
    if kind == "file":
        return Part("file", text_of(p, "filename") or text_of(p, "url")[:SUMMARY_CHARS])
    if kind in ("step-start", "step-finish", "snapshot", "patch") or not isinstance(kind, str):
        return None  # bookkeeping opencode shows no text for
    return Part("note", kind)


# ------------------------------------------------------------------ opencode 2.0


def _v2(rows: Sequence[Row]) -> Iterator[Message]:
    for row in sorted(rows, key=lambda r: (integer(r.get("seq")), str(r.get("id")))):
        data = obj(parse(row.get("data")))
        kind = row.get("type")
        role = kind if isinstance(kind, str) else "unknown"
        when = integer(obj(data.get("time")).get("created")) or integer(row.get("time_created"))
        rid = str(row.get("id"))
        if role == "assistant":
            content = data.get("content")
            items = content if isinstance(content, list) else []
            parts = tuple(p for c in items if (p := _v2_part(obj(c))) is not None)
            m = obj(data.get("model"))
            model = "/".join(v for v in (m.get("providerID"), m.get("id")) if isinstance(v, str))
            agent = data.get("agent")
            yield Message(rid, role, when, parts, agent if isinstance(agent, str) else "", model)
        elif role == "compaction":
            yield Message(rid, role, when, (Part("text", text_of(data, "summary")),))
        else:  # user, system, synthetic, and whatever a later 2.0 adds: its text when it has one
            files = data.get("files")
            attached = tuple(
                Part("file", text_of(obj(f), "name") or text_of(obj(f), "mime"))
                for f in (files if isinstance(files, list) else [])
            )
            text = text_of(data)
            parts = ((Part("text", text),) if text else ()) + attached
            yield Message(rid, role, when, parts or (Part("note", role),))


def _v2_part(c: dict[str, Any]) -> Part | None:
    kind = c.get("type")
    if kind in ("text", "reasoning"):
        return Part(kind, text_of(c))
    if kind == "tool":
        state = obj(c.get("state"))
        return _tool(c.get("name"), state.get("status"), state.get("input"))
    if kind == "file":
        return Part("file", text_of(c, "name") or text_of(c, "mime"))
    return None


# ------------------------------------------------------------------ tool calls


def _tool(name: object, status: object, given: object) -> Part:
    return Part(
        "tool",
        summary(given),
        tool=name if isinstance(name, str) else "?",
        status=status if isinstance(status, str) else "",
    )


def summary(given: object) -> str:
    """A tool call's input on one short line: what it acted on (its command, file, pattern...), else
    its first few ``key=value``; at most SUMMARY_CHARS characters."""
    args = obj(given)
    subject = next((args[k] for k in _SUBJECT if isinstance(args.get(k), str) and args[k]), None)
    if subject is None:
        shown = []
        for key, value in list(args.items())[:4]:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)[:60]
            shown.append(f"{key}={text}")
        subject = ", ".join(shown)
    line = " ".join(str(subject).split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
