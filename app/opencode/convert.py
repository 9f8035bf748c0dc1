"""A 1.x session's rows turned into opencode 2.0's, the way 2.0's own one-shot importer does it.

A port of ``transformSession()`` in ``packages/core/src/database/v1-migration.bun.ts`` (opencode 2.0.26):
messages and their parts are folded into ``session_message`` rows numbered ``seq`` 0..n-1 (a user message
with its text and attachments, an assistant message with its text, reasoning and tool calls, a compaction
with its summary), tools renamed (bash -> shell, task -> subagent, apply_patch -> patch), a system notice
saying which tools changed, and the session's cost and tokens summed again; the event watermark is n-1.
Used where a 1.x backup is restored into a 2.0 database (the lost laptop now runs 2.0) and by a full
replace from a 1.x snapshot. Never by resetting 2.0's ``kv['migration.v1-v2']``: 2.0 then deletes its
whole event log before importing again.

The rows come from a backup, so every value is checked for its type as it is used: a malformed message or
part is skipped with a warning (as 2.0 skips one it cannot parse), never trusted. Pure; any thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.opencode.convert_parts import (
    FINISH,
    dumps,
    integer,
    legacy_tool_notice,
    migrate_error,
    migrate_tool,
    number,
    obj,
    parse,
    snapshot_of,
    synthetic_id,
    text_of,
)

Row = Mapping[str, Any]
Part = dict[str, Any]


@dataclass
class Converted:
    """One session in 2.0's shape: ``messages`` are ``session_message`` rows (``data`` as JSON text),
    ``session`` the ``session_v2`` columns the importer recomputes, ``watermark`` its event sequence."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    watermark: int = -1
    warnings: list[str] = field(default_factory=list)


def convert_session(session: Row, messages: Sequence[Row], parts: Sequence[Row]) -> Converted:
    """The 2.0 rows of one 1.x session (its ``session`` row, ``message`` and ``part`` rows)."""
    out = Converted()
    s = _Session(messages, parts, out.warnings)
    projected = s.project()
    for seq, m in enumerate(projected):
        m["seq"] = seq
    migrated = list(projected)
    notice = legacy_tool_notice(projected)
    if notice and projected:
        last = projected[-1]
        data = {"text": notice, "time": {"created": last["time_created"]}}
        note_id = synthetic_id(last["id"], s.used)
        migrated.append(dict(last, id=note_id, type="system", seq=len(projected), data=data))
    out.messages = [dict(m, data=dumps(m["data"])) for m in migrated]
    out.watermark = len(migrated) - 1
    out.session = s.totals(session)
    return out


def _row(src: Row, message: dict[str, Any], time_updated: object = None) -> dict[str, Any]:
    data = {k: v for k, v in message.items() if k not in ("id", "type")}
    return {
        "id": message["id"],
        "session_id": src.get("session_id"),
        "type": message["type"],
        "seq": 0,
        "time_created": src.get("time_created"),
        "time_updated": src.get("time_updated") if time_updated is None else time_updated,
        "data": data,
    }


class _Session:
    """One session's messages (by creation time, then id) and their parts (by id), being projected."""

    def __init__(self, messages: Sequence[Row], parts: Sequence[Row], warnings: list[str]) -> None:
        self.msgs: list[tuple[Row, Part]] = []
        for r in messages:
            value = parse(r.get("data"))
            if isinstance(value, dict) and value.get("role") in ("user", "assistant"):
                self.msgs.append((r, value))
            else:
                warnings.append(f"unreadable message {r.get('id')}")
        self.msgs.sort(key=lambda m: (integer(m[0].get("time_created")), str(m[0].get("id"))))
        ids = {str(r.get("id")) for r in messages}
        self.by_msg: dict[str, list[Part]] = {}
        for r in sorted(parts, key=lambda r: str(r.get("id"))):
            value = parse(r.get("data"))
            if str(r.get("message_id")) not in ids:
                warnings.append(f"orphan part {r.get('id')}")
            elif not isinstance(value, dict):
                warnings.append(f"unreadable part {r.get('id')}")
            else:
                self.by_msg.setdefault(str(r.get("message_id")), []).append(value)
        self.paired: set[str] = set()
        self.used = {str(r.get("id")) for r, _v in self.msgs}

    def project(self) -> list[dict[str, Any]]:
        projected: list[dict[str, Any]] = []
        for row, value in self.msgs:
            rid = str(row.get("id"))
            if rid in self.paired:
                continue
            owned = self.by_msg.get(rid, [])
            if value.get("role") == "user":
                projected += self._user(row, rid, owned)
            else:
                projected += self._assistant(row, rid, value, owned)
        return projected

    def _user(self, row: Row, rid: str, owned: list[Part]) -> list[dict[str, Any]]:
        created = row.get("time_created")
        compaction = next((p for p in owned if p.get("type") == "compaction"), None)
        if compaction is not None:
            return self._compaction(row, rid, compaction)
        visible = [p for p in owned if p.get("type") == "text" and not p.get("ignored")]
        files = [p for p in owned if p.get("type") == "file"]
        agents = [{"name": p.get("name")} for p in owned if p.get("type") == "agent"]
        if any(p.get("type") == "subtask" for p in owned) and not visible and not files and not agents:
            return []
        ordinary = [text_of(p) for p in visible if not p.get("synthetic")]
        synthetic = [text_of(p) for p in visible if p.get("synthetic")]
        unavailable = [p for p in files if not text_of(p, "url").startswith("data:")]
        attachments = [
            {"data": text_of(p, "url").split(",", 1)[1], "mime": p.get("mime"), "source": {"type": "inline"}}
            for p in files
            if text_of(p, "url").startswith("data:") and "," in text_of(p, "url")
        ]
        if not ordinary and not unavailable and synthetic and not attachments and not agents:
            note = {
                "id": rid,
                "type": "synthetic",
                "text": "\n\n".join(synthetic),
                "time": {"created": created},
            }
            return [_row(row, note)]
        text = "\n\n".join(ordinary + [_unavailable(p) for p in unavailable])
        user: dict[str, Any] = {"id": rid, "type": "user", "text": text}
        if attachments:
            user["files"] = attachments
        if agents:
            user["agents"] = agents
        user["time"] = {"created": created}
        out = [_row(row, user)]
        if synthetic:
            note_id = synthetic_id(rid, self.used)
            note = {
                "id": note_id,
                "type": "synthetic",
                "text": "\n\n".join(synthetic),
                "time": {"created": created},
            }
            out.append(_row(row, note))
        return out

    def _compaction(self, row: Row, rid: str, compaction: Part) -> list[dict[str, Any]]:
        """A user message asking for a compaction, with the assistant's summary it pairs with."""
        summary = next(
            (
                (r, v)
                for r, v in self.msgs
                if v.get("role") == "assistant" and v.get("parentID") == rid and v.get("summary") is True
            ),
            None,
        )
        if summary is None:
            return []
        srow, svalue = summary
        self.paired.add(str(srow.get("id")))
        if svalue.get("error") or obj(svalue.get("time")).get("completed") is None:
            return []
        texts = [text_of(p) for p in self.by_msg.get(str(srow.get("id")), []) if p.get("type") == "text"]
        updated = max(integer(row.get("time_updated")), integer(srow.get("time_updated")))
        message = {
            "id": rid,
            "type": "compaction",
            "status": "completed",
            "reason": "auto" if compaction.get("auto") else "manual",
            "summary": "\n\n".join(t for t in texts if t),
            "recent": "",
            "time": {"created": row.get("time_created")},
        }
        return [_row(row, message, updated)]

    def _assistant(self, row: Row, rid: str, a: Part, owned: list[Part]) -> list[dict[str, Any]]:
        parent = next((r for r, _v in self.msgs if r.get("id") == a.get("parentID")), None)
        parent_parts = self.by_msg.get(str(parent.get("id")), []) if parent is not None else []
        if any(p.get("type") == "subtask" for p in parent_parts) and any(
            p.get("type") == "tool" and p.get("tool") == "task" for p in owned
        ):
            return []  # a subtask's task call: the subagent session holds it
        content = [c for p in owned if (c := _content(p, row.get("time_created"))) is not None]
        model = {
            "providerID": a.get("providerID"),
            "id": a.get("modelID"),
            "variant": a.get("variant") or "default",
        }
        message: dict[str, Any] = {
            "id": rid,
            "type": "assistant",
            "agent": a.get("agent") or a.get("mode") or "build",
            "model": model,
            "content": content,
        }
        snapshot = snapshot_of(owned)
        if snapshot:
            message["snapshot"] = snapshot
        finish = a.get("finish")
        if finish:
            message["finish"] = finish if finish in FINISH else "unknown"
        tokens = obj(a.get("tokens"))
        cache = obj(tokens.get("cache"))
        message["cost"] = a.get("cost", 0)
        message["tokens"] = {
            "input": tokens.get("input", 0),
            "output": tokens.get("output", 0),
            "reasoning": tokens.get("reasoning", 0),
            "cache": {"read": cache.get("read", 0), "write": cache.get("write", 0)},
        }
        if a.get("error"):
            message["error"] = migrate_error(obj(a["error"]))
        times = {"created": row.get("time_created")}
        if obj(a.get("time")).get("completed") is not None:
            times["completed"] = row.get("time_updated")
        message["time"] = times
        return [_row(row, message)]

    def totals(self, session: Row) -> dict[str, Any]:
        """agent, model, cost and tokens of the session, as the importer recomputes them."""
        assistants = [v for _r, v in self.msgs if v.get("role") == "assistant"]
        latest_user = None
        for r, v in self.msgs:
            owned = self.by_msg.get(str(r.get("id")), [])
            if v.get("role") != "user" or any(p.get("type") == "compaction" for p in owned):
                continue
            if not all(p.get("type") == "subtask" for p in owned) or not owned:
                latest_user = v
        model = parse(session.get("model")) if session.get("model") else None
        if model is None and latest_user is not None:
            lm = obj(latest_user.get("model"))
            model = {
                "id": lm.get("modelID"),
                "providerID": lm.get("providerID"),
                "variant": lm.get("variant") or "default",
            }
        agent = session.get("agent")
        if agent is None and latest_user is not None:
            agent = latest_user.get("agent")

        def tokens(*path: str) -> int:
            total = 0
            for a in assistants:
                value: Any = a.get("tokens")
                for key in path:
                    value = obj(value).get(key)
                total += integer(value)
            return total

        return {
            "agent": agent,
            "model": dumps(model) if model is not None else None,
            "cost": sum(number(a.get("cost")) for a in assistants),
            "tokens_input": tokens("input"),
            "tokens_output": tokens("output"),
            "tokens_reasoning": tokens("reasoning"),
            "tokens_cache_read": tokens("cache", "read"),
            "tokens_cache_write": tokens("cache", "write"),
        }


def _content(p: Part, fallback: object) -> dict[str, Any] | None:
    """An assistant part as an item of its 2.0 message's ``content`` (None: not carried across)."""
    kind = p.get("type")
    if kind == "tool":
        return migrate_tool(p, fallback)
    if kind not in ("text", "reasoning"):
        return None
    item: dict[str, Any] = {"type": kind, "text": p.get("text")}
    if p.get("metadata"):
        item["state"] = p["metadata"]
    if kind == "reasoning":
        when = obj(p.get("time"))
        item["time"] = {"created": when.get("start")}
        if when.get("end") is not None:
            item["time"]["completed"] = when["end"]
    return item


def _unavailable(part: Part) -> str:
    label = part.get("filename") or part.get("url")
    return f"[Attachment unavailable after migration: {label} ({part.get('mime')})]"
