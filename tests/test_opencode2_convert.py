"""A 1.x session converted for opencode 2.0 is what 2.0's own importer makes of it.

The expected rows in ``tests/fixtures/opencode2/importer_cases.json`` were written by a separate port of
``transformSession()`` (``packages/core/src/database/v1-migration.bun.ts`` at opencode 2.0.26, public
repository zjdCander/opencode @ 1066927), not by the code under test: two sessions the real opencode 1.18.33
wrote (a ``read`` tool call whose argument 2.0 renamed, a ``todowrite`` call 2.0 removed) and one crafted to
hold every kind of part (attachments inline and not, synthetic text, agents, reasoning, every tool state,
renamed tools, patches and snapshots, a compaction with its summary, a subtask, an error, an unreadable
message and an orphan part)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.opencode.convert import convert_session

CASES = json.loads((Path(__file__).parent / "fixtures" / "opencode2" / "importer_cases.json").read_text())[
    "cases"
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_converted_session_equals_what_the_importer_writes(case: dict[str, Any]) -> None:
    out = convert_session(case["session"], case["message"], case["part"])
    want = case["expected"]
    assert out.messages == want["messages"]
    assert out.session == want["session"]
    assert out.watermark == want["watermark"] == len(out.messages) - 1
    assert [m["seq"] for m in out.messages] == list(range(len(out.messages)))


def test_hostile_values_are_skipped_or_read_as_nothing_never_a_crash() -> None:
    """Rows come from a backup: wrong types anywhere give a session with what could be read."""
    sid = "ses_hostile"
    messages: list[dict[str, Any]] = [
        {
            "id": "m1",
            "session_id": sid,
            "time_created": "x",
            "time_updated": None,
            "data": json.dumps({"role": "user"}),
        },
        {
            "id": "m2",
            "session_id": sid,
            "time_created": 2,
            "time_updated": 2,
            "data": json.dumps(
                {
                    "role": "assistant",
                    "tokens": "many",
                    "cost": "free",
                    "time": [],
                    "error": "text",
                    "parentID": 5,
                }
            ),
        },
        {"id": "m3", "session_id": sid, "time_created": 3, "time_updated": 3, "data": "[" * 10_000},
    ]
    parts: list[dict[str, Any]] = [
        {"id": "p1", "message_id": "m1", "data": json.dumps({"type": "text", "text": 5})},
        {"id": "p2", "message_id": "m1", "data": json.dumps({"type": "file", "url": None})},
        {"id": "p3", "message_id": "m2", "data": json.dumps({"type": "tool", "state": "done"})},
        {"id": "p4", "message_id": "m2", "data": json.dumps({"type": "reasoning", "time": 7})},
        {"id": "p5", "message_id": "m2", "data": json.dumps(["not", "an", "object"])},
    ]
    out = convert_session({"id": sid, "model": "{not json"}, messages, parts)
    assert [m["type"] for m in out.messages] == ["user", "assistant"]
    assert out.session["cost"] == 0 and out.session["tokens_input"] == 0
    assert any("unreadable message m3" in w for w in out.warnings)
    assert any("unreadable part p5" in w for w in out.warnings)
