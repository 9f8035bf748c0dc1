"""Restore against the real opencode (npm opencode-ai, pinned), through the CLI as a user runs it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.backup.sync import SyncOptions, run_sync
from tests.backups import sync_context
from tests.peer.opencode import OpencodePeer

pytestmark = pytest.mark.opencode
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sessions(opencode_peer: OpencodePeer) -> list[str]:
    return [opencode_peer.create_session(f"restore test {i}", prompts=2, todo=True) for i in range(2)]


def backup(peer: OpencodePeer, dest: Path, machine: str = "m1", snapshot: bool = False) -> None:
    ctx = sync_context(dest, machine, peer.data_dir, dest.parent / f"state-{machine}")
    result = run_sync(ctx, SyncOptions(snapshot=snapshot, allow_deletions=True))
    assert result.ok, result.error


def restore_cli(
    peer: OpencodePeer, dest: Path, *args: str, machine: str = "m1"
) -> subprocess.CompletedProcess[str]:
    """``python -m app restore ...`` with the peer's HOME/XDG dirs, so both agree on the data dir."""
    env = {**peer.env, "OPENCODE_BACKUP_PATH": str(dest)}
    return subprocess.run(
        [sys.executable, "-m", "app", "restore", "--machine-name", machine, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tamper_snapshot(machine: Path, sql: str) -> None:
    """Run ``sql`` in the newest snapshot, and make the manifest agree (a careful attacker)."""
    import sqlite3

    import zstandard

    from app.backup import manifest as mf
    from app.opencode.snapshot import decompress

    snap = sorted((machine / "snapshots").glob("*.db.zst"))[-1]
    plain = machine.parent / "tamper.db"
    decompress(snap, plain)
    conn = sqlite3.connect(plain, isolation_level=None)
    conn.executescript(sql)
    conn.close()
    data = zstandard.ZstdCompressor().compress(plain.read_bytes())
    snap.write_bytes(data)
    man = mf.load(machine, machine.name)
    digest = hashlib.sha256(data).hexdigest()
    man.files[f"snapshots/{snap.name}"] = mf.FileEntry(len(data), digest, raw_size=plain.stat().st_size)
    mf.save(machine, man)
    plain.unlink()


def db_digest(peer: OpencodePeer) -> str:
    """sha256 of opencode.db + its WAL; only while serve is stopped and no connection of ours is open."""
    h = hashlib.sha256()
    for p in (peer.db_path, Path(f"{peer.db_path}-wal")):
        h.update(p.read_bytes() if p.exists() else b"")
        h.update(b"|")
    return h.hexdigest()


def test_a_session_deleted_with_opencode_comes_back_while_serve_runs(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    peer, sid = opencode_peer, sessions[0]
    dest = tmp_path / "backup"
    backup(peer, dest)
    before = peer.export(sid)
    todos = peer.count_rows("todo", "session_id = ?", (sid,))
    assert todos == 2
    peer.delete_session(sid, via="cli")
    assert peer.count_rows("session", "id = ?", (sid,)) == 0
    res = restore_cli(peer, dest, sid[:12], "--yes")  # a unique prefix is enough
    assert res.returncode == 0, res.stderr
    assert "safety copy of opencode's database: " in res.stdout and f"restored {sid}" in res.stdout
    assert peer.export(sid) == before
    assert peer.count_rows("todo", "session_id = ?", (sid,)) == todos
    # Measured: the running serve lists the restored session without a restart (it reads the DB).
    assert sid in {s["id"] for s in peer.list_sessions()}
    messages = len(peer.api("GET", f"/session/{sid}/message"))
    assert peer.api("GET", f"/session/{sid}/todo") and messages >= 4
    # and the session can be continued: a new prompt lands after the restored messages
    peer.prompt(sid, "continue after the restore")
    peer.wait_settled(sid)
    assert len(peer.export(sid)["messages"]) == messages + 2


def test_after_a_wipe_missing_brings_every_session_and_project_back(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    peer = opencode_peer
    dest = tmp_path / "backup"
    backup(peer, dest)
    before = {sid: peer.export(sid) for sid in sessions}
    projects = peer.count_rows("project")
    peer.stop_serve()
    shutil.rmtree(peer.data_dir)
    peer.start_serve()  # opencode creates a fresh database
    assert peer.count_rows("session") == 0
    dry = restore_cli(peer, dest, "--missing", "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing was changed" in dry.stdout
    assert peer.count_rows("session") == 0
    res = restore_cli(peer, dest, "--missing", "--yes")
    assert res.returncode == 0, res.stderr
    assert {sid: peer.export(sid) for sid in sessions} == before
    assert peer.count_rows("project") == projects
    assert set(sessions) <= {s["id"] for s in peer.list_sessions()}


def test_full_replace_on_a_stopped_opencode_keeps_the_login(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    peer = opencode_peer
    dest = tmp_path / "backup"
    planted = peer.plant_secrets(sessions[0])
    backup(peer, dest, snapshot=True)
    # the backup folder is written by others too: the snapshot grows a trigger that would copy the
    # credential into every new message (and the next sync would carry it into the backup)
    tamper_snapshot(
        dest / "m1",
        "CREATE TRIGGER steal AFTER INSERT ON part BEGIN "
        "UPDATE part SET data = json_set(data, '$.text', (SELECT group_concat(value) FROM credential)) "
        "WHERE id = NEW.id; END;",
    )
    later = peer.create_session("after the snapshot", prompts=1, todo=False)
    backup(peer, dest)
    all_ids = [*sessions, later]
    before = {sid: peer.export(sid) for sid in all_ids}
    refused = restore_cli(peer, dest, "--all", "--replace", "--yes")
    assert (
        refused.returncode == 1 and "opencode is running: another process has the database" in refused.stderr
    )
    assert refused.stderr.count("\n") == 1
    peer.stop_serve()
    con = peer.connect(readonly=False)
    with con:
        con.execute("PRAGMA foreign_keys=ON")
        # the disaster: every session but one gone, and that one lost its messages
        con.execute("DELETE FROM session WHERE id != ?", (sessions[0],))
        con.execute("DELETE FROM message WHERE session_id = ?", (sessions[0],))
    con.close()
    res = restore_cli(peer, dest, "--all", "--replace", "--yes")
    assert res.returncode == 0, res.stderr
    assert {sid: peer.export(sid) for sid in all_ids} == before
    con = peer.connect()
    try:
        tokens = con.execute("SELECT access_token, refresh_token FROM account").fetchall()
        share = con.execute(
            "SELECT secret FROM session_share WHERE session_id = ?", (sessions[0],)
        ).fetchone()
    finally:
        con.close()
    assert (planted.account_access, planted.account_refresh) in tokens
    assert share == (planted.share_secret,)  # its session still existed: the share secret is kept
    con = peer.connect()
    try:
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] == 0
    finally:
        con.close()
    peer.start_serve()
    assert set(all_ids) <= {s["id"] for s in peer.list_sessions()}
    reply = peer.prompt(later, "one more question after the restore")
    assert planted.credential_value not in json.dumps(reply)
    backup(peer, dest)
    files = [p for p in (dest / "m1").rglob("*") if p.is_file()]
    assert [p for p in files if planted.credential_value.encode() in p.read_bytes()] == []


def test_hostile_backups_leave_the_real_database_byte_for_byte_unchanged(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    peer, sid = opencode_peer, sessions[1]
    dest = tmp_path / "backup"
    backup(peer, dest, snapshot=True)
    path = next((dest / "m1" / "sessions").rglob(f"{sid}.json"))
    good = path.read_bytes()
    doc = json.loads(good)
    doc["rows"]["part"][0]["session_id"] = sessions[0]
    damages: list[tuple[Callable[[], object], str]] = [
        (lambda: path.write_bytes(good[: len(good) // 3]), "not valid JSON"),
        (lambda: path.write_text(json.dumps(doc)), "belongs to another session"),
        (lambda: path.write_text(json.dumps({**doc, "format": "x/2"})), "unknown format"),
    ]
    before = peer.export(sid)
    peer.delete_session(sid)  # so that every mode below would have to read its file
    peer.stop_serve()
    try:
        for damage, message in damages:
            damage()
            digest = db_digest(peer)
            for args in ((sid, "--yes"), ("--missing", "--yes"), ("--all", "--replace", "--yes")):
                res = restore_cli(peer, dest, *args)
                assert res.returncode == 1 and message in res.stderr and res.stderr.count("\n") == 1, res
                assert db_digest(peer) == digest
        path.write_bytes(good)
        assert restore_cli(peer, dest, sid, "--yes").returncode == 0
    finally:
        peer.start_serve()
    assert peer.export(sid) == before


def test_from_restores_another_machines_sessions_into_an_empty_opencode(
    opencode_peer: OpencodePeer,
    sessions: list[str],
    make_opencode_peer: Callable[[], OpencodePeer],
    tmp_path: Path,
) -> None:
    old = opencode_peer
    dest = tmp_path / "backup"
    backup(old, dest, machine="old-laptop")
    before = {sid: old.export(sid) for sid in sessions}
    new = make_opencode_peer()
    assert new.count_rows("session") == 0
    res = restore_cli(new, dest, "--missing", "--yes", "--from", "old-laptop", machine="new-laptop")
    assert res.returncode == 0, res.stderr
    assert {sid: new.export(sid) for sid in sessions} == before


def test_a_session_file_cannot_reach_into_another_session_of_a_running_opencode(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    """A backed-up file of session A carrying a part on B's message: opencode would show the injected
    text in B and send it with B's next prompt. The restore refuses it; B is exactly as it was."""
    peer, (a, b) = opencode_peer, sessions
    dest = tmp_path / "backup"
    backup(peer, dest)
    before_b = peer.api("GET", f"/session/{b}/message")
    before_a = peer.export(a)
    path = next((dest / "m1" / "sessions").rglob(f"{a}.json"))
    good = path.read_bytes()
    doc = json.loads(good)
    text_part = next(p for p in doc["rows"]["part"] if json.loads(p["data"]).get("type") == "text")
    injected = {**text_part, "id": text_part["id"] + "zz", "message_id": before_b[0]["info"]["id"]}
    injected["data"] = json.dumps({**json.loads(text_part["data"]), "text": "INJECTED BY A BACKUP"})
    doc["rows"]["part"].append(injected)
    path.write_text(json.dumps(doc))
    peer.delete_session(a)
    try:
        res = restore_cli(peer, dest, a, "--yes")
        assert res.returncode == 1 and "refused" in res.stderr and res.stderr.count("\n") == 1, res
        assert peer.api("GET", f"/session/{b}/message") == before_b
        assert "INJECTED" not in json.dumps(peer.api("GET", f"/session/{b}/message"))
    finally:
        path.write_bytes(good)
        assert restore_cli(peer, dest, a, "--yes").returncode == 0
    assert peer.export(a) == before_a
