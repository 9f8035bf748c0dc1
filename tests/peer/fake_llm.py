"""A tiny fake OpenAI-compatible Chat Completions server (stdlib only), for driving opencode offline.

Endpoints:

- ``POST /v1/chat/completions``: ``stream=true`` -> SSE chunks + ``[DONE]``; ``stream=false`` -> JSON.
- ``GET /v1/models``.

Behaviour:

- Title-generation requests (no tools offered, system prompt mentions "title") get a fixed title.
- If the last user message contains ``TODO`` and no tool result came back since, and the
  ``todowrite`` tool is offered, the answer is a ``todowrite`` tool call (fills opencode's
  ``todo`` table); opencode then asks again and gets the plain reply.
- ``READFILE <absolute path>`` in the last user message, likewise, gets a ``read`` tool call of that
  file (a tool that opencode 2.0 renamed an argument of: its importer then adds a notice).
- The agent tools (``*session_backup_status|sync|restore|search|show``, offered when opencode runs
  ``opencode-backup mcp``): a last user message about backups ("backup", "back up", "sync",
  "restore") with no tool result since gets a call of the matching tool: ``SEARCH-BACKUPS <words>``
  -> search ``{"query": "<words>"}``; ``SHOW-BACKUP <session>`` -> show ``{"session": "<session>"}``;
  "restore" -> restore, with ``{"confirm": true}`` only if it also says "confirm"; "back up"/"sync" ->
  sync, with ``{"force": true}`` if it says "snapshot"; else status ``{}``. The follow-up request
  (with the tool's result) is answered ``Backup tool said: <the result text>``.
- Otherwise the answer is a fixed short reply.

Run as a script: ``python fake_llm.py --port 0 --port-file F [--log FILE]``. With ``--port 0`` the
OS picks a free port; the actual port is written atomically to ``--port-file`` once listening.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Hello from the fake LLM."
TITLE = "Fake session title"
TODOS: list[dict[str, str]] = [
    {"content": "write fake code", "status": "in_progress", "priority": "high", "id": "1"},
    {"content": "test fake code", "status": "pending", "priority": "medium", "id": "2"},
]


def _text_of(content: Any) -> str:
    """Return the plain text of an OpenAI message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def decide(req: dict[str, Any]) -> tuple[str, Any]:
    """Choose the answer: ``("text", str)`` or ``("tool", (name, json_arguments))``."""
    msgs: list[dict[str, Any]] = req.get("messages") or []
    system = " ".join(_text_of(m.get("content")) for m in msgs if m.get("role") == "system")
    tools = [t.get("function", {}).get("name") for t in req.get("tools") or []]
    last_user_idx = max((i for i, m in enumerate(msgs) if m.get("role") == "user"), default=-1)
    last_user = _text_of(msgs[last_user_idx].get("content")) if last_user_idx >= 0 else ""
    tool_after = any(m.get("role") == "tool" for m in msgs[last_user_idx + 1 :])
    if not tools and "title" in system.lower():
        return ("text", TITLE)
    backup = _backup_answer(msgs[last_user_idx + 1 :], tools, last_user)
    if backup is not None:
        return backup
    if "TODO" in last_user and not tool_after and "todowrite" in tools:
        return ("tool", ("todowrite", json.dumps({"todos": TODOS})))
    read = re.search(r"READFILE (\S+)", last_user)
    if read and not tool_after and "read" in tools:
        return ("tool", ("read", json.dumps({"filePath": read.group(1)})))
    return ("text", REPLY)


def _backup_answer(since_user: list[dict[str, Any]], tools: list[Any], text: str) -> tuple[str, Any] | None:
    """The agent-tools behaviour (see the module docstring), or None when it does not apply."""
    said = [_text_of(m.get("content")) for m in since_user if m.get("role") == "tool"]
    called = [
        c.get("function", {}).get("name", "")
        for m in since_user
        for c in m.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    if said and any("session_backup_" in name for name in called):
        return ("text", "Backup tool said: " + " | ".join(said))
    lower = text.lower()
    if said or not any(w in lower for w in ("backup", "back up", "sync", "restore")):
        return None
    search = re.search(r"SEARCH-BACKUPS (.+)", text)
    show = re.search(r"SHOW-BACKUP (\S+)", text)
    if search:
        want, args = "search", {"query": search.group(1).strip()}
    elif show:
        want, args = "show", {"session": show.group(1)}
    elif "restore" in lower:
        want, args = "restore", {"confirm": True} if "confirm" in lower else {}
    elif "back up" in lower or "sync" in lower:
        want, args = "sync", {"force": True} if "snapshot" in lower else {}
    else:
        want, args = "status", {}
    match = [t for t in tools if isinstance(t, str) and t.endswith("session_backup_" + want)]
    return ("tool", (match[0], json.dumps(args))) if match else None


class FakeLLMServer(ThreadingHTTPServer):
    """HTTP server holding the request counter and the optional JSON-lines request log."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], log_path: str | None) -> None:
        super().__init__(addr, Handler)
        self.log_path = log_path
        self.lock = threading.Lock()
        self.counter = 0

    def log(self, obj: dict[str, Any]) -> None:
        """Append one JSON line to the request log, if any."""
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")

    def next_id(self) -> int:
        """Return a fresh completion number."""
        with self.lock:
            self.counter += 1
            return self.counter


class Handler(BaseHTTPRequestHandler):
    """Request handler implementing the two endpoints."""

    protocol_version = "HTTP/1.1"
    server: FakeLLMServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _json(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """Serve ``/v1/models``."""
        self.server.log({"method": "GET", "path": self.path})
        if self.path.rstrip("/").endswith("/models"):
            model = {"id": "fake", "object": "model", "created": 0, "owned_by": "fake"}
            self._json(200, {"object": "list", "data": [model]})
            return
        self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        """Serve ``/v1/chat/completions`` (streaming or not)."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = {}
        self.server.log({"method": "POST", "path": self.path, "body": req})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found: " + self.path}})
            return
        n = self.server.next_id()
        cid = f"chatcmpl-fake-{n}"
        kind, payload = decide(req)
        created = int(time.time())
        model = req.get("model", "fake")
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not req.get("stream"):
            self._complete(
                cid=cid, created=created, model=model, usage=usage, kind=kind, payload=payload, n=n
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None = None, with_usage: bool = False) -> None:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                c["usage"] = usage
            self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            self.wfile.flush()

        chunk({"role": "assistant", "content": ""})
        if kind == "text":
            words = payload.split(" ")
            for i, w in enumerate(words):
                chunk({"content": w + (" " if i < len(words) - 1 else "")})
            chunk({}, "stop", with_usage=True)
        else:
            name, args = payload
            call = {"index": 0, "id": f"call_fake_{n}", "type": "function"}
            chunk({"tool_calls": [{**call, "function": {"name": name, "arguments": ""}}]})
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": args}}]})
            chunk({}, "tool_calls", with_usage=True)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _complete(
        self, *, cid: str, created: int, model: str, usage: dict[str, int], kind: str, payload: Any, n: int
    ) -> None:
        if kind == "text":
            msg: dict[str, Any] = {"role": "assistant", "content": payload}
            finish = "stop"
        else:
            fn = {"name": payload[0], "arguments": payload[1]}
            msg = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": f"call_fake_{n}", "type": "function", "function": fn}],
            }
            finish = "tool_calls"
        choice = {"index": 0, "message": msg, "finish_reason": finish}
        self._json(
            200,
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
            },
        )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, listen on 127.0.0.1 and serve forever."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--port", type=int, default=0, help="0 = let the OS pick a free port")
    ap.add_argument("--port-file", help="write the actual port here once listening")
    ap.add_argument("--log", help="append every request as a JSON line to this file")
    args = ap.parse_args(argv)
    srv = FakeLLMServer(("127.0.0.1", args.port), args.log)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"fake llm on 127.0.0.1:{port}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
