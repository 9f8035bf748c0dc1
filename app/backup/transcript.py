"""A backed-up session as people and programs read it: Markdown, a stable JSON structure, and the words
the search index holds. Read from the session file alone (opencode is not needed).

Markdown: the title, the session's facts (id, project, times, where the copy comes from), then each
message under a heading with its role and local time; text parts in full, each tool call on one line (its
tool, status and a short summary of its input), attachments by name, reasoning only when asked. Every text
from the file is made inert (:func:`app.safe_text.clean_text`), and it is produced line by line, so a face
shows the first messages of a long session while the rest are rendered.

JSON (``show --format json``), format ``opencode-session-backup-transcript/1``::

    {"format", "session_id", "title", "project_id", "directory", "store": "v1"|"v2",
     "time_created", "time_updated",            ISO 8601 UTC, or null
     "source": {"machine", "version", "when", "backed_up", "path"},  which copy this is (app.backup.history):
                                                 "when" in words, "backed_up" ISO 8601 or null
     "messages": [{"id", "role", "time", "agent", "model",
                   "parts": [{"type": "text"|"reasoning"|"file"|"note", "text"}
                             | {"type": "tool", "tool", "status", "input"}]}]}

Reasoning parts are in ``parts`` only when asked for, as in Markdown. Pure; any thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.backup.backup_reader import SessionDoc
from app.opencode import conversation as cv
from app.safe_text import clean, clean_text

JSON_FORMAT = "opencode-session-backup-transcript/1"
ROLES = {"user": "User", "assistant": "Assistant", "system": "System", "synthetic": "Note",
         "compaction": "Summary"}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """Which copy of the session is shown: machine folder, its number in ``history`` (1 = newest), when
    it was backed up (as ``history`` says it) and its file (or snapshot), relative to the machine folder."""

    machine: str
    version: int
    when: str  # when it was backed up, in words (a time, or the range it lies in)
    path: str
    backed_up: datetime | None = None  # that time, when it is known exactly


def moment(ms: int) -> datetime | None:
    """A time in ms since the epoch (a value from the backup: None when 0 or out of range)."""
    if ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def local(when: datetime | None) -> str:
    """``when`` as local 'YYYY-MM-DD HH:MM:SS', or 'unknown'."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when is not None else "unknown"


def markdown(doc: SessionDoc, source: Source, *, reasoning: bool = False) -> Iterator[str]:
    """The session as Markdown, one line at a time (lines end without a newline)."""
    yield from _header(doc, source)
    for message in cv.messages(doc.rows, doc.store):
        yield from _message_lines(message, reasoning)


def capped(doc: SessionDoc, source: Source, limit: int, *, first: int = 1) -> tuple[str, int | None, int]:
    """:func:`markdown` from message ``first``, cut after the last whole message that fits in ``limit``
    characters (at least one, itself cut at a line when longer). Returns the text, the number of the next
    message when it was cut (None: it goes to the end), and the number of messages. Pure."""
    lines = list(_header(doc, source))
    used = sum(len(line) + 1 for line in lines)
    messages = list(cv.messages(doc.rows, doc.store))
    total = len(messages)
    for number in range(max(1, first), total + 1):
        block = list(_message_lines(messages[number - 1], reasoning=False))
        size = sum(len(line) + 1 for line in block)
        if used + size <= limit:
            lines += block
            used += size
            continue
        if number > first:  # cut before this message
            return "\n".join(lines), number, total
        for line in block:  # one message longer than the limit: as much of it as fits
            if used + len(line) + 1 > limit:
                break
            lines.append(line)
            used += len(line) + 1
        lines.append("[…the rest of this message is cut]")
        return "\n".join(lines), number + 1 if number < total else None, total
    return "\n".join(lines), None, total


def _header(doc: SessionDoc, source: Source) -> Iterator[str]:
    session = doc.session_row
    directory = session.get("directory")
    yield f"# {clean(doc.title or '(untitled)')}"
    yield ""
    yield f"- Session: {doc.session_id} (opencode {'2.0' if doc.store == 'v2' else '1.x'})"
    where = clean(directory) if isinstance(directory, str) and directory else "unknown folder"
    yield f"- Project: {where} ({clean(doc.project_id)})"
    created = moment(cv.first_time(doc.rows, doc.store))
    yield f"- Created: {local(created)} · last update: {local(moment(doc.time_updated))}"
    yield f"- Backup: version {source.version}, backed up {source.when}, machine {clean(source.machine)}"


def _message_lines(message: cv.Message, reasoning: bool) -> Iterator[str]:
    yield ""
    yield _heading(message)
    for part in message.parts:
        if part.kind == "reasoning" and not reasoning:
            continue
        yield ""
        yield from _part_lines(part)


def _heading(m: cv.Message) -> str:
    role = ROLES.get(m.role, clean(m.role).capitalize())
    extra = " · ".join(clean(v) for v in (m.agent, m.model) if v)
    return f"## {role} · {local(moment(m.time))}" + (f" ({extra})" if extra else "")


def _part_lines(part: cv.Part) -> Iterator[str]:
    if part.kind == "text":
        yield clean_text(part.text) if part.text.strip() else "_(empty)_"
    elif part.kind == "reasoning":
        yield from (f"> {line}" for line in clean_text(part.text).split("\n"))
    elif part.kind == "tool":
        status = f" ({clean(part.status)})" if part.status else ""
        yield f"- tool `{clean(part.tool)}`{status}: {clean(part.text)}"
    elif part.kind == "file":
        yield f"- attached: {clean(part.text)}"
    else:
        yield f"- ({clean(part.text)})"


def to_json(doc: SessionDoc, source: Source, *, reasoning: bool = False) -> dict[str, Any]:
    """The session as the documented JSON structure (see the module's docstring); texts exact."""
    session = doc.session_row
    directory = session.get("directory")
    messages = []
    for m in cv.messages(doc.rows, doc.store):
        parts = [_part_json(p) for p in m.parts if reasoning or p.kind != "reasoning"]
        when = moment(m.time)
        messages.append(
            {
                "id": m.id,
                "role": m.role,
                "time": when.isoformat(timespec="seconds") if when else None,
                "agent": m.agent,
                "model": m.model,
                "parts": parts,
            }
        )
    created, updated = moment(cv.first_time(doc.rows, doc.store)), moment(doc.time_updated)
    return {
        "format": JSON_FORMAT,
        "session_id": doc.session_id,
        "title": doc.title,
        "project_id": doc.project_id,
        "directory": directory if isinstance(directory, str) else "",
        "store": doc.store,
        "time_created": created.isoformat(timespec="seconds") if created else None,
        "time_updated": updated.isoformat(timespec="seconds") if updated else None,
        "source": {
            "machine": source.machine,
            "version": source.version,
            "when": source.when,
            "backed_up": source.backed_up.isoformat(timespec="seconds") if source.backed_up else None,
            "path": source.path,
        },
        "messages": messages,
    }


def _part_json(p: cv.Part) -> dict[str, str]:
    if p.kind == "tool":
        return {"type": "tool", "tool": p.tool, "status": p.status, "input": p.text}
    return {"type": p.kind, "text": p.text}


def words(doc: SessionDoc) -> str:
    """What the search index holds of a session besides its title: the text of every message (no
    reasoning, no tool output), a message per paragraph."""
    return "\n\n".join(cv.texts(doc.rows, doc.store))
