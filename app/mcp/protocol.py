"""JSON-RPC 2.0 as MCP frames it on stdio: one JSON object per line, UTF-8, no embedded newlines.

    RpcError            a message that gets a JSON-RPC error; ``code`` is one of the constants below
                        and ``request_id`` the id to answer (None when it could not be read)

Decoding is strict about the envelope (``"jsonrpc": "2.0"``, a string or integer id, an object of
params) and knows nothing of MCP methods; :mod:`app.mcp.server` does. Batches (a JSON array) were
dropped from MCP in 2025-06-18 and no client sends them: they get one Invalid Request error.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

logger = logging.getLogger(__name__)

RequestId = str | int

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# A line longer than this is answered with a parse error and skipped, never held in memory whole.
MAX_LINE_BYTES = 4 << 20


class RpcError(Exception):
    """A message that gets a JSON-RPC error answer; ``str(e)`` is its one-line message."""

    def __init__(self, code: int, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    """A call that wants an answer."""

    id: RequestId
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """A message that wants no answer (not even an error)."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A response from the client. This server sends no requests, so replies are only logged."""

    id: RequestId | None


Incoming = Request | Notification | Reply


def decode(line: bytes) -> Incoming:
    """One incoming message from one line; raises RpcError for anything that is not JSON-RPC 2.0."""
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        raise RpcError(PARSE_ERROR, "Parse error: not valid JSON") from None
    if isinstance(doc, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batches are not supported")
    if not isinstance(doc, dict):
        raise RpcError(INVALID_REQUEST, "Invalid Request: not a JSON object")
    raw_id = doc.get("id")
    rid = raw_id if _is_id(raw_id) else None
    if doc.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', rid)
    if "method" not in doc:
        if "result" in doc or "error" in doc:
            return Reply(rid)
        raise RpcError(INVALID_REQUEST, "Invalid Request: no method", rid)
    method = doc["method"]
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a string", rid)
    params = doc.get("params", {})
    if "id" not in doc:
        return Notification(method, params if isinstance(params, dict) else {})
    if rid is None:
        raise RpcError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object", rid)
    return Request(rid, method, params)


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def result_message(request_id: RequestId, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": dict(result)}


def error_message(request_id: RequestId | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def notification_message(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": dict(params)}


def read_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The non-blank lines of ``stream`` until EOF (reading thread). A line longer than ``limit`` is
    skipped to its end and yields None, so the caller can answer it with a parse error."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # drop the rest of the oversized line
                rest = stream.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        if line.strip():
            yield line


class Writer:
    """Writes whole messages, one per line, from any thread; a closed pipe makes later writes no-ops."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._closed = False

    def send(self, message: Mapping[str, Any]) -> bool:
        """Write ``message`` and flush it (any thread); False once the client is gone."""
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            if self._closed:
                return False
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError) as exc:  # a broken pipe, or a stream closed under us
                logger.debug("client gone, message dropped: %s", exc)
                self._closed = True
                return False
        return True
