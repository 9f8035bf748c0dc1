"""opencode 2.0.26 databases for tests, made from a real opencode 1.18.33 database without a 2.0 binary.

No 2.0 package is on the npm registry reachable here (``opencode-ai`` stops at 1.18.33). What 2.0.26 does to
a database was read from its source (public repository zjdCander/opencode @ 1066927be4e2, cross-checked
against anomalyco/opencode) and is replayed here:

1. the 11 migrations 2.0.26 adds to 1.18.33's 38 (``migrations/NN_<id>.sql``, their SQL as in
   ``packages/core/src/database/migration/``), in one transaction with foreign keys off as 2.0 runs them;
   m39 imports ``auth.json`` credentials (done here from a dict) and m48 turns an Azure CLI credential into
   an ``external`` one (one is planted before it runs);
2. the one-shot importer (``v1-migration.bun.ts``): deletes every ``event`` row, copies each 1.x session
   into ``session_v2`` (newest id first, project ``global`` when its project is gone), converts its messages
   and parts into ``session_message`` rows (the app's :mod:`app.opencode.convert`, itself checked against
   an independent port in tests/test_opencode2_convert.py), sets the watermark, and marks
   ``kv['migration.v1-v2']`` completed;
3. native 2.0 sessions as the projector writes them (``packages/core/src/session/projector.ts``): durable
   events (``<name>.<version>``), the watermark, ``session_message`` rows with the seq of the event that
   created them and updated in place as the reply streams, instructions, a queued inbox row, a failed turn;
4. ``late_v1`` sessions held back from the import and put back after it, rows in the 1.x tables only (a 1.x
   client writing to the database after 2.0 started).

Faithful: the migrations' SQL and journal, the importer's order and row shapes, id formats, event types and
seq rules. Guessed: timestamps, instruction blob values, some optional event fields. ``fresh`` makes a fresh
2.0.26 install instead (its bootstrap schema, no 1.x tables). Secrets are planted in every table that holds
one (``credential`` of each kind, ``account``, ``control_account``) and in ``kv``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.opencode.convert import convert_session
from app.opencode.convert_parts import dumps

HERE = Path(__file__).resolve().parent
MIGRATIONS = (
    "20260804233008_loose_psylocke",
    "20260805200742_import_legacy_credentials",
    "20260808023530_workspace_domain",
    "20260811161259_execution_claim_attempts",
    "20260812181746_session_inbox",
    "20260812213948_worktree",
    "20260819222447_session_viewed_state",
    "20260823191254_nullable_workspace_binding",
    "20260910120000_clear_v1_session_permission",
    "20260923013825_project_time_active",
    "20261007190000_azure_cli_external_credential",
)
LAST_V1_MIGRATION = "20260622202450_simplify_session_input"
VERSION = "2.0.26"
SECRET_KEY = "sk-TEST-SECRET-123"
AZURE_ACCESS = "AZ-TEST-ACCESS-SECRET-789"
ACCOUNT_ACCESS = "oc-TEST-ACCESS-SECRET-555"
ACCOUNT_REFRESH = "oc-TEST-REFRESH-SECRET-666"
KV_SECRET = "kv-TEST-WELLKNOWN-SECRET-444"
SECRETS = (SECRET_KEY, AZURE_ACCESS, ACCOUNT_ACCESS, ACCOUNT_REFRESH, KV_SECRET)
CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SLUGS = ("brave-harbor", "silent-comet", "lucky-meadow", "bright-canyon", "gentle-ember")


@dataclass
class Made:
    """What a 2.0 database holds: imported sessions (id, messages, watermark), native ones, late 1.x ones."""

    path: Path
    imported: list[tuple[str, int, int]] = field(default_factory=list)
    native: list[str] = field(default_factory=list)
    late_v1: list[str] = field(default_factory=list)

    @property
    def sessions(self) -> list[str]:
        return [sid for sid, _n, _w in self.imported] + self.native + self.late_v1


class Ids:
    """packages/schema/src/identifier.ts: 6 bytes of (ms << 12 | counter), descending for sessions, then
    14 random base62 characters."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.last = (0, 0)

    def __call__(self, prefix: str, ts: int, descending: bool = False) -> str:
        ts = int(ts)
        n = self.last[1] + 1 if self.last[0] == ts else 1
        self.last = (ts, n)
        value = ts * 0x1000 + n
        value = ~value if descending else value
        hexed = "".join(f"{(value >> (40 - 8 * i)) & 0xFF:02x}" for i in range(6))
        return f"{prefix}_{hexed}" + "".join(CHARS[self.rng.randrange(256) % 62] for _ in range(14))


def sql_statements(path: Path) -> list[str]:
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")]
    out, buf = [], ""
    for line in lines:
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    assert not buf.strip(), f"incomplete SQL at the end of {path}"
    return out


def _copy(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    s = sqlite3.connect(f"file:{src.resolve()}?mode=ro", uri=True)
    d = sqlite3.connect(dst)
    s.backup(d)
    s.close()
    d.execute("PRAGMA journal_mode=DELETE")
    d.close()


def _finish(path: Path) -> None:
    """foreign_key_check and integrity_check, then WAL mode with an empty log, as opencode leaves it."""
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    db.close()


def upgrade(src: Path, out: Path, *, late_v1: int | None = None, native: int = 3, seed: int = 0) -> Made:
    """``out``: the 1.18.33 database ``src`` as 2.0.26 leaves it after its first start (see the module)."""
    ids = Ids(seed)
    _copy(src, out)
    db = sqlite3.connect(out, isolation_level=None)
    journal = [r[0] for r in db.execute("SELECT id FROM migration ORDER BY id")]
    assert journal[-1:] == [LAST_V1_MIGRATION], f"not a 1.18.33 database: {journal[-1:]}"
    times = db.execute("SELECT time_created, time_updated FROM session ORDER BY time_created").fetchall()
    late = max(0, min(len(times), late_v1 if late_v1 is not None else int(len(times) >= 2)))
    imported_last = max((u for _c, u in times[: len(times) - late]), default=0) or 1_790_000_000_000
    gap = times[len(times) - late][0] - imported_last if late else 600_000
    t_up = imported_last + max(1, gap // 3)  # 2.0.26's first start: before the late 1.x session began
    project = db.execute(
        "SELECT id, worktree FROM project WHERE id != 'global' ORDER BY time_created LIMIT 1"
    ).fetchone()
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("BEGIN")
    held = _hold_back(db, late)
    _plant_v1_secrets(db, imported_last)
    db.execute("COMMIT")
    db.execute("BEGIN")
    for i, mid in enumerate(MIGRATIONS):
        now = t_up + 5 * i
        if mid == "20260805200742_import_legacy_credentials":  # data only: auth.json's entries
            value = dumps({"type": "key", "key": SECRET_KEY})
            db.execute(
                "INSERT INTO credential (id, integration_id, label, value, time_created, time_updated) "
                "VALUES (?, 'fakeprov', 'API key', ?, ?, ?)",
                (ids("cred", now), value, now, now),
            )
        else:
            if mid == "20261007190000_azure_cli_external_credential":  # what m48 converts
                azure = {
                    "type": "oauth",
                    "methodID": "azure-cli",
                    "refresh": AZURE_ACCESS + "-refresh",
                    "access": AZURE_ACCESS,
                    "expires": now + 3_600_000,
                    "metadata": {"tenant": "tenant-TEST"},
                }
                db.execute(
                    "INSERT INTO credential (id, integration_id, label, value, time_created, time_updated) "
                    "VALUES (?, 'azure', 'OAuth', ?, ?, ?)",
                    (ids("cred", now), dumps(azure), now, now),
                )
            for stmt in sql_statements(HERE / "migrations" / f"{i + 1:02d}_{mid}.sql"):
                db.execute(stmt)
        db.execute("INSERT INTO migration (id, time_completed) VALUES (?, ?)", (mid, now))
    db.execute("COMMIT")
    made = Made(out)
    db.execute("BEGIN")
    made.imported = v1_import(db, t_up)
    _plant_kv_secret(db, t_up + 200)
    db.execute("COMMIT")
    db.execute("BEGIN")
    made.native = add_native(db, ids, native, t0=t_up + 2000, project=project, seed=seed)
    _put_back(db, held)
    db.execute("COMMIT")
    made.late_v1 = [sid for sid, _rows in held]
    db.close()
    _finish(out)
    return made


def fresh(src: Path, out: Path, *, native: int = 3, seed: int = 0) -> Made:
    """A fresh 2.0.26 install (its bootstrap schema and all 49 journal ids, no 1.x tables) with ``native``
    sessions in ``src``'s first project."""
    ids = Ids(seed)
    s = sqlite3.connect(f"file:{src.resolve()}?mode=ro", uri=True)
    journal = [r[0] for r in s.execute("SELECT id FROM migration ORDER BY id")]
    project = s.execute(
        "SELECT id, worktree, vcs, time_updated FROM project WHERE id != 'global' "
        "ORDER BY time_created LIMIT 1"
    ).fetchone()
    s.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(out, isolation_level=None)
    t0 = project[3] + 60_000
    db.execute("BEGIN")
    for stmt in sql_statements(HERE / "migrations" / "schema.gen.2.0.26.sql"):
        db.execute(stmt)
    db.execute("CREATE TABLE `migration` (id TEXT PRIMARY KEY, time_completed INTEGER NOT NULL)")
    db.executemany(
        "INSERT INTO migration (id, time_completed) VALUES (?, ?)",
        [(m, t0) for m in journal + list(MIGRATIONS)],
    )
    db.execute(
        "INSERT INTO project (id, worktree, vcs, time_created, time_updated, time_active, sandboxes) "
        "VALUES (?, ?, ?, ?, ?, ?, '[]')",
        (project[0], project[1], project[2], t0, t0, t0),
    )
    db.execute(
        "INSERT INTO credential (id, integration_id, label, value, active, time_created, time_updated) "
        "VALUES (?, 'fakeprov', 'API key', ?, 1, ?, ?)",
        (ids("cred", t0), dumps({"type": "key", "key": SECRET_KEY}), t0, t0),
    )
    _plant_v1_secrets(db, t0)
    _plant_kv_secret(db, t0)
    made = Made(out, native=add_native(db, ids, native, t0=t0 + 1000, project=project[:2], seed=seed))
    db.execute("COMMIT")
    db.close()
    _finish(out)
    return made


def _plant_v1_secrets(db: sqlite3.Connection, t: int) -> None:
    db.execute(
        "INSERT INTO account (id, email, url, access_token, refresh_token, token_expiry, time_created, "
        "time_updated) VALUES ('acc_TEST0001', 'tester@example.invalid', 'http://127.0.0.1:9', "
        "?, ?, ?, ?, ?)",
        (ACCOUNT_ACCESS, ACCOUNT_REFRESH, t + 86_400_000, t - 3_600_000, t - 3_600_000),
    )
    db.execute(
        "INSERT INTO control_account (email, url, access_token, refresh_token, token_expiry, active, "
        "time_created, time_updated) VALUES ('tester@example.invalid', 'http://127.0.0.1:9', "
        "?, ?, ?, 0, ?, ?)",
        (ACCOUNT_ACCESS + "-ctl", ACCOUNT_REFRESH + "-ctl", t + 86_400_000, t - 3_600_000, t - 3_600_000),
    )


def _plant_kv_secret(db: sqlite3.Connection, t: int) -> None:
    """m39 keeps well-known auth sources in kv; a token there must not reach the backup either."""
    db.execute(
        "INSERT INTO kv (key, value, time_created, time_updated) VALUES ('wellknown:sources', ?, ?, ?)",
        (dumps({"https://example.invalid": {"token": KV_SECRET}}), t, t),
    )


def _hold_back(db: sqlite3.Connection, n: int) -> list[tuple[str, dict[str, tuple[list[str], list[Any]]]]]:
    """Remove the ``n`` newest 1.x sessions (to put back after the import)."""
    held = []
    ids = [r[0] for r in db.execute("SELECT id FROM session ORDER BY time_created DESC LIMIT ?", (n,))]
    for sid in ids:
        rows = {}
        for table, column in (("session", "id"), ("message", "session_id"), ("part", "session_id")):
            cur = db.execute(f"SELECT * FROM {table} WHERE {column} = ?", (sid,))
            rows[table] = ([d[0] for d in cur.description], cur.fetchall())
        for table in ("part", "message", "todo", "session_share"):
            db.execute(f"DELETE FROM {table} WHERE session_id = ?", (sid,))
        db.execute("DELETE FROM event WHERE aggregate_id = ?", (sid,))
        db.execute("DELETE FROM event_sequence WHERE aggregate_id = ?", (sid,))
        db.execute("DELETE FROM session WHERE id = ?", (sid,))
        held.append((sid, rows))
    return held


def _put_back(db: sqlite3.Connection, held: list[tuple[str, dict[str, tuple[list[str], list[Any]]]]]) -> None:
    for _sid, rows in held:
        for table in ("session", "message", "part"):
            cols, data = rows[table]
            marks = ", ".join("?" * len(cols))
            db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", data)


def v1_import(db: sqlite3.Connection, now: int) -> list[tuple[str, int, int]]:
    """2.0.26's ``V1Migration.run()``: (session id, session_message rows, watermark) of each one imported."""
    db.execute(
        "INSERT OR IGNORE INTO project (id, worktree, time_created, time_updated, time_active, sandboxes) "
        "VALUES ('global', '/', ?, ?, ?, '[]')",
        (now, now, now),
    )
    db.execute("DELETE FROM event")
    db.execute(
        "INSERT INTO kv (key, value, time_created, time_updated) VALUES ('migration.v1-v2', ?, ?, ?)",
        (dumps({"phase": "sessions"}), now, now),
    )
    projects = {r[0] for r in db.execute("SELECT id FROM project")}
    done = []
    for (sid,) in db.execute("SELECT id FROM session ORDER BY id DESC").fetchall():
        now += 3
        db.execute(
            "UPDATE kv SET value = ?, time_updated = ? WHERE key = 'migration.v1-v2'",
            (dumps({"phase": "sessions", "cursor": sid}), now),
        )
        pid = db.execute("SELECT project_id FROM session WHERE id = ?", (sid,)).fetchone()[0]
        db.execute(
            """INSERT OR IGNORE INTO session_v2 (id, project_id, workspace_id, parent_id, slug, directory,
              path, title, version, share_url, summary_additions, summary_deletions, summary_files,
              summary_diffs, metadata, cost, tokens_input, tokens_output, tokens_reasoning, tokens_cache_read,
              tokens_cache_write, revert, permission, agent, model, time_created, time_updated,
              time_compacting, time_archived)
            SELECT id, ?, workspace_id, parent_id, slug, directory, path, title, version, share_url,
              summary_additions, summary_deletions, summary_files, summary_diffs, metadata, cost,
              tokens_input, tokens_output, tokens_reasoning, tokens_cache_read, tokens_cache_write,
              revert, NULL, agent, model, time_created, time_updated, time_compacting, time_archived
            FROM session WHERE id = ?""",
            (pid if pid in projects else "global", sid),
        )
        session = _dicts(db, "SELECT * FROM session_v2 WHERE id = ?", sid)[0]
        messages = _dicts(db, "SELECT * FROM message WHERE session_id = ?", sid)
        parts = _dicts(db, "SELECT * FROM part WHERE session_id = ?", sid)
        t = convert_session(session, messages, parts)
        db.execute("DELETE FROM session_message WHERE session_id = ?", (sid,))
        db.executemany(
            "INSERT INTO session_message (id, session_id, type, seq, time_created, time_updated, data) "
            "VALUES (:id, :session_id, :type, :seq, :time_created, :time_updated, :data)",
            t.messages,
        )
        sets = ", ".join(f"{k} = :{k}" for k in t.session)
        db.execute(
            f"UPDATE session_v2 SET {sets}, revert = NULL, time_compacting = NULL WHERE id = :id",
            {**t.session, "id": sid},
        )
        db.execute(
            "INSERT INTO event_sequence (aggregate_id, seq) VALUES (?, ?) "
            "ON CONFLICT (aggregate_id) DO UPDATE SET seq = excluded.seq, owner_id = NULL",
            (sid, t.watermark),
        )
        done.append((sid, len(t.messages), t.watermark))
    db.execute(
        "UPDATE kv SET value = ?, time_updated = ? WHERE key = 'migration.v1-v2'",
        (dumps({"phase": "completed"}), now + 3),
    )
    return done


def _dicts(db: sqlite3.Connection, sql: str, *params: Any) -> list[dict[str, Any]]:
    cur = db.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def add_native(
    db: sqlite3.Connection, ids: Ids, n: int, *, t0: int, project: tuple[str, str], seed: int = 0
) -> list[str]:
    """``n`` sessions 2.0 wrote itself; returns their ids. Every third calls a tool and has an
    API-attached instruction; every third after that fails a turn and leaves a queued prompt."""
    from tests.opencode2.projector import Native

    scripts = [
        (
            "Explain the build script",
            [
                ("How does the build script work?", "It runs make, then packs dist."),
                ("And where does it put the output?", "In ./dist, one archive each."),
            ],
        ),
        ("Read the README", [("Please read README.md and summarise it.", "The README says: fake project.")]),
        ("Flaky provider", [("Say hello.", "Hello from the fake LLM.")]),
    ]
    rng = random.Random(seed)
    slugs = list(SLUGS)
    out = []
    for i in range(n):
        title, turns = scripts[i % len(scripts)]
        slug = slugs.pop(rng.randrange(len(slugs))) if slugs else f"native-{i}"
        name = title if i < len(scripts) else f"{title} {i}"
        s = Native(db, ids, rng, t=t0 + i * 45_000, project=project, title=name, slug=slug)
        for j, (prompt, reply) in enumerate(turns):
            tool = None
            if i % 3 == 1:
                call = "call_" + ids("x", s.t)[2:14]
                output = f"<path>{project[1]}/README.md</path>\n<content>\n1: # fake project\n</content>"
                tool = (call, "read", {"path": "README.md"}, output, {"preview": "# fake project"})
            s.turn(prompt, reply, tool=tool, first=j == 0)
        if i % 3 == 1:
            db.execute(
                "INSERT INTO instruction_entry (session_id, key, value, removed, time_created, time_updated) "
                "VALUES (?, 'ticket', ?, 0, ?, ?)",
                (s.sid, dumps("JIRA-123: README is too short"), s.t, s.t),
            )
        if i % 3 == 2:
            s.failed_turn("Try again, please.")
            s.enqueue("Queued follow-up that was never sent.", delivery="queue")
        out.append(s.sid)
    return out


def blob_hash(value: object) -> str:
    return hashlib.sha256(dumps(value).encode()).hexdigest()


def message_texts(db: Path, sid: str) -> list[str]:
    """Every text a session's 2.0 messages hold (user text, assistant text parts), in seq order."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM session_message WHERE session_id = ? ORDER BY seq", (sid,))
        out = []
        for (data,) in rows:
            d = json.loads(data)
            out += [d["text"]] if isinstance(d.get("text"), str) else []
            out += [c["text"] for c in d.get("content") or [] if c.get("type") == "text"]
        return out
    finally:
        conn.close()
