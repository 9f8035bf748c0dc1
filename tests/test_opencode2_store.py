"""opencode 2.0's store without a peer: a fresh 2.0.26 database (its bootstrap schema) with sessions
written as its projector writes them; what a session's closure holds, and what a hostile 2.0 session file
cannot do."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.backup import backup_reader as br
from app.errors import BackupDamaged
from app.opencode import importer
from app.opencode.sessions import Reader
from app.opencode.store_v2 import V2
from tests import dbfactory as f
from tests.opencode2 import make_v2
from tests.opencode2.projector import Native


def fresh_db(path: Path, sessions: int = 2) -> list[str]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for stmt in make_v2.sql_statements(make_v2.HERE / "migrations" / "schema.gen.2.0.26.sql"):
        conn.execute(stmt)
    conn.execute(
        "INSERT INTO project (id, worktree, time_created, time_updated, sandboxes) "
        "VALUES ('p1', '/w', 1, 1, '[]')"
    )
    ids, rng, out = make_v2.Ids(0), random.Random(0), []
    for i in range(sessions):
        t = 1_790_000_000_000 + i * 60_000
        s = Native(conn, ids, rng, t=t, project=("p1", "/w"), title=f"s{i}", slug=f"s{i}")
        s.turn("Hello?", "Hello from the fake LLM.", first=True)
        out.append(s.sid)
    conn.execute("COMMIT")
    conn.close()
    return out


def export(db: Path, sid: str) -> dict[str, Any]:
    with Reader(db) as reader:
        info = reader.info(sid, V2)
        assert info is not None
        return dict(json.loads(reader.export(info, "fp")))


def test_a_table_a_later_2_0_adds_comes_along_and_others_sessions_do_not(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    a, b = fresh_db(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE session_bookmark (id TEXT PRIMARY KEY, session_id TEXT NOT NULL "
                 "REFERENCES session_v2(id) ON DELETE CASCADE, note TEXT)")  # fmt: skip
    conn.execute("INSERT INTO session_bookmark VALUES ('bm1', ?, 'look here')", (a,))
    conn.execute("UPDATE session_v2 SET parent_id = ?, fork_session_id = ? WHERE id = ?", (b, b, a))
    conn.close()
    rows = export(db, a)["rows"]
    assert rows["session_bookmark"] == [{"id": "bm1", "session_id": a, "note": "look here"}]
    assert [r["id"] for r in rows["session_v2"]] == [a]  # a child or fork is a session of its own
    assert {r["aggregate_id"] for r in rows["event"]} == {a}
    assert rows["event_sequence"][0]["seq"] == max(r["seq"] for r in rows["event"])


def hostile(db: Path, sid: str, tmp_path: Path, change: Any) -> Path:
    doc = export(db, sid)
    change(doc)
    path = tmp_path / f"{sid}.json"
    path.write_text(json.dumps(doc))
    return path


CHANGES = {
    "a blob it does not name": lambda d: d["rows"]["instruction_blob"].append(
        {"hash": "f" * 64, "value": "x"}
    ),
    "another session's message": lambda d: d["rows"]["session_message"][0].update(session_id="ses_other"),
    "1.x rows in a 2.0 file": lambda d: (
        d["rows"].setdefault("session", []).append({"id": d["session_id"], "project_id": "p1"})
    ),
    "saved permissions": lambda d: (
        d["rows"]
        .setdefault("permission", [])
        .append(
            {
                "id": "x",
                "project_id": "p1",
                "action": "bash",
                "resource": "*",
                "time_created": 1,
                "time_updated": 1,
            }
        )
    ),
}


@pytest.mark.parametrize("name", CHANGES)
def test_a_hostile_2_0_session_file_is_refused(name: str, tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    sid = fresh_db(db, 1)[0]
    path = hostile(db, sid, tmp_path, CHANGES[name])
    conn = sqlite3.connect(db)
    # an upgraded database: its 1.x tables too (in a fresh one, rows of a table it lacks are left out)
    conn.execute(
        "CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES project(id))"
    )
    live = importer.live_schema(conn)
    conn.close()
    try:
        doc = br.read_session(path, sid)
    except BackupDamaged:
        return  # refused when read
    with pytest.raises(importer.SessionRefused):
        importer.map_session(live, sid, doc.rows, doc.store)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(store="v1"),  # its store is not its format's
        lambda d: d["rows"].__setitem__("kv", [{"key": "migration.v1-v2", "value": "{}"}]),
        lambda d: d["rows"].__setitem__("credential", [{"id": "c", "value": "k"}]),
        lambda d: d["rows"].__setitem__("session_v2", []),
    ],
    ids=["store", "kv", "credential", "no session row"],
)
def test_a_2_0_file_with_machine_state_secrets_or_a_wrong_tag_is_refused_when_read(
    change: Any, tmp_path: Path
) -> None:
    db = tmp_path / "opencode.db"
    sid = fresh_db(db, 1)[0]
    with pytest.raises(BackupDamaged):
        br.read_session(hostile(db, sid, tmp_path, change), sid)


def test_a_2_0_session_into_a_1x_database_is_not_mappable_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    sid = fresh_db(db, 1)[0]
    doc = br.read_session(hostile(db, sid, tmp_path, lambda d: None), sid)
    old = tmp_path / "old.db"
    f.create_db(old).close()
    conn = sqlite3.connect(old)
    live = importer.live_schema(conn)
    conn.close()
    with pytest.raises(importer.SessionNotMappable) as err:
        importer.map_session(live, sid, doc.rows, doc.store)
    assert "needs opencode 2.0 or newer" in str(err.value) and "\n" not in str(err.value)
