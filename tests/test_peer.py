"""Smoke test of the opencode peer harness (tests/peer): real opencode, fake LLM, offline."""

from __future__ import annotations

import json

import pytest

from tests.peer.fixtures import opencode_binary, opencode_peer  # noqa: F401  (fixtures)
from tests.peer.opencode import OpencodePeer

pytestmark = pytest.mark.opencode


@pytest.fixture(scope="module")
def two_sessions(opencode_peer: OpencodePeer) -> list[str]:  # noqa: F811
    """Two sessions with 2 prompts each; the second prompt makes a todowrite tool call."""
    return [opencode_peer.create_session(f"smoke {i}") for i in range(2)]


def test_sessions_fill_tables(opencode_peer: OpencodePeer, two_sessions: list[str]) -> None:  # noqa: F811
    for sid in two_sessions:
        # user + assistant, then user + assistant(tool call) + assistant(reply)
        assert opencode_peer.count_rows("message", "session_id = ?", (sid,)) == 5
        assert opencode_peer.count_rows("part", "session_id = ?", (sid,)) >= 10
        assert opencode_peer.count_rows("todo", "session_id = ?", (sid,)) == 2
        assert opencode_peer.count_rows("event", "aggregate_id = ?", (sid,)) > 0
    con = opencode_peer.connect()
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tool = con.execute(
            "SELECT data FROM part WHERE session_id = ? AND json_extract(data, '$.type') = 'tool'",
            (two_sessions[0],),
        ).fetchone()
    finally:
        con.close()
    assert json.loads(tool[0])["tool"] == "todowrite"


def test_export(opencode_peer: OpencodePeer, two_sessions: list[str]) -> None:  # noqa: F811
    sid = two_sessions[0]
    data = opencode_peer.export(sid)
    assert data["info"]["id"] == sid
    assert data["info"]["title"] == "smoke 0"
    msgs = data["messages"]
    assert [m["info"]["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "assistant"]
    assert all(m["info"]["sessionID"] == sid for m in msgs)
    assert any(p["type"] == "tool" and p["tool"] == "todowrite" for m in msgs for p in m["parts"])


def test_secrets_restart_and_delete(opencode_peer: OpencodePeer, two_sessions: list[str]) -> None:  # noqa: F811
    sid = two_sessions[1]
    planted = opencode_peer.plant_secrets(sid)  # while serve runs
    assert opencode_peer.count_rows("session_share", "session_id = ?", (sid,)) == 1
    assert planted.auth_api_key in opencode_peer.auth_path.read_text()
    opencode_peer.stop_serve()
    assert not opencode_peer.serve_running
    opencode_peer.start_serve()
    assert sid in {s["id"] for s in opencode_peer.list_sessions()}
    opencode_peer.delete_session(sid)
    for table, col in (("session", "id"), ("message", "session_id"), ("part", "session_id")):
        assert opencode_peer.count_rows(table, f"{col} = ?", (sid,)) == 0
    assert opencode_peer.count_rows("session_share", "session_id = ?", (sid,)) == 0
