"""Build opencode databases with the real schema (tests/data/schema.sql, from opencode-ai 1.18.33)
without running opencode: fast, exact control over rows, for engine tests."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = Path(__file__).parent / "data" / "schema.sql"
MIGRATION = "20260622202450_simplify_session_input"  # the last of the 38 in schema.sql


def create_db(path: Path) -> sqlite3.Connection:
    """A new WAL database with opencode's schema and migration rows; returns a writable connection."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA.read_text())
    return conn


def connect(path: Path) -> sqlite3.Connection:
    """A writable connection to an existing database (autocommit, like opencode's own writes)."""
    return sqlite3.connect(path, isolation_level=None)


def delete_session(db: Path, sid: str) -> None:
    """Delete a session as opencode does: foreign keys on, so its messages, parts and todos go too."""
    conn = connect(db)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("DELETE FROM session WHERE id = ?", (sid,))
    finally:
        conn.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def add_project(conn: sqlite3.Connection, pid: str = "proj1", worktree: str = "/home/u/code") -> str:
    t = now_ms()
    conn.execute(
        "INSERT OR IGNORE INTO project (id, worktree, vcs, time_created, time_updated, sandboxes) "
        "VALUES (?, ?, 'git', ?, ?, '[]')",
        (pid, worktree, t, t),
    )
    return pid


def add_session(
    conn: sqlite3.Connection,
    sid: str,
    *,
    project: str = "proj1",
    messages: int = 2,
    parts: int = 2,
    todos: int = 1,
    time_updated: int | None = None,
    title: str | None = None,
    payload: str = "hello",
) -> str:
    """A session with ``messages`` messages of ``parts`` parts each, and ``todos`` todo rows."""
    add_project(conn, project)
    t = time_updated if time_updated is not None else now_ms()
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO session (id, project_id, slug, directory, title, version, time_created, time_updated) "
        "VALUES (?, ?, ?, ?, ?, '1.18.33', ?, ?)",
        (sid, project, sid.lower(), f"/home/u/code/{project}", title or f"title of {sid}", t, t),
    )
    for m in range(messages):
        mid = f"{sid}_msg{m:04d}"
        role = "user" if m % 2 == 0 else "assistant"
        conn.execute(
            "INSERT INTO message VALUES (?, ?, ?, ?, ?)",
            (mid, sid, t + m, t + m, json.dumps({"role": role, "time": {"created": t + m}})),
        )
        for p in range(parts):
            conn.execute(
                "INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                (
                    f"{mid}_p{p:03d}",
                    mid,
                    sid,
                    t + m,
                    t + m,
                    json.dumps({"type": "text", "text": f"{payload} {m}.{p}"}),
                ),
            )
    for i in range(todos):
        conn.execute(
            "INSERT INTO todo VALUES (?, ?, 'pending', 'high', ?, ?, ?)", (sid, f"todo {i} of {sid}", i, t, t)
        )
    conn.execute("COMMIT")
    return sid


def add_message(conn: sqlite3.Connection, sid: str, text: str, *, bump_session: bool = True) -> str:
    """Append one message with one part, as opencode does when a reply arrives."""
    t = now_ms()
    n = conn.execute("SELECT count(*) FROM message WHERE session_id=?", (sid,)).fetchone()[0]
    mid = f"{sid}_msg{n:04d}"
    conn.execute("BEGIN")
    conn.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (mid, sid, t, t, json.dumps({"role": "user"})))
    conn.execute(
        "INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
        (f"{mid}_p000", mid, sid, t, t, json.dumps({"type": "text", "text": text})),
    )
    if bump_session:
        conn.execute("UPDATE session SET time_updated=? WHERE id=?", (t, sid))
    conn.execute("COMMIT")
    return mid


def plant_secrets(conn: sqlite3.Connection, sid: str, data_dir: Path) -> list[str]:
    """Tokens in every secret-holding place; returns them so a test can grep the destination."""
    tokens = [
        "ACCESS-tok-5f1e2d",
        "REFRESH-tok-9a8b7c",
        "CTRL-ACCESS-77aa",
        "CTRL-REFRESH-66bb",
        "CRED-VALUE-4242",
        "SHARE-SECRET-1337",
        "AUTHJSON-KEY-0xfeed",
    ]
    t = now_ms()
    conn.execute(
        "INSERT INTO account VALUES ('acc1', 'u@example.com', 'https://x', ?, ?, NULL, ?, ?)",
        (tokens[0], tokens[1], t, t),
    )
    conn.execute(
        "INSERT INTO control_account VALUES ('u@example.com', 'https://x', ?, ?, NULL, 1, ?, ?)",
        (tokens[2], tokens[3], t, t),
    )
    conn.execute(
        "INSERT INTO credential VALUES ('cred1', NULL, 'label', ?, NULL, NULL, 1, ?, ?)", (tokens[4], t, t)
    )
    conn.execute(
        "INSERT INTO session_share VALUES (?, 'share1', ?, 'https://share', ?, ?)", (sid, tokens[5], t, t)
    )
    (data_dir / "auth.json").write_text(json.dumps({"openai": {"type": "api", "key": tokens[6]}}))
    return tokens


def seed(
    data_dir: Path, sessions: int, legacy: int, *, messages: int = 3, parts: int = 2
) -> sqlite3.Connection:
    """An opencode data folder: ``sessions`` sessions (``ses_0``…) in its database and ``legacy`` files of
    the legacy JSON tree (``storage/message/ses_0/msg_0.json``…); the database's connection, open."""
    conn = create_db(data_dir / "opencode.db")
    for i in range(sessions):
        add_session(conn, f"ses_{i}", messages=messages, parts=parts)
    storage = data_dir / "storage" / "message" / "ses_0"
    storage.mkdir(parents=True)
    for i in range(legacy):
        (storage / f"msg_{i}.json").write_text(json.dumps({"id": i}))
    return conn


def change_every_kind(conn: sqlite3.Connection, data_dir: Path) -> None:
    """After a first backup of :func:`seed`'s 6 sessions and 4 legacy files, a change of every kind a
    sync handles: sessions replaced, added, moved to another project and deleted; legacy files changed,
    removed and added. Closes ``conn``."""
    add_message(conn, "ses_1", "changed since")  # replaced
    add_message(conn, "ses_2", "changed too")  # replaced
    add_session(conn, "ses_new")  # added
    add_project(conn, "proj2")
    conn.execute(
        "UPDATE session SET project_id = 'proj2', time_updated = time_updated + 1 WHERE id = 'ses_4'"
    )
    conn.close()
    delete_session(data_dir / "opencode.db", "ses_3")  # deleted
    storage = data_dir / "storage" / "message" / "ses_0"
    (storage / "msg_0.json").write_text(json.dumps({"id": 0, "changed": True}))
    (storage / "msg_1.json").unlink()
    (storage / "msg_9.json").write_text(json.dumps({"id": 9}))
