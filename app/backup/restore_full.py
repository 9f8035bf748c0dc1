"""``restore --all --replace``: rebuild opencode's database from the newest snapshot plus newer sessions.

The new database is built in a private temp file (the checked snapshot, newer session files applied,
the current database's accounts and credentials copied in), then written over opencode's database
with SQLite's backup API, after the safety copy, and only while no other process has it open.
Runs on the caller's thread.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import restore as rs
from app.errors import BackupDamaged
from app.opencode import importer, running
from app.opencode.schema import quote
from app.opencode.sessions import open_readonly

logger = logging.getLogger(__name__)

# Rows the rebuilt database takes from the current one, parents first, so the user stays logged in.
KEEP_TABLES = ("account", "control_account", "credential", "account_state")


def refuse_if_running(db: Path) -> None:
    """Raise RestoreRefused when another process has opencode's database open."""
    users, how = running.users_of(db)
    if users:
        raise rs.RestoreRefused(
            f"opencode is running: {how}: {', '.join(users[:3])}; quit opencode (and 'opencode serve') "
            "and run the restore again"
        )


def plan_full(req: rs.RestoreRequest, files: dict[str, list[Path]]) -> rs.Plan:
    """Check the newest snapshot and every session file; plan the session files newer than the snapshot."""
    refs = br.snapshots(req.machine_dir)
    if not refs:
        raise rs.RestoreRefused(
            "the backup has no database snapshot to rebuild from; use 'restore --missing' instead"
        )
    ref = refs[-1]
    items: list[rs.PlanItem] = []
    notes: list[str] = []
    with br.checked_snapshot(ref, req.work_dir / "restore-work") as snap:
        conn = sqlite3.connect(snap.as_uri() + "?mode=ro", uri=True)
        try:
            snap_live = importer.live_schema(conn)
            in_snapshot = dict(conn.execute("SELECT id, time_updated FROM session").fetchall())
            notes.append(f"opencode's database is rebuilt from {ref.path.name} ({len(in_snapshot)} sessions)")
            for sid in sorted(files):
                doc = rs.newest_doc(sid, files[sid])
                if sid in in_snapshot and _same_in_snapshot(conn, doc, in_snapshot[sid]):
                    continue
                action = "replace" if sid in in_snapshot else "add"
                items.append(rs.plan_item(snap_live, doc, action, notes))
        except sqlite3.Error as exc:
            raise BackupDamaged(f"refusing snapshot {ref.path.name}: {exc}") from None
        finally:
            conn.close()
    return rs.Plan("all", req.db, tuple(items), snapshot=ref, notes=tuple(dict.fromkeys(notes)))


def _same_in_snapshot(conn: sqlite3.Connection, doc: br.SessionDoc, snap_updated: object) -> bool:
    """True when the snapshot already holds this version of the session (a reply can stream in
    without bumping ``session.time_updated``, so message and part counts and times are compared too)."""
    if not isinstance(snap_updated, int) or snap_updated < doc.time_updated:
        return False
    for table in ("message", "part"):
        rows = doc.rows.get(table, [])
        latest = max((r.get("time_updated") or 0 for r in rows), default=None)
        try:
            count, snap_latest = conn.execute(
                f"SELECT count(*), max(time_updated) FROM {table} WHERE session_id = ?", (doc.session_id,)
            ).fetchone()
        except sqlite3.OperationalError:
            return False  # a schema without that table or column: restore the file to be safe
        if count != len(rows) or (snap_latest if count else None) != latest:
            return False
    return True


def apply_full(plan: rs.Plan, req: rs.RestoreRequest, now: datetime, result: rs.RestoreResult) -> None:
    """Build the new database, then (opencode not running) safety copy and write it over the live one."""
    assert plan.snapshot is not None
    refuse_if_running(req.db)
    with br.checked_snapshot(plan.snapshot, req.work_dir / "restore-work") as rebuilt:
        conn = importer.open_writable(rebuilt)
        try:
            live = importer.live_schema(conn)
            for item in plan.actionable:
                try:
                    doc = rs.reread(item)
                    mapped = importer.map_session(live, item.session_id, doc.rows)
                    added = importer.apply_session(conn, live, mapped, replace=True)
                except (BackupDamaged, importer.SessionNotMappable, sqlite3.Error) as exc:
                    result.failed.append((item.session_id, f"not restored: {exc}"))
                    continue
                result.restored.append((item.session_id, added))
            _keep_secrets(req.db, conn)
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise BackupDamaged(f"the rebuilt database failed quick_check ({ok}); nothing was changed")
        finally:
            conn.close()
        refuse_if_running(req.db)
        result.safety_copy = rs.safety_copy(req.db, req.work_dir / rs.SAFETY_DIR, now)
        try:
            _write_over(rebuilt, req.db)
        except sqlite3.Error as exc:
            raise rs.RestoreFailed(
                f"could not write the rebuilt database ({exc}); opencode's database is as it was "
                f"(a copy is in {result.safety_copy})"
            ) from None
    logger.info("opencode's database was rebuilt from %s", plan.snapshot.path.name)


def _keep_secrets(current_db: Path, rebuilt: sqlite3.Connection) -> None:
    """Copy accounts, credentials and share secrets of the current database into the rebuilt one."""
    cur = open_readonly(current_db)
    try:
        cur_tables = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        new_cols = {
            t: [r[1] for r in rebuilt.execute(f"PRAGMA table_info({quote(t)})")]
            for (t,) in rebuilt.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        }
        rebuilt.execute("BEGIN IMMEDIATE")
        for table in KEEP_TABLES:
            if table not in cur_tables or not new_cols.get(table):
                continue
            have = {r[1] for r in cur.execute(f"PRAGMA table_info({quote(table)})")}
            cols = [c for c in new_cols[table] if c in have]
            sel = ", ".join(quote(c) for c in cols)
            rows = cur.execute(f"SELECT {sel} FROM {quote(table)}").fetchall()
            rebuilt.executemany(
                f"INSERT OR REPLACE INTO {quote(table)} ({sel}) VALUES ({', '.join('?' * len(cols))})", rows
            )
        if "session_share" in cur_tables and "secret" in new_cols.get("session_share", []):
            for sid, secret in cur.execute("SELECT session_id, secret FROM session_share").fetchall():
                rebuilt.execute("UPDATE session_share SET secret = ? WHERE session_id = ?", (secret, sid))
        rebuilt.execute("COMMIT")
    finally:
        cur.close()


def _write_over(rebuilt: Path, db: Path) -> None:
    """Replace the content of ``db`` with ``rebuilt`` through the backup API (WAL and locks respected)."""
    src = sqlite3.connect(rebuilt.as_uri() + "?mode=ro", uri=True)
    try:
        dst = importer.open_writable(db)
        try:
            mode = dst.execute("PRAGMA journal_mode").fetchone()[0]
            src.backup(dst, pages=-1)
            dst.execute(f"PRAGMA journal_mode={'WAL' if str(mode).lower() == 'wal' else 'DELETE'}")
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            dst.close()
    finally:
        src.close()
