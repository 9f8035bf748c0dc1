"""The agent tools inside the real opencode (npm opencode-ai, pinned), driven by a fake LLM that calls them.

One ``opencode serve`` for the module, configured by the real ``opencode-backup agent-tools enable``:
opencode starts ``opencode-backup mcp`` itself, the fake LLM (tests/peer/fake_llm.py) calls
``session_backup_*`` when a prompt is about backups and quotes the tool's answer back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.backup import manifest as mf
from tests.mcp_harness import ROOT, server_command
from tests.peer.fake_llm import REPLY
from tests.peer.opencode import OpencodePeer

pytestmark = pytest.mark.opencode
MACHINE = "peer"


def backup_cli(peer: OpencodePeer, *args: str) -> subprocess.CompletedProcess[str]:
    """``opencode-backup ARGS`` as the user of this peer runs it (its HOME and XDG dirs)."""
    return subprocess.run(
        [server_command()[0], *args],
        env=peer.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def peer(opencode_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpencodePeer]:
    base = tmp_path_factory.mktemp("opencode-mcp")
    oc = OpencodePeer(base / "peer", binary=opencode_binary)
    try:
        oc.start(serve=False)
        (base / "backup").mkdir()
        settings = {"backupPath": str(base / "backup"), "machineName": MACHINE}
        (oc.config_dir / "session-backup.json").write_text(json.dumps(settings))
        enabled = backup_cli(oc, "agent-tools", "enable")
        assert enabled.returncode == 0, enabled.stderr
        oc.start_serve()
        yield oc
    finally:
        oc.stop()


def machine_dir(peer: OpencodePeer) -> Path:
    return peer.base.parent / "backup" / MACHINE


def new_conversation(peer: OpencodePeer, title: str) -> str:
    return str(peer.api("POST", "/session", {"title": title})["id"])


def reply_text(answer: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in answer["parts"] if p.get("type") == "text")


def tool_parts(peer: OpencodePeer, session_id: str, tool: str) -> list[dict[str, Any]]:
    """The ``part`` rows of ``session_id`` that record calls of ``tool``, oldest first."""
    conn = peer.connect()
    try:
        rows = conn.execute(
            "SELECT data FROM part WHERE session_id = ? ORDER BY time_created, id", (session_id,)
        ).fetchall()
    finally:
        conn.close()
    parts = [json.loads(r[0]) for r in rows]
    return [p for p in parts if p.get("type") == "tool" and p.get("tool") == tool]


def rows_outside(peer: OpencodePeer, session_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but those that mention ``session_id`` (the conversation asking)."""
    conn = peer.connect()
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: sorted((r for r in conn.execute(f'SELECT * FROM "{t}"') if session_id not in r), key=repr)
            for t in tables
        }
    finally:
        conn.close()


def test_enable_lets_real_opencode_start_and_connect_the_server(peer: OpencodePeer) -> None:
    config = json.loads((peer.config_dir / "opencode.json").read_text())
    assert config["mcp"]["session_backup"]["command"] == server_command()
    assert config["model"] == "fakeprov/fake"  # the rest of the user's config is still there
    assert peer.api("GET", "/mcp")["session_backup"] == {"status": "connected"}


def test_check_my_backups_quotes_the_true_session_count(peer: OpencodePeer) -> None:
    peer.create_session("older work", prompts=1, todo=False)
    assert backup_cli(peer, "sync").returncode == 0
    backed_up = len(mf.load(machine_dir(peer), MACHINE).sessions)
    assert backed_up == peer.count_rows("session")
    sid = new_conversation(peer, "asking about backups")
    answer = peer.prompt(sid, "check my backups")
    peer.wait_settled(sid)
    [part] = tool_parts(peer, sid, "session_backup_status")
    assert part["state"]["status"] == "completed"
    assert f"Sessions backed up: {backed_up}\n" in part["state"]["output"]
    assert reply_text(answer).startswith("Backup tool said: ")
    assert f"Sessions backed up: {backed_up}" in reply_text(answer)


def test_back_up_now_backs_up_the_conversation_it_is_asked_in(peer: OpencodePeer) -> None:
    sid = new_conversation(peer, "please back up")
    answer = peer.prompt(sid, "back up now")
    peer.wait_settled(sid)
    [part] = tool_parts(peer, sid, "session_backup_sync")
    assert part["state"]["status"] == "completed" and "Backup done (ok)" in part["state"]["output"]
    assert sid in mf.load(machine_dir(peer), MACHINE).sessions
    assert "Backup done (ok)" in reply_text(answer)


def test_restore_my_sessions_shows_a_plan_first_then_brings_the_session_back(peer: OpencodePeer) -> None:
    lost = peer.create_session("precious work", prompts=2, todo=True)
    assert backup_cli(peer, "sync").returncode == 0
    before = peer.export(lost)
    peer.delete_session(lost)
    assert backup_cli(peer, "sync").returncode == 0  # even the deletion is backed up now
    assert not list((machine_dir(peer) / "sessions").rglob(f"{lost}.json"))

    sid = new_conversation(peer, "where did my session go")
    untouched = rows_outside(peer, sid)
    answer = peer.prompt(sid, "restore my sessions")
    peer.wait_settled(sid)
    [plan] = tool_parts(peer, sid, "session_backup_restore")
    assert plan["state"]["input"] == {} and plan["state"]["status"] == "completed"
    assert f"add {lost} 'precious work'" in plan["state"]["output"]
    assert "nothing has been changed" in reply_text(answer)
    assert rows_outside(peer, sid) == untouched  # apart from the conversation itself, nothing changed
    assert not (peer.home / ".local/share/opencode-session-backup/before-restore").exists()

    answer = peer.prompt(sid, "yes, restore them, I confirm")
    peer.wait_settled(sid)
    done = tool_parts(peer, sid, "session_backup_restore")[-1]
    assert done["state"]["input"] == {"confirm": True}
    assert "Restored 1 session(s)" in done["state"]["output"]
    assert "Restored 1 session(s)" in reply_text(answer)
    assert peer.export(lost) == before
    assert lost in {s["id"] for s in peer.list_sessions()}  # the running serve lists it again


# Answers initialize, then dies before listing its tools.
CRASH_AFTER_INITIALIZE = """
import json, sys
req = json.loads(sys.stdin.readline())
info = {"protocolVersion": req["params"]["protocolVersion"], "capabilities": {"tools": {}},
        "serverInfo": {"name": "crashing", "version": "0"}}
print(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": info}), flush=True)
sys.exit(3)
"""


def test_a_missing_or_crashing_server_only_hides_the_tools(opencode_binary: Path, tmp_path: Path) -> None:
    oc = OpencodePeer(tmp_path / "peer", binary=opencode_binary)
    try:
        oc.start(serve=False)
        path = oc.config_dir / "opencode.json"
        config = json.loads(path.read_text())
        config["mcp"] = {
            "session_backup": {"type": "local", "command": [sys.executable, "-c", CRASH_AFTER_INITIALIZE]},
            "uninstalled": {"type": "local", "command": [str(tmp_path / "gone" / "opencode-backup"), "mcp"]},
        }
        path.write_text(json.dumps(config, indent=2))
        oc.start_serve()
        sid = new_conversation(oc, "no tools today")
        answer = oc.prompt(sid, "check my backups")
        assert reply_text(answer) == REPLY  # opencode answered, without the backup tools
        status = oc.api("GET", "/mcp")
        assert status["uninstalled"]["status"] == "failed"  # ENOENT
        assert status["session_backup"] == {"status": "failed", "error": "Failed to get tools"}
    finally:
        oc.stop()


# Passes stdio through to the command after the log file's name, logging each line with its direction.
TEE = """
import subprocess, sys, threading
log = open(sys.argv[1], "ab", buffering=0)
proc = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def pump(src, dst, tag):
    for line in iter(src.readline, b""):
        log.write(tag + line)
        dst.write(line)
        dst.flush()
    dst.close()
back = threading.Thread(target=pump, args=(proc.stdout, sys.stdout.buffer, b"< "))
back.start()
pump(sys.stdin.buffer, proc.stdin, b"> ")
back.join()
sys.exit(proc.wait())
"""


def test_progress_goes_out_with_the_token_opencode_gives(opencode_binary: Path, tmp_path: Path) -> None:
    oc = OpencodePeer(tmp_path / "peer", binary=opencode_binary)
    trace = tmp_path / "trace.log"
    try:
        oc.start(serve=False)
        (tmp_path / "backup").mkdir()
        settings = {"backupPath": str(tmp_path / "backup"), "machineName": MACHINE}
        (oc.config_dir / "session-backup.json").write_text(json.dumps(settings))
        path = oc.config_dir / "opencode.json"
        config = json.loads(path.read_text())
        command = [sys.executable, "-c", TEE, str(trace), *server_command()]
        config["mcp"] = {"session_backup": {"type": "local", "command": command}}
        path.write_text(json.dumps(config, indent=2))
        oc.start_serve()
        sid = new_conversation(oc, "traced")
        assert "Backup done (ok)" in reply_text(oc.prompt(sid, "back up now"))
    finally:
        oc.stop()
    lines = [(line[:1], json.loads(line[2:])) for line in trace.read_text().splitlines()]
    [(_, call)] = [m for m in lines if m[0] == ">" and m[1].get("method") == "tools/call"]
    assert call["params"]["name"] == "sync"
    token = call["params"]["_meta"]["progressToken"]
    sent = [m for d, m in lines if d == "<"]
    answer_at = next(i for i, m in enumerate(sent) if m.get("id") == call["id"])
    progress = [m["params"] for m in sent[:answer_at] if m.get("method") == "notifications/progress"]
    assert progress and all(p["progressToken"] == token for p in progress)
    assert progress[0]["message"] == "backing up"
    assert not any(m.get("method") == "notifications/progress" for m in sent[answer_at:])
    # opencode 1.18.33 then cancels the call it already has the answer to: nothing answers that
    assert not any("error" in m for m in sent)


def test_the_model_finds_a_deleted_session_by_its_words_and_reads_it_without_restoring(
    peer: OpencodePeer,
) -> None:
    lost = peer.create_session("the flaky login test", prompts=2, todo=False)
    assert backup_cli(peer, "sync").returncode == 0
    peer.delete_session(lost)
    assert backup_cli(peer, "sync").returncode == 0

    sid = new_conversation(peer, "which session was it")
    untouched = rows_outside(peer, sid)
    answer = peer.prompt(sid, "SEARCH-BACKUPS flaky login")
    peer.wait_settled(sid)
    [found] = tool_parts(peer, sid, "session_backup_search")
    assert found["state"]["input"] == {"query": "flaky login"} and found["state"]["status"] == "completed"
    output = found["state"]["output"]
    assert output.startswith("1 backed-up session(s) hold these words")
    assert f"- {lost} 'the flaky login test': backup of {MACHINE} (this computer)" in output
    assert "not in opencode now; deleted, its last copy kept in the backup" in output
    assert "the **flaky** **login** test: prompt 0" in output
    assert f"- {lost} " in reply_text(answer)

    answer = peer.prompt(sid, f"SHOW-BACKUP {lost[:16]}")
    peer.wait_settled(sid)
    [shown] = tool_parts(peer, sid, "session_backup_show")
    text = shown["state"]["output"]
    assert shown["state"]["status"] == "completed" and text.startswith("# the flaky login test\n")
    assert text.index("the flaky login test: prompt 0") < text.index("the flaky login test: prompt 1")
    assert "## Assistant · " in text and text.rstrip().endswith(
        "(messages 1 to 4 of 4: the whole rest of the session)"
    )
    assert "the flaky login test: prompt 1" in reply_text(answer)
    assert rows_outside(peer, sid) == untouched  # reading the backup changed nothing in opencode
    assert lost not in {s["id"] for s in peer.list_sessions()}
