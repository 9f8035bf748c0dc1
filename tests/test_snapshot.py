"""Snapshots: a consistent copy, secrets removed, and nothing deleted left in the file's free space."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from app.backup.progress import Progress, Step
from app.backup.sync import SyncOptions, run_sync
from app.opencode.snapshot import decompress, take_snapshot
from tests import dbfactory as f
from tests.backups import sync_context


def test_a_secret_opencode_deleted_long_ago_does_not_survive_in_free_space(tmp_path: Path) -> None:
    db = tmp_path / "opencode" / "opencode.db"
    conn = f.create_db(db)
    f.add_session(conn, "ses_a")
    old = f.plant_secrets(conn, "ses_a", tmp_path / "opencode")
    # opencode refreshes its tokens: the old rows are deleted without secure_delete (opencode's SQLite does
    # not turn it on; Debian's does, hence the pragma), so their bytes stay in the database file's free
    # space, and the backup API copies pages as they are
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("DELETE FROM account")
    conn.execute("DELETE FROM credential")
    conn.execute(
        "INSERT INTO account VALUES ('acc2', 'u@example.com', 'https://x', 'NEW-A', 'NEW-R', NULL, 1, 1)"
    )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert old[4].encode() in db.read_bytes()  # the remnant (credential.value) the snapshot must not carry

    snap = take_snapshot(db, tmp_path / "out" / "opencode-x.db.zst", tmp_path / "work")
    plain = tmp_path / "plain.db"
    decompress(snap.path, plain)
    data = plain.read_bytes()
    for token in [*old, "NEW-A", "NEW-R"]:
        assert token.encode() not in data, token
    assert data[18:20] == b"\x01\x01"  # a rollback-journal database: opens read-only without -wal/-shm
    check = sqlite3.connect(plain.as_uri() + "?mode=ro", uri=True)
    assert check.execute("SELECT count(*) FROM session").fetchone()[0] == snap.sessions == 1
    assert check.execute("SELECT count(*) FROM account").fetchone()[0] == 0
    assert check.execute("SELECT secret FROM session_share").fetchall() == [("",)]
    check.close()
    assert snap.raw_size == plain.stat().st_size
    assert list((tmp_path / "work").iterdir()) == []  # both temporary copies are gone


def test_a_cancel_during_the_export_stops_the_snapshot_beside_it_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "opencode"
    conn = f.create_db(data / "opencode.db")
    for i in range(40):
        f.add_session(conn, f"ses_{i:03d}", messages=1, parts=1)
    conn.close()
    cancel, once = threading.Event(), []

    def progress(p: Progress) -> None:
        if p.step is Step.SESSIONS and p.done >= 1 and not once:
            once.append(p)
            cancel.set()  # the snapshot's helper thread is running (or done) by now

    ctx = sync_context(
        tmp_path / "backup", "laptop", data, tmp_path / "app" / "state", cancel=cancel, progress=progress
    )
    result = run_sync(ctx, SyncOptions(snapshot=True))
    assert not result.ok and "cancelled" in (result.error or "")
    assert not list((tmp_path / "backup" / "laptop").rglob("*.db.zst"))  # nothing reached the backup
    assert not [p for p in (tmp_path / "app" / "staging" / "work").rglob("*") if p.is_file()]
    assert once
    cancel.clear()
    assert run_sync(ctx, SyncOptions(snapshot=True)).ok  # and the next sync takes it (or reuses it)
    assert len(list((tmp_path / "backup" / "laptop" / "snapshots").glob("*.db.zst"))) == 1
