#!/usr/bin/env python3
"""Generate a large, realistic opencode database (``opencode.db``) for benchmarks and tests.

The schema is opencode's real one (``tests/data/schema.sql``, dumped from a database created by
opencode-ai 1.18.33, including the drizzle ``migration`` rows). Rows mimic what opencode writes:
ids in opencode's format (``ses_`` descending, ``msg_``/``prt_``/``evt_`` ascending, time-based),
``message.data``/``part.data`` JSON of the real shapes (user/assistant messages, text, reasoning,
step-start/finish, tool parts for read/bash/edit/write/grep/glob/task/webfetch/todowrite with
long outputs, patch and file parts), todos, child (subagent) sessions, a few projects, and event
rows for the newest sessions. Like real opencode, the last user message of a session is updated
(summary) ~40 ms *after* ``session.time_updated``.

Defaults model a heavy user: 1,800 sessions, 50,000 messages, 175,000 parts, ~800 MB.
``--scale`` multiplies all of them (``--scale 0.01``: a ~8 MB DB for tests).

Usage::

    bench/gen_db.py OUT.db [--scale 1] [--sessions N] [--messages N] [--parts N] [--size-mb MB]
                           [--projects N] [--wal-sessions K] [--seed S] [--force]

Fast: one transaction, ``executemany``, ``journal_mode=OFF`` + ``synchronous=OFF`` while
generating (the JSON is built in the main thread while a writer thread inserts), then the
database is switched to WAL. With ``--wal-sessions K`` the last K sessions are written in WAL
mode and left un-checkpointed in ``OUT.db-wal`` (the process exits without closing, as opencode
does), so the database looks like one opencode just stopped writing to.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import sqlite3
import string
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parent / "tests" / "data" / "schema.sql"
VERSION = "1.18.33"

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
MASK48 = 0xFFFFFFFFFFFF
DAY_MS = 86_400_000
MAX_TOOL_BYTES = 51_200

# fmt: off
ADJECTIVES: tuple[str, ...] = (
    "brave", "calm", "clever", "cosmic", "eager", "gentle", "glowing", "happy", "jolly", "kind",
    "misty", "nimble", "quiet", "swift", "witty",
)
NOUNS: tuple[str, ...] = (
    "canyon", "comet", "forest", "harbor", "meadow", "mountain", "nebula", "orchid", "otter",
    "panda", "river", "sailor", "squid", "tiger",
)
CODE_WORDS: tuple[str, ...] = (
    "config", "path", "options", "result", "value", "error", "client", "server", "request",
    "response", "handler", "session", "message", "part", "index", "buffer", "stream", "token",
    "model", "provider", "cache", "state", "update", "create", "delete", "load", "save", "parse",
    "render", "user", "project", "file", "line", "count", "items", "data", "schema", "query",
    "filter", "mapper", "logger", "context", "timeout", "retry",
)
# fmt: on
MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("openai", "gpt-5"),
    ("openrouter", "qwen/qwen3-coder"),
]
PROJECT_NAMES = [
    "webapp",
    "api-server",
    "infra",
    "ml-pipeline",
    "cli-tool",
    "docs-site",
    "mobile",
    "monorepo",
]
OLD_VERSIONS = ["1.0.150", "1.1.12", "1.2.27", "1.4.3", "1.8.10", "1.12.5", "1.15.2"]
# Tool kinds: (name, weight, size amplification: how many copies of the "size" end up in the JSON)
TOOLS: list[tuple[str, float, float]] = [
    ("read", 0.34, 1.05),
    ("bash", 0.22, 2.0),
    ("edit", 0.16, 2.1),
    ("grep", 0.09, 1.0),
    ("glob", 0.05, 1.0),
    ("write", 0.05, 1.0),
    ("task", 0.03, 1.0),
    ("webfetch", 0.03, 1.0),
    ("todowrite", 0.03, 1.0),
]
TOOL_NAMES = [t[0] for t in TOOLS]
TOOL_WEIGHTS = [t[1] for t in TOOLS]
TOOL_AMP = {t[0]: t[2] for t in TOOLS}
TODO_TEXTS = [
    "Investigate failing test in {m}",
    "Refactor {m} into smaller functions",
    "Add type hints to {m}",
    "Write unit tests for {m}",
    "Update docs for {m}",
    "Fix lint errors in {m}",
    "Benchmark {m}",
]
DEFAULTS = {"sessions": 1800, "messages": 50_000, "parts": 175_000, "size_mb": 800.0}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Corpus:
    """A few MB of code-like text; slices of it make compressible, realistic tool outputs."""

    WORDS = CODE_WORDS

    def __init__(self, rng: random.Random, size: int = 4 << 20) -> None:
        lines: list[str] = []
        total = 0
        w = self.WORDS
        while total < size:
            indent = " " * (4 * rng.randrange(4))
            k = rng.random()
            a, b, c = rng.choice(w), rng.choice(w), rng.choice(w)
            if k < 0.25:
                line = f"{indent}const {a}{b.title()} = await {c}.{a}({b}, {{ {c}: {rng.randrange(1000)} }});"
            elif k < 0.45:
                line = f'{indent}if ({a} === undefined) throw new Error("{b} {c} not found: " + {a});'
            elif k < 0.6:
                line = f"{indent}def {a}_{b}(self, {c}: str) -> dict[str, Any]:"
            elif k < 0.72:
                line = f"{indent}# {a} {b} {c} — {rng.choice(w)} the {rng.choice(w)} before {rng.choice(w)}"
            elif k < 0.82:
                line = f'{indent}return {{"{a}": {b}, "{c}": self.{a}_{c}}}'
            elif k < 0.9:
                line = f"{indent}for {a} in {b}s:\n{indent}    {c}.append({a}.{rng.choice(w)})"
            else:
                line = ""
            lines.append(line)
            total += len(line) + 1
        self.text = "\n".join(lines)
        self.rng = rng

    def take(self, n: int) -> str:
        """Return about ``n`` characters starting at a random line."""
        n = max(1, n)
        t = self.text
        if n >= len(t):
            return (t * (n // len(t) + 1))[:n]
        start = t.find("\n", self.rng.randrange(len(t) - n)) + 1
        return t[start : start + n]


@dataclass
class Params:
    """What to generate."""

    sessions: int
    messages: int
    parts: int
    size_bytes: int
    projects: int = 5
    todo_fraction: float = 0.4
    child_fraction: float = 0.06
    archived_fraction: float = 0.03
    event_fraction: float = 0.05
    wal_sessions: int = 0
    seed: int = 42
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class Stats:
    """Counts and sizes of the generated database."""

    rows: dict[str, int] = field(default_factory=dict)
    payload: int = 0
    elapsed: float = 0.0
    db_bytes: int = 0
    wal_bytes: int = 0


class IdGen:
    """opencode-style identifiers: prefix_ + 12 hex (48 bits of ms*4096+counter) + 14 base62."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.last_ms = 0
        self.counter = 0

    def _rand(self) -> str:
        return "".join(self.rng.choices(BASE62, k=14))

    def _num(self, ms: int) -> int:
        if ms != self.last_ms:
            self.last_ms, self.counter = ms, 0
        self.counter += 1
        return (ms * 0x1000 + self.counter) & MASK48

    def ascending(self, prefix: str, ms: int) -> str:
        return f"{prefix}_{self._num(ms):012x}{self._rand()}"

    def descending(self, prefix: str, ms: int) -> str:
        return f"{prefix}_{~self._num(ms) & MASK48:012x}{self._rand()}"


Row = tuple[Any, ...]


class Batch:
    """Rows of one or more sessions, per table, in insertion order."""

    TABLES = ("project", "project_directory", "session", "message", "part", "todo", "event_sequence", "event")

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {t: [] for t in self.TABLES}

    def __len__(self) -> int:
        return sum(len(v) for v in self.rows.values())


INSERT = {
    "project": "INSERT INTO project (id, worktree, vcs, name, time_created, time_updated, time_initialized,"
    " sandboxes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "project_directory": "INSERT INTO project_directory (project_id, directory, type, strategy, time_created)"
    " VALUES (?, ?, NULL, NULL, ?)",
    "session": "INSERT INTO session (id, project_id, parent_id, slug, directory, path, title, version,"
    " summary_additions, summary_deletions, summary_files, cost, tokens_input, tokens_output,"
    " tokens_reasoning, tokens_cache_read, tokens_cache_write, permission, agent, model, time_created,"
    " time_updated, time_archived) VALUES (" + ", ".join("?" * 23) + ")",
    "message": "INSERT INTO message (id, session_id, time_created, time_updated, data)"
    " VALUES (?, ?, ?, ?, ?)",
    "part": "INSERT INTO part (id, message_id, session_id, time_created, time_updated, data)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "todo": "INSERT INTO todo (session_id, content, status, priority, position, time_created, time_updated)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "event_sequence": "INSERT INTO event_sequence (aggregate_id, seq, owner_id) VALUES (?, ?, NULL)",
    "event": "INSERT INTO event (id, aggregate_id, seq, type, data) VALUES (?, ?, ?, ?, ?)",
}


@dataclass
class Project:
    id: str
    worktree: str


class Generator:
    """Builds the rows; :meth:`batches` yields them session by session."""

    def __init__(self, p: Params) -> None:
        self.p = p
        self.rng = random.Random(p.seed)
        self.ids = IdGen(self.rng)
        self.corpus = Corpus(self.rng)
        self.payload = 0
        self.target = int(p.size_bytes * 0.86)  # the rest: b-tree pages, indexes, ids
        self.projects: list[Project] = []
        self.plan = self._plan_messages()
        users = sum(sum(1 for kind in s if kind == "u") for s in self.plan)
        assistants = p.messages - users
        # content parts per assistant message (besides step-start / step-finish)
        # (~23% of assistant messages also get a patch part, ~3% of user messages a file part)
        extra = 0.23 * assistants + 0.03 * users
        self.content_mean = min(
            5.0, max(1.0, (p.parts - users - 2 * assistants - extra) / max(1, assistants))
        )
        self.msgs_from = [0] * (len(self.plan) + 1)  # messages planned for sessions i..end
        for i in range(len(self.plan) - 1, -1, -1):
            self.msgs_from[i] = self.msgs_from[i + 1] + len(self.plan[i])
        self.sessions_done: list[tuple[str, str, int]] = []  # (id, project id, time) for child sessions

    # ---------------------------------------------------------------- planning
    def _plan_messages(self) -> list[list[str]]:
        """Per session, the message kinds in order: "u" (user) and "a" (assistant)."""
        p, rng = self.p, self.rng
        weights = [rng.lognormvariate(0, 1.1) for _ in range(p.sessions)]
        total_w = sum(weights)
        counts = [max(2, round(w / total_w * p.messages)) for w in weights]
        diff = p.messages - sum(counts)
        order = sorted(range(p.sessions), key=lambda i: -counts[i])
        i = 0
        while diff != 0 and order:
            j = order[i % len(order)]
            if diff > 0:
                counts[j] += 1
                diff -= 1
            elif counts[j] > 2:
                counts[j] -= 1
                diff += 1
            i += 1
            if i > 10 * p.sessions + abs(diff) * 4:
                break
        plans: list[list[str]] = []
        for n in counts:
            kinds: list[str] = []
            while len(kinds) < n:
                kinds.append("u")
                k = 1 + min(int(rng.expovariate(1 / 2.2)), 40)
                kinds.extend("a" * k)
            kinds = kinds[:n]
            if kinds[-1] == "u" and n > 1:
                kinds[-1] = "a"
            plans.append(kinds)
        return plans

    # ---------------------------------------------------------------- projects
    def _projects(self, batch: Batch, t0: int) -> None:
        rng = self.rng
        for i in range(self.p.projects):
            name = PROJECT_NAMES[i % len(PROJECT_NAMES)] + ("" if i < len(PROJECT_NAMES) else f"-{i}")
            pid = f"{rng.getrandbits(160):040x}"
            wt = f"/home/dev/src/{name}"
            self.projects.append(Project(pid, wt))
            batch.rows["project"].append((pid, wt, "git", None, t0, t0, t0, "[]"))
            batch.rows["project_directory"].append((pid, wt, t0))
        # sessions started outside any git repository belong to the "global" project
        self.projects.append(Project("global", "/"))
        batch.rows["project"].append(("global", "/", None, None, t0, t0, None, "[]"))

    # ---------------------------------------------------------------- content
    def _size(self, mean: float, cap: float = 1e12) -> int:
        """A heavy-tailed size with the given mean (lognormal, sigma 1), at most ``cap``."""
        return int(min(cap, max(20.0, mean * self.rng.lognormvariate(-0.5, 1.0))))

    def _tool(self, name: str, size: int, wt: str, t: int, child_sid: str | None) -> dict[str, Any]:
        rng, c = self.rng, self.corpus
        rel = f"src/{rng.choice(Corpus.WORDS)}/{rng.choice(Corpus.WORDS)}.ts"
        path = f"{wt}/{rel}"
        meta: dict[str, Any]
        title = rel
        if name == "read":
            body = c.take(size)
            lines = body.split("\n")
            numbered = "\n".join(f"{i + 1:05d}| {ln}" for i, ln in enumerate(lines))
            inp: dict[str, Any] = {"filePath": path}
            out = f"<file>\n{numbered}\n\n(End of file - total {len(lines)} lines)\n</file>"
            meta = {"preview": "\n".join(lines[:20]), "truncated": False}
        elif name == "bash":
            cmd = rng.choice(
                ["npm test", "pytest -q", "git status", "ls -la src", "cargo build", "make lint"]
            )
            out = c.take(size)
            inp = {"command": cmd, "description": f"Run {cmd}"}
            meta = {
                "output": out,
                "exit": rng.choice([0, 0, 0, 1]),
                "description": f"Run {cmd}",
                "truncated": False,
            }
            title = f"Run {cmd}"
        elif name == "edit":
            before = c.take(size)
            cut = len(before) // 2
            old = before[cut : cut + 80]
            new = old.replace("e", "E", 3)
            after = before[:cut] + new + before[cut + len(old) :]
            inp = {"filePath": path, "oldString": old, "newString": new}
            out = "Edit applied successfully."
            diff = f"Index: {path}\n{'=' * 67}\n--- {path}\n+++ {path}\n@@ -1,3 +1,3 @@\n-{old}\n+{new}\n"
            meta = {
                "diagnostics": {},
                "diff": diff,
                "filediff": {"file": path, "before": before, "after": after, "additions": 1, "deletions": 1},
            }
        elif name == "write":
            inp = {"filePath": path, "content": c.take(size)}
            out = "Wrote file successfully."
            meta = {"diagnostics": {}, "filepath": path, "exists": rng.random() < 0.5}
        elif name == "grep":
            pat = rng.choice(Corpus.WORDS)
            body = c.take(size)
            out = f"Found {body.count(chr(10)) + 1} matches\n{path}:\n  Line 12: " + body.replace(
                "\n", "\n  Line 40: "
            )
            inp = {"pattern": pat, "include": "*.ts"}
            meta = {"matches": body.count("\n") + 1, "truncated": False}
            title = pat
        elif name == "glob":
            n = max(1, size // 40)
            out = "\n".join(
                f"{wt}/src/{rng.choice(Corpus.WORDS)}/{rng.choice(Corpus.WORDS)}{i}.ts" for i in range(n)
            )
            inp = {"pattern": "**/*.ts", "path": wt}
            meta = {"count": n, "truncated": False}
            title = "**/*.ts"
        elif name == "task":
            desc = f"Explore {rng.choice(Corpus.WORDS)} handling"
            inp = {"description": desc, "prompt": c.take(300), "subagent_type": "general"}
            out = c.take(size)
            meta = {"sessionId": child_sid or "", "summary": []}
            title = desc
        elif name == "webfetch":
            url = f"https://docs.example.com/{rng.choice(Corpus.WORDS)}"
            inp = {"url": url, "format": "markdown"}
            out = "# Docs\n\n" + c.take(size)
            meta = {}
            title = f"{url} (text/markdown)"
        else:  # todowrite
            todos = [
                {"content": rng.choice(TODO_TEXTS).format(m=rel), "status": "pending", "priority": "medium"}
                for _ in range(rng.randrange(2, 6))
            ]
            inp = {"todos": [dict(td, id=str(i + 1)) for i, td in enumerate(todos)]}
            out = json.dumps(todos, indent=2)
            meta = {"todos": todos, "truncated": False}
            title = f"{len(todos)} todos"
        state = {
            "status": "completed",
            "input": inp,
            "output": out,
            "metadata": meta,
            "title": title,
            "time": {"start": t, "end": t + rng.randrange(5, 3000)},
        }
        if rng.random() < 0.02:
            state = {
                "status": "error",
                "input": inp,
                "error": "Error: " + c.take(200),
                "time": {"start": t, "end": t + 10},
            }
        call_id = "toolu_" + "".join(rng.choices(BASE62, k=24))
        return {"type": "tool", "tool": name, "callID": call_id, "state": state}

    # ---------------------------------------------------------------- sessions
    def _session(self, idx: int, batch: Batch, t_start: int, with_events: bool) -> None:
        p, rng, ids, c = self.p, self.rng, self.ids, self.corpus
        kinds = self.plan[idx]
        project = (
            self.projects[-1] if rng.random() < 0.05 else rng.choice(self.projects[:-1] or self.projects)
        )
        wt = project.worktree
        parent: tuple[str, str, int] | None = None
        if self.sessions_done and rng.random() < p.child_fraction:
            parent = rng.choice(self.sessions_done[-50:])
            project = next((pr for pr in self.projects if pr.id == parent[1]), project)
            wt = project.worktree
        sid = ids.descending("ses", t_start)
        provider, model = rng.choice(MODELS)
        t = t_start + rng.randrange(20, 400)
        n_parts_session = len(kinds) * (p.parts / max(1, p.messages))
        remaining_msgs = self.msgs_from[idx]
        budget = max(0.0, (self.target - self.payload) * len(kinds) / max(1, remaining_msgs))
        tools_expected = max(1.0, n_parts_session * 0.25)
        mean_tool = max(200.0, budget * 0.92 / tools_expected)
        msgs: list[Row] = []
        parts: list[Row] = []
        events: list[tuple[str, dict[str, Any]]] = []
        tok_in = tok_out = tok_cache = 0
        cost_total = 0.0
        user_id = ""
        user_row = -1
        user_data: dict[str, Any] = {}
        snapshot = f"{rng.getrandbits(160):040x}"
        payload = 0
        for mi, kind in enumerate(kinds):
            last_in_turn = mi + 1 == len(kinds) or kinds[mi + 1] == "u"
            mid = ids.ascending("msg", t)
            m_created = t
            if kind == "u":
                user_id, user_data = (
                    mid,
                    {
                        "role": "user",
                        "time": {"created": t},
                        "agent": "build",
                        "model": {"providerID": provider, "modelID": model},
                        "summary": {"diffs": []},
                    },
                )
                t += rng.randrange(1, 20)
                text = c.take(rng.randrange(40, 1500)).replace("\n", " ")
                mparts: list[dict[str, Any]] = [{"type": "text", "text": text}]
                if rng.random() < 0.03:
                    fname = f"{rng.choice(Corpus.WORDS)}.md"
                    mparts.append(
                        {
                            "type": "file",
                            "mime": "text/plain",
                            "filename": fname,
                            "url": f"file://{wt}/{fname}",
                        }
                    )
            else:
                n_content = 1 + sum(rng.random() < (self.content_mean - 1) / 4 for _ in range(4))
                t += rng.randrange(300, 4000)
                mparts = [{"snapshot": snapshot, "type": "step-start"}]
                if last_in_turn:
                    for k in range(n_content):
                        ptype = "reasoning" if k == 0 and n_content > 1 else "text"
                        body = (
                            c.take(rng.randrange(100, 2500))
                            if ptype == "reasoning"
                            else c.take(self._size(900))
                        )
                        ts = {"start": t, "end": t + rng.randrange(50, 5000)}
                        mparts.append({"type": ptype, "text": body, "time": ts})
                        t += rng.randrange(50, 3000)
                    finish = "stop"
                else:
                    if n_content > 1 and rng.random() < 0.4:
                        ts = {"start": t, "end": t + rng.randrange(50, 500)}
                        mparts.append({"type": "text", "text": c.take(rng.randrange(40, 600)), "time": ts})
                    while len(mparts) < n_content + 1:
                        name = rng.choices(TOOL_NAMES, TOOL_WEIGHTS)[0]
                        # opencode truncates tool output at 50 KB (2000 lines)
                        size = int(self._size(mean_tool, MAX_TOOL_BYTES * TOOL_AMP[name]) / TOOL_AMP[name])
                        child = parent[0] if parent else None
                        mparts.append(self._tool(name, size, wt, t, child))
                        t += rng.randrange(20, 4000)
                    finish = "tool-calls"
                i_tok, o_tok, r_tok = rng.randrange(2000, 60000), rng.randrange(20, 4000), 0
                cr = rng.randrange(0, i_tok)
                cost = round((i_tok * 3 + o_tok * 15) / 1e6, 6)
                tokens: dict[str, Any] = {"total": i_tok + o_tok, "input": i_tok, "output": o_tok}
                tokens.update(reasoning=r_tok, cache={"write": 0, "read": cr})
                tok_in, tok_out, tok_cache, cost_total = (
                    tok_in + i_tok,
                    tok_out + o_tok,
                    tok_cache + cr,
                    cost_total + cost,
                )
                if any(pt.get("tool") in ("edit", "write") for pt in mparts):
                    files = [
                        pt["state"]["input"]["filePath"]
                        for pt in mparts
                        if pt.get("tool") in ("edit", "write")
                    ]
                    mparts.append({"type": "patch", "hash": f"{rng.getrandbits(160):040x}", "files": files})
                mparts.append(
                    {
                        "reason": finish,
                        "snapshot": snapshot,
                        "type": "step-finish",
                        "tokens": tokens,
                        "cost": cost,
                    }
                )
                t += rng.randrange(5, 200)
                mdata: dict[str, Any] = {
                    "parentID": user_id,
                    "role": "assistant",
                    "mode": "build",
                    "agent": "build",
                    "path": {"cwd": wt, "root": wt},
                    "cost": cost,
                    "tokens": tokens,
                    "modelID": model,
                    "providerID": provider,
                    "time": {"created": m_created, "completed": t},
                    "finish": finish,
                }
            # parts
            for pd in mparts:
                pid = ids.ascending("prt", t)
                pt0 = t
                t += rng.randrange(1, 30)
                pdata = _dumps(pd)
                payload += len(pdata)
                parts.append((pid, mid, sid, pt0, t, pdata))
                if with_events:
                    ev = {
                        "sessionID": sid,
                        "part": {"id": pid, "sessionID": sid, "messageID": mid, **pd},
                        "time": pt0,
                    }
                    events.append(("message.part.updated.1", ev))
            if kind == "u":
                user_row = len(msgs)
                msgs.append((mid, sid, m_created, t, ""))  # data filled below (updated later)
                if with_events:
                    info = {"id": mid, "sessionID": sid, **user_data}
                    events.append(("message.updated.1", {"sessionID": sid, "info": info}))
            else:
                data = _dumps(mdata)
                payload += len(data)
                msgs.append((mid, sid, m_created, t + 2, data))
                if with_events:
                    events.append(
                        (
                            "message.updated.1",
                            {"sessionID": sid, "info": {"id": mid, "sessionID": sid, **mdata}},
                        )
                    )
            if kind == "a" and last_in_turn and user_row >= 0:
                # the user message is rewritten (summary) after its turn finished
                data = _dumps(user_data)
                payload += len(data)
                u = msgs[user_row]
                msgs[user_row] = (u[0], u[1], u[2], t + rng.randrange(30, 150), data)
            t += rng.randrange(2000, 120000) if last_in_turn else rng.randrange(5, 100)
        if user_row >= 0 and not msgs[user_row][4]:
            u = msgs[user_row]
            msgs[user_row] = (u[0], u[1], u[2], u[3], _dumps(user_data))
        last_part = max((r[4] for r in parts), default=t_start)
        s_updated = last_part + rng.randrange(20, 80)
        # quirk of real opencode: the last user message is updated ~40 ms after session.time_updated
        if user_row >= 0:
            u = msgs[user_row]
            msgs[user_row] = (u[0], u[1], u[2], s_updated + rng.randrange(20, 120), u[4])
        slug = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        title = (
            f"{c.take(40).strip()[:40]} (@general subagent)" if parent else c.take(60).strip()[:60]
        ) or "New session"
        old = t_start < p.now_ms - 120 * DAY_MS
        version = rng.choice(OLD_VERSIONS) if old else VERSION
        model_json = None if old else _dumps({"id": model, "providerID": provider, "variant": "default"})
        permission = _dumps([{"permission": "task", "pattern": "*", "action": "deny"}]) if parent else None
        archived = s_updated + DAY_MS if rng.random() < p.archived_fraction else None
        adds, dels = rng.randrange(0, 400), rng.randrange(0, 200)
        srow = (
            sid, project.id, parent[0] if parent else None, slug, wt, "", title, version,
            adds, dels, rng.randrange(0, 12), round(cost_total, 6), tok_in, tok_out, 0, tok_cache, 0,
            permission, None if old else "build", model_json, t_start, s_updated, archived,
        )  # fmt: skip
        batch.rows["session"].append(srow)
        batch.rows["message"].extend(msgs)
        batch.rows["part"].extend(parts)
        payload += sum(len(r[4]) for r in msgs) // 10  # ids and columns (rough)
        if rng.random() < p.todo_fraction:
            tt = t_start + (s_updated - t_start) // 2
            for pos in range(rng.randrange(2, 9)):
                status = rng.choice(["completed", "completed", "in_progress", "pending", "cancelled"])
                content = rng.choice(TODO_TEXTS).format(m=rng.choice(Corpus.WORDS))
                batch.rows["todo"].append(
                    (sid, content, status, rng.choice(["high", "medium", "low"]), pos, tt, tt)
                )
        if with_events:
            info = {
                "id": sid,
                "slug": slug,
                "projectID": project.id,
                "directory": wt,
                "path": "",
                "title": title,
                "version": version,
                "time": {"created": t_start, "updated": s_updated},
            }
            events.insert(0, ("session.created.1", {"sessionID": sid, "info": info}))
            events.append(("session.updated.1", {"sessionID": sid, "info": info}))
            for seq, (etype, edata) in enumerate(events):
                data = _dumps(edata)
                payload += len(data)
                batch.rows["event"].append((ids.ascending("evt", t_start + seq), sid, seq, etype, data))
            batch.rows["event_sequence"].append((sid, len(events) - 1))
        self.payload += payload
        self.sessions_done.append((sid, project.id, t_start))

    def batches(self, first: int = 0, stop: int | None = None, rows_per_batch: int = 4000) -> Iterator[Batch]:
        """Yield batches for sessions ``first..stop`` (projects come with the first batch)."""
        p = self.p
        stop = p.sessions if stop is None else stop
        span = 400 * DAY_MS
        start_ms = p.now_ms - span
        batch = Batch()
        if first == 0:
            self._projects(batch, start_ms - DAY_MS)
        step = span / max(1, p.sessions)
        events_from = p.sessions - math.ceil(p.sessions * p.event_fraction)
        for i in range(first, stop):
            t_start = int(start_ms + i * step + self.rng.random() * step * 0.5)
            self._session(i, batch, t_start, with_events=i >= events_from)
            if len(batch) >= rows_per_batch:
                yield batch
                batch = Batch()
        if len(batch):
            yield batch


def _writer(
    con: sqlite3.Connection, q: queue.Queue[Batch | None], counts: dict[str, int], err: list[BaseException]
) -> None:
    try:
        while True:
            batch = q.get()
            if batch is None:
                return
            for table in Batch.TABLES:
                rows = batch.rows[table]
                if rows:
                    con.executemany(INSERT[table], rows)
                    counts[table] = counts.get(table, 0) + len(rows)
    except BaseException as e:
        err.append(e)
        while q.get() is not None:  # drain so the producer never blocks
            pass


def _write(con: sqlite3.Connection, batches: Iterator[Batch], counts: dict[str, int]) -> None:
    """Insert batches from a writer thread while the caller's thread builds the next ones."""
    q: queue.Queue[Batch | None] = queue.Queue(maxsize=3)
    err: list[BaseException] = []
    th = threading.Thread(target=_writer, args=(con, q, counts, err), name="gen_db-writer")
    th.start()
    try:
        for b in batches:
            q.put(b)
            if err:
                break
    finally:
        q.put(None)
        th.join()
    if err:
        raise err[0]


def generate(out: Path, p: Params, force: bool = False, quiet: bool = False) -> Stats:
    """Create ``out`` (must not exist unless ``force``) and fill it; return :class:`Stats`.

    With ``p.wal_sessions`` > 0 this function does not return: it exits the process right
    after the WAL writes so that ``out-wal`` keeps them (see the module docstring).
    """
    t0 = time.monotonic()
    out = out.resolve()
    for suffix in ("", "-wal", "-shm", "-journal"):
        f = Path(f"{out}{suffix}")
        if f.exists():
            if not force:
                raise FileExistsError(f"{f} exists (use --force)")
            f.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(out, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")  # 256 MB
    con.execute("PRAGMA temp_store=MEMORY")
    con.executescript(SCHEMA.read_text())
    con.execute("BEGIN")
    gen = Generator(p)
    counts: dict[str, int] = {}
    wal_n = min(max(0, p.wal_sessions), p.sessions)
    _write(con, gen.batches(0, p.sessions - wal_n), counts)
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    stats = Stats(rows=counts, payload=gen.payload)
    if wal_n:
        con.execute("PRAGMA wal_autocheckpoint=0")
        con.execute("BEGIN")
        _write(con, gen.batches(p.sessions - wal_n, p.sessions, rows_per_batch=1), counts)
        con.execute("COMMIT")
        _report(out, stats, t0, quiet)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # no close: like opencode, leave the -wal file with un-checkpointed frames
    con.close()
    return _report(out, stats, t0, quiet)


def _report(out: Path, stats: Stats, t0: float, quiet: bool) -> Stats:
    stats.elapsed = time.monotonic() - t0
    stats.db_bytes = out.stat().st_size
    wal = Path(f"{out}-wal")
    stats.wal_bytes = wal.stat().st_size if wal.exists() else 0
    if not quiet:
        rows = ", ".join(f"{k}={v}" for k, v in sorted(stats.rows.items()))
        size = f"{stats.db_bytes / 1e6:.1f} MB (+ wal {stats.wal_bytes / 1e6:.1f} MB)"
        print(f"{out}: {size} in {stats.elapsed:.1f} s")
        print(f"rows: {rows}")
    return stats


def params_from_args(args: argparse.Namespace) -> Params:
    """Scale the defaults and apply explicit overrides."""
    s = args.scale

    def pick(name: str) -> float:
        v = getattr(args, name)
        return float(v) if v is not None else DEFAULTS[name] * s

    sessions = max(1, round(pick("sessions")))
    messages = max(2 * sessions, round(pick("messages")))
    parts = max(messages, round(pick("parts")))
    return Params(
        sessions=sessions,
        messages=messages,
        parts=parts,
        size_bytes=int(pick("size_mb") * 1e6),
        projects=args.projects,
        wal_sessions=args.wal_sessions,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("out", type=Path, help="database file to create (e.g. /tmp/bench/opencode.db)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the default sizes (0.01 = tiny)")
    ap.add_argument("--sessions", type=int, help=f"default {DEFAULTS['sessions']:.0f} x scale")
    ap.add_argument("--messages", type=int, help=f"default {DEFAULTS['messages']:.0f} x scale")
    ap.add_argument("--parts", type=int, help=f"default {DEFAULTS['parts']:.0f} x scale")
    ap.add_argument(
        "--size-mb", type=float, help=f"approximate DB size, default {DEFAULTS['size_mb']:.0f} x scale"
    )
    ap.add_argument("--projects", type=int, default=5, help="git projects (plus 'global')")
    ap.add_argument("--wal-sessions", type=int, default=0, help="leave the last K sessions in OUT-wal")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--force", action="store_true", help="overwrite OUT")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        generate(args.out, params_from_args(args), force=args.force, quiet=args.quiet)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
