"""Talking to the MCP server in tests: the real ``opencode-backup mcp`` process, or a Server on pipes.

Both read the server's output on a thread into a queue, so a missing answer fails a test after
``timeout`` seconds instead of hanging it; every thread and process is ended by ``close``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from app.mcp.server import Server
from app.opencode.agent_config import mcp_command

ROOT = Path(__file__).resolve().parent.parent
INIT_PARAMS = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "tests", "version": "0"},
}


def server_command() -> list[str]:
    """``opencode-backup mcp`` exactly as ``agent-tools enable`` registers it (this venv's console script)."""
    return mcp_command()


class Lines:
    """JSON messages read from ``stream`` on a thread; ``get`` waits for the next one."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, name="mcp-test-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in iter(self._stream.readline, b""):
            self._queue.put(json.loads(line))
        self._queue.put(None)

    def get(self, timeout: float = 30) -> dict[str, Any] | None:
        """The next message, or None at EOF; raises queue.Empty after ``timeout`` seconds."""
        return self._queue.get(timeout=timeout)

    def answer(self, request_id: object, timeout: float = 30) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The answer to ``request_id``, and the notifications that came before it."""
        before = []
        while True:
            message = self.get(timeout)
            assert message is not None, f"EOF before the answer to {request_id!r}; got {before}"
            if "method" not in message and message.get("id") == request_id:
                return message, before
            before.append(message)

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)


def request(rid: object, method: str, params: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode()


class Process:
    """The real server as a child process (``env``: its whole environment)."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [*server_command(), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.lines = Lines(self.proc.stdout)
        self._stdin = self.proc.stdin

    def send(self, line: bytes) -> None:
        self._stdin.write(line + b"\n")
        self._stdin.flush()

    def close(self, timeout: float = 30) -> tuple[int, str]:
        """EOF on stdin; wait for the exit; return (exit code, stderr)."""
        self._stdin.close()
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.lines.join()
        assert self.proc.stderr is not None and self.proc.stdout is not None
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code, err


class InProcess:
    """A Server on two pipes, serving on a thread of this process."""

    def __init__(self, server_factory: Any) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        self._server_in = os.fdopen(in_r, "rb")
        self._client_out = os.fdopen(in_w, "wb")
        self._server_out = os.fdopen(out_w, "wb")
        self._client_in = os.fdopen(out_r, "rb")
        self.server: Server = server_factory(self._server_out)
        self._thread = threading.Thread(target=self._serve, name="mcp-test-server")
        self._thread.start()
        self.lines = Lines(self._client_in)

    def _serve(self) -> None:
        try:
            self.server.serve(self._server_in)
        finally:
            self._server_out.close()

    def send(self, line: bytes) -> None:
        self._client_out.write(line + b"\n")
        self._client_out.flush()

    def close(self, timeout: float = 30) -> None:
        """EOF for the server; wait for it and the reader to end."""
        self._client_out.close()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the server did not end at EOF"
        self.lines.join()
        self._server_in.close()
        self._client_in.close()
