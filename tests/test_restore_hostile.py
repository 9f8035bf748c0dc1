"""Damaged or hostile backups are refused with one line, exit 1, and opencode's database untouched."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.errors import BackupDamaged
from app.opencode.snapshot import decompress
from app.paths import app_data_dir
from tests import dbfactory as f
from tests.backups import Env
from tests.test_restore import MACHINE, backup, env, restore, session_path  # noqa: F401


def db_digest(db: Path) -> str:
    """sha256 of opencode.db and its WAL (only called while this process holds no connection to them).

    A missing WAL counts as an empty one: any read-only SQLite reader (opencode's too) creates an
    empty ``-wal`` next to a WAL database that had none, which is the same database state.
    """
    h = hashlib.sha256()
    for p in (db, Path(f"{db}-wal")):
        h.update(p.read_bytes() if p.exists() else b"")
        h.update(b"|")
    return h.hexdigest()


@pytest.fixture
def prepared(env: Env) -> Env:  # noqa: F811
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a", messages=2, parts=2, todos=2)
    f.add_session(conn, "ses_b")
    conn.close()
    backup(env, snapshot=True)
    f.delete_session(env.db, "ses_a")
    return env


def _doc(e: Env) -> dict[str, Any]:
    return json.loads(session_path(e, "ses_a").read_bytes())  # type: ignore[no-any-return]


def _write(e: Env, doc: object) -> None:
    session_path(e, "ses_a").write_text(json.dumps(doc))


def truncated(e: Env) -> None:
    p = session_path(e, "ses_a")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def unknown_format(e: Env) -> None:
    _write(e, {**_doc(e), "format": "opencode-session-backup/99"})


def foreign_rows(e: Env) -> None:
    doc = _doc(e)
    doc["rows"]["message"][0]["session_id"] = "ses_b"
    _write(e, doc)


def path_trick_in_id(e: Env) -> None:
    _write(e, {**_doc(e), "session_id": "../../etc/passwd"})


def secret_table(e: Env) -> None:
    doc = _doc(e)
    doc["rows"]["account"] = [{"id": "evil", "access_token": "x"}]
    _write(e, doc)


def symlink_in_sessions(e: Env) -> None:
    os.symlink(session_path(e, "ses_b"), session_path(e, "ses_a").with_name("ses_c.json"))


def symlink_anywhere(e: Env) -> None:
    (e.dest / MACHINE / "versions").mkdir(exist_ok=True)
    os.symlink("/etc", e.dest / MACHINE / "versions" / "etc")


def machine_dir_is_a_symlink(e: Env) -> None:
    real = e.dest / "real"
    (e.dest / MACHINE).rename(real)
    os.symlink(real, e.dest / MACHINE)


def part_into_another_session(e: Env) -> None:
    """A part of this session's file attached to ses_b's message: it would show up in ses_b."""
    doc = _doc(e)
    doc["rows"]["part"][0]["message_id"] = "ses_b_msg0000"
    _write(e, doc)


def table_outside_the_session(table: str, row: dict[str, Any]) -> Callable[[Env], None]:
    def damage(e: Env) -> None:
        doc = _doc(e)
        doc["rows"][table] = [row]
        _write(e, doc)

    return damage


def message_of_another_session(e: Env) -> None:
    """A message row (and its parts) reusing ses_b's message id: skipped as present, its parts join it."""
    doc = _doc(e)
    old = doc["rows"]["message"][0]["id"]
    doc["rows"]["message"][0]["id"] = "ses_b_msg0000"
    for part in doc["rows"]["part"]:
        if part["message_id"] == old:
            part["message_id"] = "ses_b_msg0000"
    _write(e, doc)


def oversized(e: Env) -> None:
    br.MAX_SESSION_BYTES = 200  # restored by the test's monkeypatch


CASES: dict[str, tuple[Callable[[Env], None], str]] = {
    "truncated json": (truncated, "ses_a.json: not valid JSON"),
    "unknown format": (unknown_format, "unknown format 'opencode-session-backup/99'"),
    "rows of another session": (foreign_rows, "a row of message belongs to another session ('ses_b')"),
    "path trick in the id": (path_trick_in_id, "ses_a.json: bad session_id"),
    "a secret table": (secret_table, "unexpected table 'account'"),
    "symlink in sessions/": (symlink_in_sessions, "ses_c.json is a symlink"),
    "symlink anywhere": (symlink_anywhere, "versions/etc is a symlink"),
    "machine folder symlink": (machine_dir_is_a_symlink, f"{MACHINE} is a symlink"),
    "oversized file": (oversized, "is more than it can be (200)"),
    "a part on another session's message": (part_into_another_session, "points at message 'ses_b_msg0000'"),
    "saved permissions": (
        table_outside_the_session(
            "permission",
            {
                "id": "per1",
                "project_id": "proj1",
                "action": "allow",
                "resource": "bash:*",
                "time_created": 1,
                "time_updated": 1,
            },
        ),
        "holds rows of permission, which is not part of a session",
    ),
    "a migration": (
        table_outside_the_session("migration", {"id": "evil", "time_completed": 1}),
        "holds rows of migration",
    ),
    "a message id of another session": (message_of_another_session, "already belongs to session 'ses_b'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mode", [("ses_a",), ("--missing",)])
def test_a_hostile_backup_is_refused_and_the_database_is_untouched(
    prepared: Env,
    case: str,
    mode: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(br, "MAX_SESSION_BYTES", br.MAX_SESSION_BYTES)
    damage, message = CASES[case]
    damage(prepared)
    before = db_digest(prepared.db)
    assert restore(prepared, *mode, "--yes") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("opencode-backup: ") and message in err, err
    assert db_digest(prepared.db) == before
    assert not (app_data_dir() / "before-restore").exists()


def _corrupt_snapshot(e: Env, garbage: bool) -> None:
    import zstandard

    snap = next((e.dest / MACHINE / "snapshots").glob("*.db.zst"))
    if garbage:
        snap.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 64)
        return
    plain = e.app / "plain.db"
    decompress(snap, plain)
    data = bytearray(plain.read_bytes())
    for page in range(1, len(data) // 4096):  # keep the header page, scramble the b-tree pages
        data[page * 4096 + 8 : page * 4096 + 40] = os.urandom(32)
    snap.write_bytes(zstandard.ZstdCompressor().compress(bytes(data)))


@pytest.mark.parametrize("garbage", [False, True], ids=["integrity_check fails", "not zstd"])
def test_a_damaged_snapshot_is_refused_before_anything_changes(
    prepared: Env, garbage: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    _corrupt_snapshot(prepared, garbage)
    before = db_digest(prepared.db)
    assert restore(prepared, "--all", "--replace", "--yes") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing snapshot opencode-" in err, err
    assert db_digest(prepared.db) == before
    assert not (app_data_dir() / "before-restore").exists()


# ---------------------------------------------------------------- the reader under fuzzing

_SAMPLE: dict[str, Any] = {
    "format": "opencode-session-backup/1",
    "session_id": "ses_a",
    "title": "t",
    "project_id": "proj1",
    "rows": {
        "project": [{"id": "proj1", "worktree": "/w", "time_created": 1}],
        "session": [{"id": "ses_a", "project_id": "proj1", "title": "t", "time_updated": 5}],
        "message": [{"id": "m1", "session_id": "ses_a", "data": "{}"}],
        "part": [{"id": "p1", "message_id": "m1", "session_id": "ses_a", "data": {"$blob": "AAE="}}],
        "event_sequence": [{"aggregate_id": "ses_a", "seq": 3}],
    },
}
_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


_ALL_PATHS = _paths(_SAMPLE)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(_SAMPLE)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(_ALL_PATHS))
        parent: Any = doc
        try:
            for key in where[:-1]:
                parent = parent[key]
            choice = draw(st.sampled_from(["junk", "huge", "swap", "delete"]))
            if choice == "junk":
                parent[where[-1]] = draw(_JUNK)
            elif choice == "huge":
                parent[where[-1]] = draw(st.sampled_from([2**63, -(2**64), 10**400, 1e308, float("inf")]))
            elif choice == "swap":
                parent[where[-1]] = draw(st.sampled_from(["ses_b", "proj2", "ses_a", "", "../x"]))
            else:
                del parent[where[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the path
    data = bytearray(json.dumps(doc, allow_nan=True).encode())
    how = draw(st.sampled_from(["none", "flip", "truncate"]))
    if how == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_the_reader_returns_a_valid_document_or_refuses(data: bytes) -> None:
    try:
        doc = br.parse_session(data, Path("ses_a.json"), "ses_a")
    except BackupDamaged as exc:
        assert "\n" not in str(exc)
        return
    assert doc.session_id == "ses_a" and len(doc.rows["session"]) == 1
    for table, rows in doc.rows.items():
        for row in rows:
            for column in ("session_id", "aggregate_id"):
                assert row.get(column, "ses_a") == "ses_a", (table, row)
            for value in row.values():
                assert value is None or isinstance(value, str | int | float | bytes)
                assert not isinstance(value, int) or -(2**63) <= value < 2**63
                assert not isinstance(value, float) or math.isfinite(value)


def test_deeply_nested_junk_is_refused_not_a_crash() -> None:
    with pytest.raises(BackupDamaged, match="not valid JSON"):
        br.parse_session(b"[" * 100_000 + b"]" * 100_000, Path("ses_a.json"))


# ---------------------------------------------------------------- a hostile snapshot (full replace)


def _tamper_snapshot(e: Env, sql: str) -> None:
    """Run ``sql`` inside the newest snapshot (decompressed, changed, compressed back)."""
    import sqlite3

    import zstandard

    snap = sorted((e.dest / MACHINE / "snapshots").glob("*.db.zst"))[-1]
    plain = e.app / "tamper.db"
    decompress(snap, plain)
    conn = sqlite3.connect(plain, isolation_level=None)
    conn.executescript(sql)
    conn.execute("VACUUM")
    conn.close()
    data = zstandard.ZstdCompressor().compress(plain.read_bytes())
    snap.write_bytes(data)
    # a careful attacker also makes the manifest agree (its hash, and the size the database expands to)
    machine = e.dest / MACHINE
    man = mf.load(machine, MACHINE)
    rel = f"snapshots/{snap.name}"
    man.files[rel] = mf.FileEntry(len(data), hashlib.sha256(data).hexdigest(), raw_size=plain.stat().st_size)
    mf.save(machine, man)
    plain.unlink()


def test_a_hostile_snapshot_brings_no_sql_and_no_login_into_opencode(
    env: Env,  # noqa: F811
) -> None:
    import sqlite3

    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    tokens = f.plant_secrets(conn, "ses_a", env.data)
    conn.execute("INSERT INTO account_state VALUES (1, 'acc1', NULL)")
    conn.close()
    backup(env, snapshot=True)
    schema_before = sorted(
        sqlite3.connect(f"file:{env.db}?mode=ro", uri=True).execute(
            "SELECT type, name, sql FROM sqlite_master"
        )
    )
    _tamper_snapshot(
        env,
        """
        CREATE TABLE loot (v TEXT);
        CREATE TRIGGER steal AFTER INSERT ON message BEGIN
            UPDATE message SET data = (SELECT group_concat(value) FROM credential) WHERE id = NEW.id;
        END;
        CREATE VIEW session_view AS SELECT * FROM session;
        CREATE INDEX evil_idx ON part (data);
        INSERT INTO account VALUES ('attacker', 'e@evil', 'https://evil', 'EVIL-TOKEN', 'EVIL-R', NULL, 1, 1);
        INSERT INTO credential VALUES ('cred-evil', NULL, 'evil', 'EVIL-CRED', NULL, NULL, 1, 1, 1);
        UPDATE account_state SET active_account_id = 'attacker';
        INSERT INTO permission VALUES ('per1', 'proj1', 'allow', 'bash:*', 1, 1);
        INSERT INTO migration VALUES ('evil-migration', 1);
        """,
    )
    assert restore(env, "--all", "--replace", "--yes") == 0
    conn = sqlite3.connect(env.db, isolation_level=None)
    try:
        assert sorted(conn.execute("SELECT type, name, sql FROM sqlite_master")) == schema_before
        assert conn.execute("SELECT id FROM account").fetchall() == [("acc1",)]
        assert conn.execute("SELECT value FROM credential").fetchall() == [(tokens[4],)]
        assert conn.execute("SELECT active_account_id FROM account_state").fetchall() == [("acc1",)]
        assert conn.execute("SELECT count(*) FROM permission").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM migration WHERE id = 'evil-migration'").fetchone()[0] == 0
        assert conn.execute("SELECT secret FROM session_share").fetchall() == [(tokens[5],)]
        f.add_message(conn, "ses_a", "the next message")  # a trigger from the snapshot would fire here
    finally:
        conn.close()
    backup(env)
    leaked = [
        p for p in (env.dest / MACHINE).rglob("*") if p.is_file() and tokens[4].encode() in p.read_bytes()
    ]
    assert leaked == []
