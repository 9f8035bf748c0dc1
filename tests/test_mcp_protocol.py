"""The MCP server as a client meets it: the official SDK's client (the protocol's reference
implementation) against ``opencode-backup mcp``, raw JSON-RPC mistakes, start-up imports, and the
session's threading (pings and progress while a tool runs, cancellation, EOF) with fake tools."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from app.mcp import protocol as rpc
from app.mcp.calls import CallContext, ToolResult
from app.mcp.server import PROTOCOL_VERSIONS, Server, ServerInfo
from tests import dbfactory as f
from tests.mcp_harness import INIT_PARAMS, InProcess, Process, request, server_command

# What a tool call may load and start-up must not: the engine and everything that reads opencode's data.
ENGINE = ("app.backup", "app.service", "app.opencode", "app.transfer.native", "app.wiring", "sqlite3")


@pytest.fixture
def world(isolated_home: Path, tmp_path: Path) -> dict[str, Any]:
    """opencode's database with two sessions, an empty backup folder, and the server's environment."""
    db = isolated_home / ".local/share/opencode/opencode.db"
    conn = f.create_db(db)
    for sid in ("ses_mcp_a", "ses_mcp_b"):
        f.add_session(conn, sid)
    conn.close()
    backup = tmp_path / "backup"
    backup.mkdir()
    env = {**os.environ, "OPENCODE_BACKUP_PATH": str(backup)}
    return {"db": db, "backup": backup, "env": env}


def db_bytes(db: Path) -> tuple[bytes, bytes]:
    wal = Path(f"{db}-wal")
    return db.read_bytes(), wal.read_bytes() if wal.exists() else b""


def test_the_sdk_client_lists_the_tools_and_calls_each(world: dict[str, Any]) -> None:
    from mcp import Client, StdioServerParameters

    db: Path = world["db"]
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async def session() -> dict[str, Any]:
        cmd = server_command()
        params = StdioServerParameters(
            command=cmd[0], args=[*cmd[1:], "--machine-name", "m1"], env=world["env"]
        )
        out: dict[str, Any] = {}
        async with Client(params) as client:
            out["version"] = client.protocol_version
            out["tools"] = (await client.list_tools()).tools
            out["status_before"] = await client.call_tool("status", {})
            out["sync"] = await client.call_tool("sync", {"force": True}, progress_callback=on_progress)
            out["status_after"] = await client.call_tool("status", {})
            f.delete_session(db, "ses_mcp_a")
            before = db_bytes(db)
            out["plan"] = await client.call_tool("restore", {})
            out["unchanged"] = db_bytes(db) == before
            out["restore"] = await client.call_tool("restore", {"confirm": True})
            out["search"] = await client.call_tool("search", {"query": "hello", "limit": 1})
            out["show"] = await client.call_tool("show", {"session": "ses_mcp_b"})
        return out

    out = asyncio.run(session())

    def text(result: Any) -> str:
        assert not result.is_error, result
        return "\n".join(c.text for c in result.content)

    assert out["version"] == PROTOCOL_VERSIONS[0]
    tools = {t.name: t for t in out["tools"]}
    assert list(tools) == ["status", "sync", "restore", "search", "show"]
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["show"].input_schema["required"] == ["session"]
    assert tools["status"].input_schema["properties"] == {}
    assert tools["sync"].input_schema["properties"]["force"]["type"] == "boolean"
    assert tools["restore"].input_schema["properties"]["confirm"]["type"] == "boolean"
    sessions = tools["restore"].input_schema["properties"]["sessions"]
    assert sessions["type"] == "array" and sessions["items"] == {"type": "string", "minLength": 1}
    assert all(t.input_schema["additionalProperties"] is False for t in tools.values())
    assert "Last backup: none yet" in text(out["status_before"])
    assert "Backup done (ok)" in text(out["sync"]) and "Sessions backed up: 2" in text(out["sync"])
    assert "snapshot snapshots/opencode-" in text(out["sync"])  # force took one
    assert "backing up" in progress  # the sync said what it does, with the SDK's progress token
    after = text(out["status_after"])
    assert "Sessions backed up: 2" in after and "Pending changes: 0 session(s)" in after
    assert "ses_mcp_a" in text(out["plan"]) and "nothing has been changed" in text(out["plan"])
    assert out["unchanged"], "a restore without confirm changed opencode's database"
    assert "Restored 1 session(s)" in text(out["restore"])
    assert text(out["search"]).startswith("1 backed-up session(s) hold these words")
    assert "## Assistant" in text(out["show"]) and "hello 1.0" in text(out["show"])
    conn = f.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM session WHERE id = 'ses_mcp_a'").fetchone() == (1,)
    finally:
        conn.close()


BAD_LINES = [
    (b"not json at all", None, rpc.PARSE_ERROR),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', None, rpc.PARSE_ERROR),
    (b'[{"jsonrpc": "2.0", "id": 2, "method": "ping"}]', None, rpc.INVALID_REQUEST),
    (b'"a string"', None, rpc.INVALID_REQUEST),
    (b'{"id": 3, "method": "ping"}', 3, rpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 4.5, "method": "ping"}', None, rpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 5, "method": 7}', 5, rpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 6, "method": "ping", "params": [1]}', 6, rpc.INVALID_PARAMS),
    (request(7, "resources/list"), 7, rpc.METHOD_NOT_FOUND),
    (request("eight", "no/such/method"), "eight", rpc.METHOD_NOT_FOUND),
    (request(9, "tools/call", {"name": "format_disk", "arguments": {}}), 9, rpc.INVALID_PARAMS),
    (request(10, "tools/call", {"arguments": {}}), 10, rpc.INVALID_PARAMS),
    (request(11, "tools/call", {"name": "status", "arguments": [1]}), 11, rpc.INVALID_PARAMS),
]


def test_bad_messages_get_json_rpc_errors_and_the_server_keeps_answering(world: dict[str, Any]) -> None:
    server = Process(world["env"])
    try:
        server.send(request(0, "initialize", INIT_PARAMS))
        assert server.lines.answer(0)[0]["result"]["capabilities"] == {"tools": {"listChanged": False}}
        server.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        for n, (line, rid, code) in enumerate(BAD_LINES):
            server.send(line)
            error = server.lines.get()
            assert error is not None and error["id"] == rid and error["error"]["code"] == code, (line, error)
            server.send(request(f"ping-{n}", "ping"))
            assert server.lines.get() == {"jsonrpc": "2.0", "id": f"ping-{n}", "result": {}}
        # a notification never gets an answer, not even to an unknown method
        server.send(b'{"jsonrpc": "2.0", "method": "notifications/whatever"}')
        server.send(b'{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}')
        server.send(request("last", "ping"))
        assert server.lines.get() == {"jsonrpc": "2.0", "id": "last", "result": {}}
    finally:
        code, err = server.close()
    assert code == 0, err  # EOF on stdin ended it
    assert server.lines.get(timeout=1) is None


def imported_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` output (``import time: self | cumulative | name``)."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


def test_start_up_loads_no_engine_module_until_a_tool_is_called(world: dict[str, Any]) -> None:
    env = {**world["env"], "PYTHONPROFILEIMPORTTIME": "1"}
    server = Process(env)
    try:
        server.send(request(1, "initialize", INIT_PARAMS))
        server.lines.answer(1)
        server.send(request(2, "tools/list"))
        assert len(server.lines.answer(2)[0]["result"]["tools"]) == 5
        server.send(request(3, "ping"))
        server.lines.answer(3)
    finally:
        _code, err = server.close()
    loaded = imported_modules(err)
    assert "app.mcp.server" in loaded
    assert not {m for m in loaded if m.startswith(ENGINE)}, sorted(m for m in loaded if m.startswith(ENGINE))

    # the same check sees the engine arrive with the first call
    server = Process(env)
    try:
        server.send(request(1, "initialize", INIT_PARAMS))
        server.lines.answer(1)
        server.send(request(2, "tools/call", {"name": "status", "arguments": {}}))
        assert server.lines.answer(2)[0]["result"]["isError"] is False
    finally:
        _code, err = server.close()
    assert {"app.backup.manifest", "app.service.client", "sqlite3"} <= imported_modules(err)


class FakeTools:
    """``slow`` runs until released (or cancelled) and reports progress; ``crash`` raises."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.cancelled = threading.Event()
        self.running = threading.Event()

    def list(self) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {}}
        return [{"name": n, "inputSchema": schema} for n in ("slow", "crash")]

    def call(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        if name == "crash":
            raise RuntimeError("boom")
        ctx.progress("working on it")
        self.running.set()
        while not self.release.wait(0.01):
            if ctx.cancel.is_set():
                self.cancelled.set()
                return ToolResult("stopped")
        return ToolResult("done")


def in_process(tools: FakeTools, **timing: float) -> InProcess:
    return InProcess(lambda out: Server(tools, out, ServerInfo("test", "0"), **timing))


def call(rid: object, name: str, token: object = None) -> bytes:
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return request(rid, "tools/call", params)


def test_pings_are_answered_and_progress_flows_while_a_tool_runs_and_stops_before_its_answer() -> None:
    tools = FakeTools()
    session = in_process(tools, heartbeat=0.01)
    try:
        session.send(call("c1", "slow", token="tok"))
        first = session.lines.get()
        assert first is not None and first["method"] == "notifications/progress"
        assert first["params"]["progressToken"] == "tok" and first["params"]["message"] == "working on it"
        session.send(request("p1", "ping"))
        pong, during = session.lines.answer("p1")  # answered while the tool still runs
        assert pong["result"] == {} and not tools.release.is_set()
        while not any(m["params"]["message"].startswith("working on it (") for m in during):
            beat = session.lines.get()  # the heartbeat repeats the message with the time elapsed
            assert beat is not None
            during.append(beat)
        tools.release.set()
        answer, more = session.lines.answer("c1")
        assert answer["result"]["content"] == [{"type": "text", "text": "done"}]
        beats = [first, *during, *more]
        assert all(m["method"] == "notifications/progress" for m in beats)
        numbers = [m["params"]["progress"] for m in beats]
        assert numbers == sorted(set(numbers)) and len(numbers) >= 2  # the heartbeat kept going
        session.send(request("p2", "ping"))
        _pong, after = session.lines.answer("p2")
        assert after == []  # no progress once the call was answered
    finally:
        tools.release.set()
        session.close()


def test_a_cancelled_call_stops_and_is_not_answered_and_a_late_cancel_is_ignored() -> None:
    tools = FakeTools()
    session = in_process(tools)
    try:
        session.send(call(1, "slow"))
        assert tools.running.wait(10)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
        session.send(json.dumps(cancel).encode())
        assert tools.cancelled.wait(10)
        session.send(request(2, "ping"))
        pong, before = session.lines.answer(2)
        assert pong["result"] == {} and before == []
        session.send(call(3, "crash"))
        crashed, _ = session.lines.answer(3)
        assert crashed["result"]["isError"] is True and "boom" in crashed["result"]["content"][0]["text"]
        session.send(json.dumps({**cancel, "params": {"requestId": 3}}).encode())  # finished: ignored
        session.send(request(4, "ping"))
        assert session.lines.answer(4)[1] == []
    finally:
        tools.release.set()
        session.close()


def test_after_eof_a_running_call_still_answers_and_stop_cancels_at_once() -> None:
    tools = FakeTools()
    session = in_process(tools)
    session.send(call(1, "slow"))
    assert tools.running.wait(10)
    session._client_out.close()  # EOF while the call runs: its answer still comes
    tools.release.set()
    answer, _ = session.lines.answer(1)
    assert answer["result"]["content"][0]["text"] == "done"
    assert session.lines.get() is None  # and then the session ended
    session.close()

    tools = FakeTools()
    session = in_process(tools)
    try:
        session.send(call(1, "slow"))
        assert tools.running.wait(10)
        session.server.stop()  # what SIGTERM does
        assert tools.cancelled.is_set()
    finally:
        session.close()
    assert session.lines.get(timeout=1) is None  # no answer for the cancelled call


@pytest.mark.parametrize(
    ("asked", "agreed"),
    [("2025-11-25", "2025-11-25"), ("2024-11-05", "2024-11-05"), ("2099-01-01", PROTOCOL_VERSIONS[0])],
)
def test_protocol_version_is_the_clients_when_supported_else_the_newest(asked: str, agreed: str) -> None:
    session = in_process(FakeTools())
    try:
        session.send(request(1, "initialize", {**INIT_PARAMS, "protocolVersion": asked}))
        result = session.lines.answer(1)[0]["result"]
    finally:
        session.close()
    assert result["protocolVersion"] == agreed
    assert set(result["capabilities"]) == {"tools"}  # no resources: opencode would add three tools


def test_an_oversized_line_is_a_parse_error_and_the_next_line_is_read() -> None:
    session = InProcess(lambda out: Server(FakeTools(), out, ServerInfo("t", "0")))
    try:
        session.send(b'{"x": "' + b"a" * (rpc.MAX_LINE_BYTES + 10) + b'"}')
        error = session.lines.get()
        assert error is not None and error["error"]["code"] == rpc.PARSE_ERROR
        session.send(request(1, "ping"))
        assert session.lines.answer(1)[0]["result"] == {}
    finally:
        session.close()


def test_the_command_and_the_instructions_name_every_tool() -> None:
    from app.cli import mcp as command
    from app.mcp.tools import specs

    names = [spec.name for spec in specs()]
    res = subprocess.run(
        [sys.executable, "-m", "app", "mcp", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    assert f"agent tools ({', '.join(names)})" in " ".join(res.stdout.split())
    assert all(f"the {name} tool" in command.INSTRUCTIONS.lower() for name in names)
