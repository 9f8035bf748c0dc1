"""Native opencode 2.0.26 sessions, written as its projector writes them (``packages/core/src/session/
projector.ts`` and ``message-updater.ts``): each change is a durable event (``<name>.<version>``) at the next
seq of the session's watermark, then its effect on ``session_message`` (inserted with the seq of the event
that created it, then updated in place as the reply streams), ``session_v2`` and the queue tables."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from datetime import UTC, datetime
from typing import Any

from app.opencode.convert_parts import dumps

VERSION = "2.0.26"
Tool = tuple[str, str, dict[str, Any], str, dict[str, Any]]  # call id, name, input, output, metadata


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Native:
    """One session 2.0 writes itself."""

    def __init__(
        self,
        db: sqlite3.Connection,
        ids: Any,
        rng: random.Random,
        *,
        t: int,
        project: tuple[str, str],
        title: str,
        slug: str,
    ) -> None:
        self.db, self.ids, self.rng, self.t, self.seq = db, ids, rng, t, -1
        self.sid = ids("ses", t, descending=True)
        self.model = {"id": "fake", "providerID": "fakeprov"}
        self.snapshot = hashlib.sha1(b"fake").hexdigest()
        self.directory = project[1]
        created_title = f"New session - {iso(t)}"
        self.emit(
            "session.created",
            1,
            {
                "sessionID": self.sid,
                "projectID": project[0],
                "location": {"directory": self.directory},
                "subpath": "",
                "slug": slug,
                "title": created_title,
                "model": self.model,
                "version": VERSION,
            },
        )
        db.execute(
            "INSERT INTO session_v2 (id, project_id, slug, directory, path, title, model, version, "
            "time_created, time_updated) VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?)",
            (self.sid, project[0], slug, self.directory, created_title, dumps(self.model), VERSION, t, t),
        )
        self.final_title = title
        self.instructed = False

    def tick(self, ms: int | None = None) -> int:
        self.t += ms if ms is not None else self.rng.randint(3, 40)
        return self.t

    def emit(self, name: str, version: int, data: dict[str, Any]) -> tuple[str, int]:
        self.seq += 1
        eid = self.ids("evt", self.t)
        self.db.execute(
            "INSERT INTO event_sequence (aggregate_id, seq, owner_id) VALUES (?, ?, NULL) "
            "ON CONFLICT (aggregate_id) DO UPDATE SET seq = excluded.seq",
            (self.sid, self.seq),
        )
        self.db.execute(
            "INSERT INTO event (id, aggregate_id, seq, type, data, created) VALUES (?, ?, ?, ?, ?, ?)",
            (eid, self.sid, self.seq, f"{name}.{version}", dumps(data), self.t),
        )
        return eid, self.seq

    def touch(self) -> None:
        self.db.execute("UPDATE session_v2 SET time_updated = ? WHERE id = ?", (self.t, self.sid))

    def insert(self, mid: str, kind: str, data: dict[str, Any], seq: int) -> None:
        self.db.execute(
            "INSERT INTO session_message (id, session_id, type, seq, time_created, time_updated, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mid, self.sid, kind, seq, data["time"]["created"], self.t, dumps(data)),
        )

    def update(self, mid: str, data: dict[str, Any]) -> None:
        """The message updater: the row is rewritten in place (its seq and count unchanged)."""
        self.db.execute(
            "UPDATE session_message SET data = ?, time_updated = ? WHERE id = ?", (dumps(data), self.t, mid)
        )

    def enqueue(self, text: str, delivery: str = "steer") -> str:
        self.tick(self.rng.randint(2000, 9000))
        inbox = self.ids("msg", self.t)
        item = {"type": "user", "payload": {"text": text}, "delivery": delivery}
        _eid, seq = self.emit(
            "session.inbox.enqueued", 1, {"sessionID": self.sid, "inboxID": inbox, "item": item}
        )
        self.db.execute(
            "INSERT INTO session_inbox (id, session_id, type, payload, delivery, enqueued_seq, time_created) "
            "VALUES (?, ?, 'user', ?, ?, ?, ?)",
            (inbox, self.sid, dumps(item["payload"]), delivery, seq, self.t),
        )
        self.touch()
        return inbox

    def deliver(self, inbox: str) -> None:
        payload = json.loads(
            self.db.execute("SELECT payload FROM session_inbox WHERE id = ?", (inbox,)).fetchone()[0]
        )
        self.db.execute("DELETE FROM session_inbox WHERE id = ?", (inbox,))
        self.tick()
        _eid, seq = self.emit("session.inbox.delivered", 1, {"sessionID": self.sid, "inboxID": inbox})
        self.insert(inbox, "user", {"time": {"created": self.t}, **payload}, seq)

    def instructions(self) -> None:
        values = {
            "core/environment": f"<env>\n  Working directory: {self.directory}\n  Platform: linux\n</env>",
            "core/date": "Thu Oct 15 2026",
        }
        delta = {}
        for key, value in values.items():
            text = dumps(value)
            digest = hashlib.sha256(text.encode()).hexdigest()
            self.db.execute(
                "INSERT OR IGNORE INTO instruction_blob (hash, value) VALUES (?, ?)", (digest, text)
            )
            delta[key] = digest
        self.tick()
        _eid, seq = self.emit("session.instructions.updated", 2, {"sessionID": self.sid, "delta": delta})
        self.db.execute(
            "INSERT INTO instruction_state (session_id, epoch_start, through_seq, initial_values, "
            "current_values) VALUES (?, ?, ?, ?, ?)",
            (self.sid, seq, seq, dumps(delta), dumps(delta)),
        )
        self.instructed = True

    def start_step(self) -> tuple[str, dict[str, Any]]:
        self.tick(self.rng.randint(100, 400))
        aid = self.ids("msg", self.t)
        started = self.t
        self.tick(1)
        model = dict(self.model, variant="default")
        _eid, seq = self.emit(
            "session.step.started",
            1,
            {
                "sessionID": self.sid,
                "assistantMessageID": aid,
                "agent": "build",
                "model": model,
                "snapshot": self.snapshot,
                "started": started,
            },
        )
        data: dict[str, Any] = {
            "time": {"created": started},
            "agent": "build",
            "model": model,
            "content": [],
            "snapshot": {"start": self.snapshot},
        }
        self.insert(aid, "assistant", data, seq)
        self.touch()
        return aid, data

    def text(self, aid: str, data: dict[str, Any], text: str) -> None:
        """A reply streams in: the started event adds an empty text, the ended one fills it (in place)."""
        self.tick()
        self.emit("session.text.started", 1, {"sessionID": self.sid, "assistantMessageID": aid, "ordinal": 0})
        data["content"].append({"type": "text", "text": ""})
        self.update(aid, data)
        self.tick(self.rng.randint(50, 300))
        self.emit(
            "session.text.ended",
            1,
            {"sessionID": self.sid, "assistantMessageID": aid, "ordinal": 0, "text": text},
        )
        data["content"][-1]["text"] = text
        self.update(aid, data)

    def tool(self, aid: str, data: dict[str, Any], tool: Tool) -> None:
        call, name, given, output, metadata = tool
        self.tick()
        self.emit(
            "session.tool.called",
            1,
            {"sessionID": self.sid, "assistantMessageID": aid, "id": call, "input": given, "executed": True},
        )
        item: dict[str, Any] = {
            "type": "tool",
            "id": call,
            "name": name,
            "executed": True,
            "state": {"status": "running", "input": given, "metadata": {}},
            "time": {"created": self.t, "ran": self.t},
        }
        data["content"].append(item)
        self.update(aid, data)
        self.tick(self.rng.randint(5, 60))
        content = [{"type": "text", "text": output}]
        self.emit(
            "session.tool.success",
            2,
            {
                "sessionID": self.sid,
                "assistantMessageID": aid,
                "id": call,
                "content": content,
                "metadata": metadata,
                "executed": True,
            },
        )
        item["state"] = {"status": "completed", "input": given, "content": content, "metadata": metadata}
        item["time"]["completed"] = self.t
        self.update(aid, data)

    def end_step(self, aid: str, data: dict[str, Any], finish: str = "stop") -> None:
        self.tick()
        tokens = {"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 0, "write": 0}}
        self.emit(
            "session.step.ended",
            1,
            {
                "sessionID": self.sid,
                "assistantMessageID": aid,
                "finish": finish,
                "cost": 0,
                "tokens": tokens,
                "snapshot": self.snapshot,
                "files": [],
            },
        )
        data["time"]["completed"] = self.t
        data["snapshot"] = {"start": self.snapshot, "end": self.snapshot, "files": []}
        data["finish"], data["cost"], data["tokens"] = finish, 0, tokens
        self.update(aid, data)
        self.db.execute(
            "UPDATE session_v2 SET tokens_input = tokens_input + 10, tokens_output = tokens_output + 5, "
            "time_updated = ? WHERE id = ?",
            (self.t, self.sid),
        )

    def exec_end(self, outcome: str = "succeeded", error: dict[str, Any] | None = None) -> None:
        self.tick()
        eid, seq = self.emit(
            f"session.execution.{outcome}", 1, {"sessionID": self.sid, **({"error": error} if error else {})}
        )
        message: dict[str, Any] = {"time": {"created": self.t}, "outcome": outcome}
        if error:
            message["error"] = error
        self.insert("msg_" + eid[4:], "idle", message, seq)
        self.db.execute(
            "UPDATE session_v2 SET time_idle = ?, idle_outcome = ? WHERE id = ?", (self.t, outcome, self.sid)
        )

    def turn(self, prompt: str, reply: str, tool: Tool | None = None, first: bool = False) -> None:
        """A whole turn: the prompt queued and delivered, a step (with a tool call, then a second step),
        the reply streamed, the execution ended; the first renames the session."""
        inbox = self.enqueue(prompt)
        self.tick(2)
        self.emit("session.execution.started", 1, {"sessionID": self.sid})
        if not self.instructed:
            self.instructions()
        self.deliver(inbox)
        aid, data = self.start_step()
        if tool is not None:
            self.tool(aid, data, tool)
            self.end_step(aid, data, finish="tool-calls")
            aid, data = self.start_step()
        self.text(aid, data, reply)
        self.end_step(aid, data)
        self.exec_end()
        if first:
            self.tick()
            self.emit("session.renamed", 1, {"sessionID": self.sid, "title": self.final_title})
            self.db.execute(
                "UPDATE session_v2 SET title = ?, time_updated = ? WHERE id = ?",
                (self.final_title, self.t, self.sid),
            )

    def failed_turn(self, prompt: str) -> None:
        inbox = self.enqueue(prompt)
        self.tick(2)
        self.emit("session.execution.started", 1, {"sessionID": self.sid})
        self.deliver(inbox)
        aid, data = self.start_step()
        error = {"type": "provider.error", "message": "Fake provider returned HTTP 500"}
        self.tick()
        self.emit(
            "session.step.failed", 1, {"sessionID": self.sid, "assistantMessageID": aid, "error": error}
        )
        data["time"]["completed"] = self.t
        data["finish"], data["error"] = "error", error
        self.update(aid, data)
        self.touch()
        self.exec_end("failed", error)
