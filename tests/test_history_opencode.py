"""Going back in time with the real opencode (npm opencode-ai, pinned), through the command line as a user
runs it: a session backed up, extended and backed up again has two versions; restoring the first by time
gives back what opencode exported then; show holds every text of the conversation; search finds sessions
opencode no longer has and those of another machine's folder, and follows every sync.

One opencode for the module; each test reads the backup the module fixture made, or its own copy of it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.backup.search_index import index_path
from tests.opencode2 import make_v2
from tests.peer.opencode import OpencodePeer

pytestmark = pytest.mark.opencode
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Backed:
    """A session backed up twice: what opencode exported after each sync, and a time between them."""

    peer: OpencodePeer
    dest: Path
    sid: str
    first: dict[str, Any]
    between: datetime
    second: dict[str, Any]


def cli(
    peer: OpencodePeer | dict[str, str], dest: Path, *args: str, machine: str = "m1"
) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` as this peer's user runs it (its HOME and XDG folders, or ``peer`` is that
    environment; the settings flags before the command, so that ``--`` may end the options)."""
    return subprocess.run(
        [sys.executable, "-m", "app", "--backup-path", str(dest), "--machine-name", machine, *args],
        cwd=REPO,
        env=peer if isinstance(peer, dict) else peer.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def backed(opencode_peer: OpencodePeer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backed]:
    peer = opencode_peer
    dest = tmp_path_factory.mktemp("history") / "backup"
    dest.mkdir()
    sid = peer.create_session("the login bug", prompts=1, todo=False)
    ok(cli(peer, dest, "sync"))
    first = peer.export(sid)
    between = datetime.now(UTC)
    peer.prompt(sid, "and a second question, about kangaroos")
    peer.wait_settled(sid)
    ok(cli(peer, dest, "sync"))
    yield Backed(peer, dest, sid, first, between, peer.export(sid))


def copy_of(b: Backed, tmp_path: Path) -> Path:
    """A backup folder of this test's own, holding what the module's holds."""
    dest = tmp_path / "backup"
    shutil.copytree(b.dest, dest)
    return dest


def texts(export: dict[str, Any]) -> list[str]:
    """Every user and assistant text of an ``opencode export``, in order."""
    return [
        p["text"]
        for m in export["messages"]
        if m["info"]["role"] in ("user", "assistant")
        for p in m["parts"]
        if p["type"] == "text" and p.get("text")
    ]


def test_history_lists_both_versions_and_restore_at_the_first_time_brings_that_export_back(
    backed: Backed,
) -> None:
    b = backed
    versions = json.loads(ok(cli(b.peer, b.dest, "history", b.sid[:14], "--json")))["versions"]
    assert [v["number"] for v in versions] == [1, 2]
    newest, older = versions
    assert newest["kind"] == "current" and older["kind"] == "version"
    assert newest["messages"] == len(b.second["messages"]) > older["messages"] == len(b.first["messages"])
    # the newest was written by the sync that replaced the older one, at that one's stamp
    assert newest["backed_up"] == older["replaced"] and older["replaced"] > b.between.isoformat()
    shown = ok(cli(b.peer, b.dest, "history", "the login bug"))  # an exact title works too
    assert f"{b.sid}  the login bug  in machine folder m1 (this machine)" in shown
    assert "2 version(s)" in shown

    at = b.between.astimezone().strftime("%Y-%m-%dT%H:%M:%S.%f")  # local time, as a user types it
    done = ok(cli(b.peer, b.dest, "restore", b.sid, "--at", at, "--yes"))
    assert f"{b.sid}: version 2 of 2 (as it was at" in done and f"restored {b.sid}" in done
    assert b.peer.export(b.sid) == b.first
    ok(cli(b.peer, b.dest, "restore", b.sid, "--version", "1", "--yes"))
    assert b.peer.export(b.sid) == b.second


def test_show_holds_every_text_of_the_conversation_in_order_and_json_says_the_same(backed: Backed) -> None:
    b = backed
    shown = ok(cli(b.peer, b.dest, "show", b.sid))
    position = 0
    for text in texts(b.second):
        found = shown.find(text, position)
        assert found >= 0, (text, shown)
        position = found + len(text)
    assert shown.startswith("# the login bug\n") and "## User · " in shown and "## Assistant · " in shown
    doc = json.loads(ok(cli(b.peer, b.dest, "show", b.sid, "--format", "json")))
    assert doc["format"] == "opencode-session-backup-transcript/1" and doc["session_id"] == b.sid
    got = [p["text"] for m in doc["messages"] for p in m["parts"] if p["type"] == "text" and p["text"]]
    assert got == texts(b.second)
    older = ok(cli(b.peer, b.dest, "show", b.sid, "--version", "2"))
    assert "kangaroos" not in older and all(t in older for t in texts(b.first))


def test_search_finds_a_deleted_session_and_another_machines_and_nothing_for_a_word_nowhere(
    backed: Backed, tmp_path: Path
) -> None:
    b = backed
    dest = copy_of(b, tmp_path)
    gone = b.peer.create_session("quokka sightings", prompts=1, todo=False)
    ok(cli(b.peer, dest, "sync"))
    b.peer.delete_session(gone)
    ok(cli(b.peer, dest, "sync"))  # the deletion is backed up: its last copy is in versions/ only
    other = b.peer.create_session("wombat migration", prompts=1, todo=False)
    ok(cli(b.peer, dest, "sync", machine="old-laptop"))
    b.peer.delete_session(other)

    [hit] = json.loads(ok(cli(b.peer, dest, "search", "quokka", "--json")))
    assert hit["session_id"] == gone and hit["machine"] == "m1"
    assert hit["in_backup"] is False and hit["in_opencode"] is False and "**quokka**" in hit["snippet"]
    [hit] = json.loads(ok(cli(b.peer, dest, "search", "WOMBAT", "migration", "--json")))
    assert hit["session_id"] == other and hit["machine"] == "old-laptop" and hit["in_opencode"] is False
    none = cli(b.peer, dest, "search", "platypus")
    assert none.returncode == 0 and "no backed-up session holds all of these words" in none.stdout
    for query in ('"quokka', "quokka (", "(quokka)", "quokka*", "-quokka", "quokka: ^"):  # never syntax
        res = cli(b.peer, dest, "search", "--", *query.split())
        assert res.returncode == 0 and gone in res.stdout, (query, res.stderr)
    res = cli(b.peer, dest, "search", "quokka", "OR", "NEAR")  # operators are words, and these occur nowhere
    assert res.returncode == 0 and gone not in res.stdout
    # the other machine's session is read and restored from its folder, named as such
    shown = ok(cli(b.peer, dest, "show", "wombat migration"))
    assert "machine old-laptop" in shown and "wombat migration: prompt 0" in shown


def test_the_index_follows_a_sync_at_once(backed: Backed, tmp_path: Path) -> None:
    b = backed
    dest = copy_of(b, tmp_path)
    ok(cli(b.peer, dest, "search", "kangaroos"))  # builds the index
    index = index_path(dest, Path(b.peer.env["XDG_CACHE_HOME"]) / "opencode-session-backup" / "search")
    assert index.is_file() and not list(dest.rglob("*.sqlite3*"))  # in the cache folder, never the backup's

    def rows() -> dict[str, tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        try:
            return {
                r[0]: tuple(r[1:]) for r in conn.execute("SELECT session_id, rowid, rel, mtime_ns FROM docs")
            }
        finally:
            conn.close()

    def found(word: str) -> list[str]:
        conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        try:
            sql = "SELECT d.session_id FROM words JOIN docs d ON d.rowid = words.rowid WHERE words MATCH ?"
            return [r[0] for r in conn.execute(sql, (word,))]
        finally:
            conn.close()

    before = rows()
    b.peer.prompt(b.sid, "one more about echidnas")
    b.peer.wait_settled(b.sid)
    started = time.monotonic()
    ok(cli(b.peer, dest, "sync"))
    assert found("echidnas") == [b.sid]  # in the index when the sync command returns, no search run since
    assert time.monotonic() - started < 10
    after = rows()
    assert after[b.sid] != before[b.sid]
    assert {s: r for s, r in after.items() if s != b.sid} == {s: r for s, r in before.items() if s != b.sid}


def test_a_damaged_and_a_hostile_session_file_are_skipped_with_a_warning(
    backed: Backed, tmp_path: Path
) -> None:
    b = backed
    dest = copy_of(b, tmp_path)
    victim = b.peer.create_session("torn file", prompts=1, todo=False)
    hostile = b.peer.create_session("hostile file", prompts=1, todo=False)
    ok(cli(b.peer, dest, "sync"))
    torn = next((dest / "m1" / "sessions").rglob(f"{victim}.json"))
    torn.write_bytes(torn.read_bytes()[:100])
    bad = next((dest / "m1" / "sessions").rglob(f"{hostile}.json"))
    doc = json.loads(bad.read_text())
    doc["rows"]["part"][0]["session_id"] = b.sid  # a row of another session: every read refuses it
    bad.write_text(json.dumps(doc))
    res = cli(b.peer, dest, "search", "prompt")
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning: not searched")]
    assert (
        len(warnings) == 2 and "not valid JSON" in res.stderr and "belongs to another session" in res.stderr
    )
    assert b.sid in res.stdout and victim not in res.stdout and hostile not in res.stdout
    assert "Traceback" not in res.stderr


def test_opencode_2_sessions_have_versions_are_shown_searched_and_restored_as_they_were(
    backed: Backed, tmp_path: Path
) -> None:
    """A 2.0.26 database upgraded from this opencode's (tests/opencode2): a reply streaming into a 2.0
    message in place is a new version; the first one comes back by time, row for row."""
    src = tmp_path / "v1.db"
    conn = backed.peer.connect()
    out = sqlite3.connect(src)
    conn.backup(out)
    conn.close()
    out.close()
    home = tmp_path / "home"
    data = home / ".local/share/opencode"
    data.mkdir(parents=True)
    made = make_v2.upgrade(src, data / "opencode.db", late_v1=0, native=1)
    db, sid, dest = data / "opencode.db", made.native[0], tmp_path / "backup"
    dest.mkdir()
    env = {**backed.peer.env, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local/share"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".local/state")}  # fmt: skip
    peer = env

    def rows() -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(db)
        try:
            sql = "SELECT id, seq, data FROM session_message WHERE session_id = ? ORDER BY seq"
            return conn.execute(sql, (sid,)).fetchall()
        finally:
            conn.close()

    conn = sqlite3.connect(db)
    with conn:  # the tests' 2.0 databases are made with times of their own: now, as opencode would have it
        conn.execute("UPDATE session_v2 SET time_updated = ? WHERE id = ?", (int(time.time() * 1000), sid))
    conn.close()
    ok(cli(peer, dest, "sync"))
    first = rows()
    between = datetime.now(UTC)
    conn = sqlite3.connect(db)
    mid, text = conn.execute(
        "SELECT id, data FROM session_message WHERE session_id = ? AND type = 'assistant' ORDER BY seq DESC",
        (sid,),
    ).fetchone()
    streamed = json.loads(text)
    streamed["content"].append({"type": "text", "text": "and then a kookaburra laughed"})
    now = int(time.time() * 1000)
    with conn:
        conn.execute(
            "UPDATE session_message SET data = ?, time_updated = ? WHERE id = ?",
            (json.dumps(streamed), now, mid),
        )
        conn.execute("UPDATE session_v2 SET time_updated = ? WHERE id = ?", (now, sid))
    conn.close()
    ok(cli(peer, dest, "sync"))
    assert [v["kind"] for v in json.loads(ok(cli(peer, dest, "history", sid, "--json")))["versions"]] == [
        "current",
        "version",
    ]
    shown = ok(cli(peer, dest, "show", sid))
    position = 0
    for text in make_v2.message_texts(db, sid):
        position = shown.index(text, position) + len(text)
    assert "(opencode 2.0)" in shown
    [hit] = json.loads(ok(cli(peer, dest, "search", "kookaburra", "--json")))
    assert hit["session_id"] == sid and hit["in_opencode"] is True
    at = between.isoformat()  # with its offset
    ok(cli(peer, dest, "restore", sid, "--at", at, "--yes"))
    assert rows() == first
