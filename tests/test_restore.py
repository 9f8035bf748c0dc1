"""Restore on synthetic opencode databases (real schema, no opencode process): fast and exact."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from app.__main__ import main
from app.backup import restore as rs
from app.backup.sync import SyncOptions, run_sync
from app.paths import app_data_dir
from tests import dbfactory as f
from tests.backups import Env, make_env

MACHINE = "laptop"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    env = make_env(tmp_path, MACHINE)
    monkeypatch.setenv("OPENCODE_BACKUP_PATH", str(env.dest))
    return env


def backup(env: Env, snapshot: bool = False) -> None:
    result = run_sync(env.context(), SyncOptions(snapshot=snapshot, allow_deletions=True))
    assert result.ok, result.error


def restore(env: Env, *args: str) -> int:
    return main(["restore", "--source", str(env.data), "--machine-name", MACHINE, *args])


def dump(db: Path, sid: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every session table (of one session when ``sid`` is given), sorted."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for table, col in (("session", "id"), ("message", "session_id"), ("part", "session_id"),
                           ("todo", "session_id"), ("project", None)):  # fmt: skip
            where = f" WHERE {col} = ?" if sid and col else ""
            out[table] = sorted(conn.execute(f"SELECT * FROM {table}{where}", (sid,) if where else ()))
        return out
    finally:
        conn.close()


def title_of(db: Path, sid: str) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT title FROM session WHERE id = ?", (sid,)).fetchone()[0])
    finally:
        conn.close()


def session_path(env: Env, sid: str, project: str = "proj1") -> Path:
    return env.dest / MACHINE / "sessions" / project / f"{sid}.json"


@pytest.fixture
def two_sessions(env: Env) -> dict[str, Any]:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a", messages=3, parts=2, todos=2)
    f.add_session(conn, "ses_b", project="proj2")
    conn.close()
    backup(env)
    return {"a": dump(env.db, "ses_a"), "b": dump(env.db, "ses_b"), "all": dump(env.db)}


def test_a_deleted_session_comes_back_whole_and_a_safety_copy_is_made(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    f.delete_session(env.db, "ses_a")
    assert dump(env.db, "ses_a")["session"] == []
    assert restore(env, "ses_a", "--yes") == 0
    assert dump(env.db) == two_sessions["all"]
    out = capsys.readouterr().out
    copies = list((app_data_dir() / "before-restore").glob("opencode-before-restore-*.db"))
    assert len(copies) == 1 and f"safety copy of opencode's database: {copies[0]}" in out
    # the safety copy is the database as it was just before the restore
    assert dump(copies[0], "ses_a")["session"] == [] and dump(copies[0], "ses_b") == two_sessions["b"]


def test_naming_a_session_replaces_its_rows_but_missing_leaves_present_sessions_alone(
    env: Env, two_sessions: dict[str, Any]
) -> None:
    conn = sqlite3.connect(env.db, isolation_level=None)
    f.add_message(conn, "ses_a", "written after the backup")
    conn.execute("UPDATE session SET title = 'renamed' WHERE id = 'ses_b'")
    conn.close()
    assert restore(env, "--missing", "--yes") == 0  # both present: nothing to do, nothing changed
    assert title_of(env.db, "ses_b") == "renamed"
    assert not (app_data_dir() / "before-restore").exists()
    assert restore(env, "ses_", "--yes") == 2  # ambiguous prefix: usage error
    assert restore(env, "ses_a", "--yes") == 0
    assert dump(env.db, "ses_a") == two_sessions["a"]
    assert title_of(env.db, "ses_b") == "renamed"


def test_a_session_whose_deletion_was_already_synced_comes_back_from_versions(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    f.delete_session(env.db, "ses_a")
    backup(env)  # the service noticed: the session file moved to versions/
    assert not session_path(env, "ses_a").exists()
    assert restore(env, "ses_a", "--yes") == 0
    assert (
        "ses_a was deleted from the backup's sessions/; restoring its last copy in" in capsys.readouterr().out
    )
    assert dump(env.db) == two_sessions["all"]


def test_a_sync_that_moves_a_file_while_the_restore_is_planned_does_not_fail_the_restore(
    env: Env, two_sessions: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    f.delete_session(env.db, "ses_a")
    real, synced = rs.sessions.br.read_session, []

    def read_while_the_service_syncs(path: Path, *args: Any, **kw: Any) -> Any:
        if not synced:  # between listing sessions/ and reading it, the service's sync moves ses_a away
            synced.append(path)
            backup(env)
        return real(path, *args, **kw)

    monkeypatch.setattr(rs.sessions.br, "read_session", read_while_the_service_syncs)
    pauses: list[float] = []
    req = rs.RestoreRequest(env.dest / MACHINE, env.db, env.app, missing=True)
    plan = rs.make_plan(req, sleep=pauses.append)
    assert not session_path(env, "ses_a").exists() and len(pauses) == 1  # it looked again, once
    assert [(i.session_id, i.action) for i in plan.items] == [("ses_a", rs.Action.ADD)]  # from versions/
    rs.apply_plan(plan, req)
    assert dump(env.db) == two_sessions["all"]


def test_a_damaged_file_fails_its_own_session_and_is_not_looked_at_again(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    f.delete_session(env.db, "ses_a")
    f.delete_session(env.db, "ses_b")
    session_path(env, "ses_a").write_text("{not json")
    pauses: list[float] = []
    req = rs.RestoreRequest(env.dest / MACHINE, env.db, env.app, missing=True)
    plan = rs.make_plan(req, sleep=pauses.append)
    assert pauses == []
    assert [(i.session_id, i.action) for i in plan.items] == [
        ("ses_a", rs.Action.FAIL),
        ("ses_b", rs.Action.ADD),
    ]
    assert "not valid JSON" in plan.items[0].reason
    capsys.readouterr()
    assert restore(env, "--missing", "--yes") == 1  # the sound session is restored; the other is named
    out = capsys.readouterr()
    assert "ses_a" in out.out + out.err and "not valid JSON" in out.out + out.err
    assert [r[0] for r in dump(env.db)["session"]] == ["ses_b"]


def test_missing_restores_only_absent_sessions_with_their_projects(
    env: Env, two_sessions: dict[str, Any]
) -> None:
    env.db.unlink()
    Path(str(env.db) + "-wal").unlink(missing_ok=True)
    Path(str(env.db) + "-shm").unlink(missing_ok=True)
    f.create_db(env.db).close()  # opencode recreated an empty database
    assert restore(env, "--missing", "--dry-run") == 0
    assert dump(env.db)["session"] == []
    assert restore(env, "--missing", "--yes") == 0
    assert dump(env.db) == two_sessions["all"]


def test_without_a_terminal_and_without_yes_nothing_happens(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    f.delete_session(env.db, "ses_a")
    assert restore(env, "ses_a") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--yes" in err
    assert dump(env.db, "ses_a")["session"] == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("case", [("n\n", 1, False), ("y\n", 0, True)], ids=["no", "yes"])
def test_an_interactive_terminal_is_shown_the_plan_and_asked(
    env: Env,
    two_sessions: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, int, bool],
) -> None:
    answer, code, restored = case
    f.delete_session(env.db, "ses_a")
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    assert restore(env, "ses_a") == code
    out = capsys.readouterr().out
    assert "restore plan (sessions) into" in out and "add      ses_a  13 rows" in out
    assert "Restore? [y/N]" in out
    assert (dump(env.db, "ses_a") == two_sessions["a"]) is restored


def test_dry_run_json_prints_the_plan_and_changes_nothing(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    f.delete_session(env.db, "ses_a")
    capsys.readouterr()
    assert restore(env, "ses_a", "--dry-run", "--json") == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert [s["session_id"] for s in plan["sessions"]] == ["ses_a"]
    assert plan["sessions"][0]["action"] == "add"
    assert plan["rows"] == 1 + 1 + 3 + 6 + 2  # project, session, messages, parts, todos
    assert plan["bytes"] == session_path(env, "ses_a").stat().st_size
    assert dump(env.db, "ses_a")["session"] == []


def test_columns_are_mapped_by_name_onto_the_live_schema(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = session_path(env, "ses_a")
    doc = json.loads(path.read_bytes())
    doc["rows"]["session"][0]["from_the_future"] = "x"  # a newer opencode's column
    path.write_text(json.dumps(doc))
    f.delete_session(env.db, "ses_a")
    conn = sqlite3.connect(env.db, isolation_level=None)
    conn.execute("ALTER TABLE todo DROP COLUMN priority")  # an opencode that no longer has it
    conn.close()
    assert restore(env, "ses_a", "--yes") == 0
    out = capsys.readouterr().out
    assert "session: column(s) from_the_future not in this opencode; dropped" in out
    assert "todo: column(s) priority not in this opencode; dropped" in out
    restored = dump(env.db, "ses_a")
    assert restored["message"] == two_sessions["a"]["message"] and len(restored["todo"]) == 2


def test_a_required_column_the_backup_lacks_fails_that_session_only(
    env: Env, two_sessions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = session_path(env, "ses_a")
    doc = json.loads(path.read_bytes())
    del doc["rows"]["session"][0]["slug"]
    path.write_text(json.dumps(doc))
    f.delete_session(env.db, "ses_a")
    f.delete_session(env.db, "ses_b")
    assert restore(env, "--missing", "--yes") == 1
    err = capsys.readouterr().err
    assert "session ses_a: session needs column(s) slug that the backup does not have" in err
    assert dump(env.db, "ses_a")["session"] == []
    assert dump(env.db, "ses_b") == two_sessions["b"]


def test_only_the_last_five_safety_copies_are_kept(env: Env) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    conn.close()
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    made = [rs.safety_copy(env.db, env.app / "copies", t0 + timedelta(minutes=i)) for i in range(7)]
    left = sorted((env.app / "copies").iterdir())
    assert left == made[2:]
    check = sqlite3.connect(left[-1])
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT id FROM session").fetchall() == [("ses_a",)]
    check.close()


def test_full_replace_rebuilds_from_the_snapshot_and_newer_sessions_keeping_logins(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    f.add_session(conn, "ses_b")
    conn.close()
    backup(env, snapshot=True)
    conn = sqlite3.connect(env.db, isolation_level=None)
    f.add_message(conn, "ses_b", "newer than the snapshot")
    f.add_message(conn, "ses_a", "streamed without touching the session row", bump_session=False)
    conn.close()
    backup(env)
    before = dump(env.db)
    # the machine goes wrong: sessions lost, junk added, but the user is logged in
    conn = sqlite3.connect(env.db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("DELETE FROM session")
    conn.execute(
        "INSERT INTO account VALUES ('acc1', 'u@example.com', 'https://x', 'TOKEN-1', 'TOKEN-2', NULL, 1, 1)"
    )
    conn.close()
    assert restore(env, "--all", "--yes") == 2  # --all without --replace
    assert restore(env, "--all", "--replace", "--yes") == 0
    assert dump(env.db) == before
    conn = sqlite3.connect(env.db)
    assert conn.execute("SELECT access_token FROM account").fetchall() == [("TOKEN-1",)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert "safety copy of opencode's database" in capsys.readouterr().out


def test_full_replace_is_refused_while_another_process_has_the_database_open(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    conn.close()
    backup(env, snapshot=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
         "c.execute('select 1 from session').fetchall(); print('ok', flush=True); sys.stdin.read()",
         str(env.db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        assert restore(env, "--all", "--replace", "--yes") == 1
    finally:
        holder.communicate("")
    err = capsys.readouterr().err.strip()
    assert err.startswith("opencode-backup: opencode is running: another process has the database files")
    assert f"pid {holder.pid}" in err and "quit opencode" in err and "\n" not in err
    assert not (app_data_dir() / "before-restore").exists()


def test_from_restores_another_machines_sessions(env: Env, two_sessions: dict[str, Any]) -> None:
    (env.dest / MACHINE).rename(env.dest / "old-laptop")
    for p in env.data.iterdir():
        p.unlink()
    f.create_db(env.db).close()
    assert restore(env, "--missing", "--yes") == 1  # this machine has no backup folder
    assert restore(env, "--missing", "--yes", "--from", "old-laptop") == 0
    assert dump(env.db) == two_sessions["all"]
    assert restore(env, "--missing", "--yes", "--from", "../backup") == 2


def test_legacy_tree_is_restored_and_changed_files_are_set_aside(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = env.data / "storage"
    files = {f"session/proj1/ses_{i}.json": json.dumps({"id": f"ses_{i}", "n": i}).encode() for i in range(5)}
    files["session_diff/ses_0.json"] = b"[]"
    for rel, data in files.items():
        (storage / rel).parent.mkdir(parents=True, exist_ok=True)
        (storage / rel).write_bytes(data)
    backup(env)
    (storage / "session/proj1/ses_1.json").unlink()
    (storage / "session_diff/ses_0.json").unlink()
    (storage / "session/proj1/ses_2.json").write_bytes(b'{"edited": true}')
    (storage / "session/proj1/ses_new.json").write_bytes(b"{}")  # not in the backup: left alone
    assert restore(env, "--legacy", "--yes") == 0
    got = {p.relative_to(storage).as_posix(): p.read_bytes() for p in storage.rglob("*") if p.is_file()}
    assert got == {**files, "session/proj1/ses_new.json": b"{}"}
    aside = list((app_data_dir() / "before-restore").glob("storage-before-restore-*"))
    assert len(aside) == 1
    assert (aside[0] / "storage/session/proj1/ses_2.json").read_bytes() == b'{"edited": true}'
    assert "restored 3 file(s)" in capsys.readouterr().out
