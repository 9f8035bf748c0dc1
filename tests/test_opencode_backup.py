"""The engine against the real opencode (npm opencode-ai, pinned) writing through `opencode serve`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.backup import manifest as mf
from app.backup.result import Outcome
from app.backup.sync import SyncContext, SyncOptions, run_sync
from app.backup.verify import verify
from app.opencode.snapshot import decompress
from tests.backups import sync_context
from tests.peer.opencode import OpencodePeer

pytestmark = pytest.mark.opencode


@pytest.fixture(scope="module")
def sessions(opencode_peer: OpencodePeer) -> list[str]:
    return [opencode_peer.create_session(f"backup test {i}", prompts=2, todo=True) for i in range(3)]


def ctx_for(peer: OpencodePeer, dest: Path, engine: str) -> SyncContext:
    return sync_context(dest, "m1", peer.data_dir, dest.parent / f"state-{engine}", engine=engine)


def live_counts(peer: OpencodePeer, sid: str) -> dict[str, int]:
    return {t: peer.count_rows(t, "session_id = ?", (sid,)) for t in ("message", "part", "todo")}


def session_doc(dest: Path, sid: str) -> dict[str, object]:
    return json.loads(next((dest / "m1" / "sessions").rglob(f"{sid}.json")).read_bytes())  # type: ignore[no-any-return]


@pytest.mark.parametrize("engine", ["rsync", "native"])
def test_live_opencode_sessions_are_backed_up_whole(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path, engine: str
) -> None:
    dest = tmp_path / "backup"
    result = run_sync(ctx_for(opencode_peer, dest, engine))
    assert result.outcome is Outcome.OK, result.error
    assert result.sessions_exported >= 3
    for sid in sessions:
        doc = session_doc(dest, sid)
        rows = doc["rows"]
        assert isinstance(rows, dict)
        counts = live_counts(opencode_peer, sid)
        assert counts["todo"] == 2 and counts["message"] >= 4
        for table, n in counts.items():
            assert len(rows[table]) == n, (sid, table)
        assert rows["project"][0]["id"] == doc["project_id"]
        assert rows["event_sequence"][0]["aggregate_id"] == sid and rows["event"]
        assert doc["opencode_schema"] and str(doc["opencode_schema"]).startswith("2026")
    assert verify(dest / "m1", "m1", tmp_path / "v").ok


def test_a_new_prompt_is_backed_up_and_only_that_session_moves(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    ctx = ctx_for(opencode_peer, dest, "rsync")
    assert run_sync(ctx).ok
    opencode_peer.prompt(sessions[1], "one more question about the backup")
    opencode_peer.wait_settled(sessions[1])
    result = run_sync(ctx, SyncOptions())
    assert result.sessions_exported == 1, result
    doc = session_doc(dest, sessions[1])
    assert "one more question about the backup" in json.dumps(doc)
    assert len(doc["rows"]["message"]) == live_counts(opencode_peer, sessions[1])["message"]  # type: ignore[index]
    assert run_sync(ctx).sessions_exported == 0


def test_planted_secrets_are_nowhere_in_the_backup(
    opencode_peer: OpencodePeer, sessions: list[str], tmp_path: Path
) -> None:
    planted = opencode_peer.plant_secrets(sessions[0])
    dest = tmp_path / "backup"
    result = run_sync(ctx_for(opencode_peer, dest, "rsync"), SyncOptions(snapshot=True))
    assert result.ok and result.snapshot
    blobs: list[bytes] = []
    for p in dest.rglob("*"):
        if p.is_file():
            blobs.append(p.read_bytes())
            if p.name.endswith(".db.zst"):
                plain = tmp_path / "plain.db"
                decompress(p, plain)
                blobs.append(plain.read_bytes())
                snap = sqlite3.connect(plain)
                assert snap.execute("SELECT count(*) FROM session").fetchone()[0] >= 3
                assert snap.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                snap.close()
    everything = b"".join(blobs)
    assert sessions[0].encode() in everything
    for token in planted.all():
        assert token.encode() not in everything, token
    assert not list(dest.rglob("auth.json"))


def test_a_session_deleted_in_opencode_is_kept_in_versions(
    opencode_peer: OpencodePeer, tmp_path: Path
) -> None:
    doomed = opencode_peer.create_session("to be deleted", prompts=1, todo=False)
    dest = tmp_path / "backup"
    ctx = ctx_for(opencode_peer, dest, "rsync")
    assert run_sync(ctx).ok
    opencode_peer.delete_session(doomed, via="cli")
    result = run_sync(ctx)
    assert result.ok and result.sessions_removed == 1
    assert doomed not in mf.load(dest / "m1", "m1").sessions
    kept = list((dest / "m1" / "versions").rglob(f"{doomed}.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_bytes())["title"] == "to be deleted"
