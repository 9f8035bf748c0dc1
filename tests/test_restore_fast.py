"""What makes a restore of many sessions fast keeps it as careful: a file read again is the file that was
checked, and the live owners looked up in batches refuse what the row-by-row lookup refused."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.backup import restore as rs
from app.backup.sync import run_sync
from app.opencode import importer
from tests import dbfactory as f
from tests.backups import sync_context


def backed_up(tmp_path: Path, sessions: int) -> Path:
    data = tmp_path / "opencode"
    conn = f.create_db(data / "opencode.db")
    for i in range(sessions):
        f.add_session(conn, f"ses_{i:03d}", messages=3, parts=2)
    conn.close()
    ctx = sync_context(tmp_path / "backup", "laptop", data, tmp_path / "app" / "state")
    assert run_sync(ctx).ok
    return tmp_path / "backup" / "laptop"


def empty_opencode(path: Path) -> Path:
    conn = f.create_db(path)  # opencode's schema, WAL, no session
    conn.close()
    return path


def test_a_file_that_changed_after_the_plan_is_not_restored_and_the_others_are(tmp_path: Path) -> None:
    machine = backed_up(tmp_path, 3)
    req = rs.RestoreRequest(
        machine, empty_opencode(tmp_path / "new" / "opencode.db"), tmp_path / "w", missing=True
    )
    plan = rs.make_plan(req)
    victim = next(i for i in plan.items if i.session_id == "ses_001").path
    victim.write_bytes(victim.read_bytes().replace(b'"title":"', b'"title":"X', 1))
    result = rs.apply_plan(plan, req, clock=lambda: datetime.now(UTC))
    assert [sid for sid, _ in result.restored] == ["ses_000", "ses_002"]
    assert result.failed == [
        ("ses_001", f"not restored: {victim.name} changed while restoring; run the restore again")
    ]
    conn = sqlite3.connect(req.db)
    assert conn.execute("SELECT count(*) FROM message WHERE session_id = 'ses_001'").fetchone()[0] == 0
    conn.close()


def test_the_batched_owner_check_refuses_exactly_what_the_row_by_row_one_did(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    conn = f.create_db(db)
    f.add_session(conn, "ses_a", messages=700)  # more rows than one IN (...) batch
    f.add_session(conn, "ses_b")
    live = importer.live_schema(conn)
    rows = {
        t: [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]
        for t in ("session", "message")
        if (
            cur := conn.execute(
                f"SELECT * FROM {t} WHERE {'id' if t == 'session' else 'session_id'} = 'ses_a'"
            )
        )
    }
    mine = importer.map_session(live, "ses_a", rows)
    importer.check_live_owners(conn, live, mine)  # its own rows: fine
    rows["session"][0]["id"] = "ses_c"
    for r in rows["message"]:
        r["session_id"] = "ses_c"
    theirs = importer.map_session(live, "ses_c", rows)  # ses_a's message ids, claimed by ses_c
    with pytest.raises(importer.SessionRefused, match="already belongs to session 'ses_a'"):
        importer.check_live_owners(conn, live, theirs)
    conn.close()


def test_sessions_restored_while_opencode_runs_are_on_the_disk_when_the_restore_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each session commits without waiting for the disk; the log they are in is synced once at the end,
    also while opencode holds the database open (then the log stays, and a checkpoint may skip it)."""
    machine = backed_up(tmp_path, 3)
    db = empty_opencode(tmp_path / "new" / "opencode.db")
    opencode = sqlite3.connect(db)  # opencode running: a reader in the middle of a read
    opencode.execute("BEGIN")
    opencode.execute("SELECT count(*) FROM session").fetchone()
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    req = rs.RestoreRequest(machine, db, tmp_path / "w", missing=True)
    result = rs.apply_plan(rs.make_plan(req), req)
    assert len(result.restored) == 3
    wal = db.with_name(db.name + "-wal")
    assert wal.stat().st_size > 0 and synced[-1] == wal.stat().st_ino
    opencode.close()
