"""The MCP session on stdio: lifecycle, ping, tools/list, tools/call, progress and cancellation.

Threads: the **reading thread** (the CLI's main thread) reads one message at a time and answers
everything but ``tools/call`` itself, at once, so ``initialize`` and ``ping`` never wait behind a tool.
Each ``tools/call`` runs on its own **call thread**; while it runs, a **heartbeat thread** sends
``notifications/progress`` with the client's token every ``heartbeat`` seconds, because opencode cuts a
call after 60 s unless progress arrives. All writes go through one :class:`~app.mcp.protocol.Writer`.
The table of running calls is the only state shared between threads; it is guarded by one lock.

EOF on stdin ends the session. A client may close stdin and still read the answers (a script piping
requests in), so running calls get ``eof_wait`` seconds to finish and answer; then they are cancelled.
:meth:`Server.stop` (the CLI calls it on SIGTERM, which opencode sends 2 s after closing stdin) cancels at
once: a sync stops at its next check point and leaves the backup consistent. A call thread still running
``cancel_wait`` seconds later (a restore mid-way, a sync the service does for us) is a daemon and ends
with the process, which leaves opencode's database consistent too (each restored session is one
transaction).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

from app.mcp import protocol as rpc
from app.mcp.calls import CallContext, ToolResult, UnknownTool

logger = logging.getLogger(__name__)

# Newest first. opencode 1.18.33 offers 2025-11-25; older clients get the version they asked for.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


class ToolBox(Protocol):
    """What the server needs from the tools (app.mcp.tools.Tools; tests pass fakes)."""

    def list(self) -> list[dict[str, Any]]: ...

    def call(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult: ...


@dataclass(frozen=True)
class ServerInfo:
    """How the server introduces itself in ``initialize``."""

    name: str
    version: str
    instructions: str = ""


class _Call:
    """One running ``tools/call``: its cancel flag, and the progress it reports (a CallContext)."""

    def __init__(self, request_id: rpc.RequestId, token: rpc.RequestId | None, writer: rpc.Writer) -> None:
        self.request_id = request_id
        self.token = token
        self._writer = writer
        self._cancel = threading.Event()
        self.done = threading.Event()
        self.started = time.monotonic()
        self._lock = threading.Lock()  # progress numbers must increase: number and write go together
        self._sent = 0
        self._message = "working"

    @property
    def cancel(self) -> threading.Event:
        return self._cancel

    def progress(self, message: str) -> None:
        """Report ``message`` now (the tool's thread); the heartbeat repeats the latest one."""
        with self._lock:
            self._message = message
        self._send()

    def beat(self) -> None:
        """Repeat the latest message with the time elapsed (heartbeat thread)."""
        self._send(elapsed=True)

    def _send(self, elapsed: bool = False) -> None:
        if self.token is None or self._cancel.is_set():
            return
        with self._lock:
            self._sent += 1
            message = self._message
            if elapsed:
                message += f" ({time.monotonic() - self.started:.0f} s)"
            params = {"progressToken": self.token, "progress": self._sent, "message": message}
            self._writer.send(rpc.notification_message("notifications/progress", params))


class Server:
    """One MCP session over a pair of byte streams."""

    def __init__(
        self,
        tools: ToolBox,
        out: IO[bytes],
        info: ServerInfo,
        *,
        heartbeat: float = 10.0,
        eof_wait: float = 60.0,
        cancel_wait: float = 10.0,
    ) -> None:
        self._tools = tools
        self._writer = rpc.Writer(out)
        self._info = info
        self._heartbeat = heartbeat
        self._eof_wait = eof_wait
        self._cancel_wait = cancel_wait
        self._lock = threading.Lock()
        self._calls: dict[rpc.RequestId, _Call] = {}
        self._threads: list[threading.Thread] = []

    def serve(self, stdin: IO[bytes]) -> None:
        """Answer messages from ``stdin`` until EOF; then let running calls finish and answer for up to
        ``eof_wait`` seconds, and :meth:`stop` the rest (reading thread)."""
        for line in rpc.read_lines(stdin):
            if line is None:
                self._writer.send(rpc.error_message(None, rpc.PARSE_ERROR, "Parse error: line too long"))
                continue
            self.handle(line)
        self._join(self._eof_wait)
        self.stop()

    def stop(self) -> None:
        """Cancel the running calls (their answers are dropped) and wait up to ``cancel_wait`` seconds
        for them (the reading thread, or a signal handler on it)."""
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel.set()
        for thread in self._join(self._cancel_wait):
            logger.warning("%s still running; it ends with the process", thread.name)

    def handle(self, line: bytes) -> None:
        """Answer one line (reading thread); a tool call is started, not waited for."""
        try:
            message = rpc.decode(line)
            if isinstance(message, rpc.Request):
                result = self._request(message)
                if result is not None:
                    self._writer.send(rpc.result_message(message.id, result))
            elif isinstance(message, rpc.Notification):
                self._notification(message)
            else:
                logger.debug("ignoring a reply to a request never sent: %r", message.id)
        except rpc.RpcError as exc:
            self._writer.send(rpc.error_message(exc.request_id, exc.code, exc.message))

    def _request(self, req: rpc.Request) -> dict[str, Any] | None:
        if req.method == "initialize":
            return self._initialize(req.params)
        if req.method == "ping":
            return {}
        if req.method == "tools/list":
            return {"tools": self._tools.list()}
        if req.method == "tools/call":
            self._start_call(req)
            return None
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"Method not found: {req.method}", req.id)

    def _initialize(self, params: Mapping[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        answer: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": self._info.name, "version": self._info.version},
        }
        if self._info.instructions:
            answer["instructions"] = self._info.instructions
        return answer

    def _notification(self, note: rpc.Notification) -> None:
        if note.method == "notifications/cancelled":
            rid = note.params.get("requestId")
            with self._lock:
                call = self._calls.get(rid) if isinstance(rid, str | int) else None
            if call is None:  # opencode cancels calls that already finished: nothing to do
                logger.debug("cancel for a call that is not running: %r", rid)
                return
            logger.info("call %r cancelled: %s", rid, note.params.get("reason") or "no reason given")
            call.cancel.set()
        # notifications/initialized and anything else need nothing from a tools-only server

    def _start_call(self, req: rpc.Request) -> None:
        name = req.params.get("name")
        arguments = req.params.get("arguments") or {}
        if not isinstance(name, str):
            raise rpc.RpcError(rpc.INVALID_PARAMS, "Invalid params: name must be a string", req.id)
        if not isinstance(arguments, dict):
            raise rpc.RpcError(rpc.INVALID_PARAMS, "Invalid params: arguments must be an object", req.id)
        if name not in {t["name"] for t in self._tools.list()}:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"Unknown tool: {name}", req.id)
        meta = req.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        call = _Call(req.id, token if isinstance(token, str | int) else None, self._writer)
        with self._lock:
            if req.id in self._calls:
                raise rpc.RpcError(rpc.INVALID_REQUEST, f"Invalid Request: id {req.id!r} is in use", req.id)
            self._calls[req.id] = call
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(
                target=self._run_call, args=(call, name, arguments), name=f"mcp-call-{name}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _run_call(self, call: _Call, name: str, arguments: dict[str, Any]) -> None:
        """Run one tool and answer it (its call thread)."""
        beat = None
        if call.token is not None:
            beat = threading.Thread(target=self._beat, args=(call,), name="mcp-progress", daemon=True)
            beat.start()
        try:
            result = self._tools.call(name, arguments, call)
            answer = rpc.result_message(call.request_id, result.to_json())
        except UnknownTool:
            answer = rpc.error_message(call.request_id, rpc.INVALID_PARAMS, f"Unknown tool: {name}")
        except Exception as exc:  # a bug in a tool must not end the session; the model hears one line
            logger.exception("tool %s crashed", name)
            text = f"The {name} tool failed with an internal error: {exc!r}"
            answer = rpc.result_message(call.request_id, ToolResult(text, is_error=True).to_json())
        finally:
            call.done.set()
            if beat is not None:
                beat.join()  # no progress may follow the answer
            with self._lock:
                self._calls.pop(call.request_id, None)
        if call.cancel.is_set():
            logger.info("not answering cancelled call %r", call.request_id)
            return
        self._writer.send(answer)

    def _beat(self, call: _Call) -> None:
        """Send progress until the call ends (heartbeat thread)."""
        while not call.done.wait(self._heartbeat):
            call.beat()

    def _join(self, timeout: float) -> list[threading.Thread]:
        """Wait up to ``timeout`` seconds for the call threads; return those still running."""
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]
