"""``restore --all --replace``: rebuild opencode's database from the newest snapshot plus newer sessions.

The snapshot is untrusted: nothing of its schema is kept or run. The new database is built in a private
temp file from the *live* database's own schema (its tables, then its indexes, triggers and views, as
opencode created them); the snapshot's rows are copied in table by table, by column name, from plain
tables only (no view, virtual table or generated column of the snapshot is ever read). Login tables,
migrations and saved permissions come from the current database, never from the snapshot, and so do
share secrets. Newer session files are applied on top; the result must pass ``quick_check`` and
``foreign_key_check``. Only then, after the safety copy and while no other process has it open, it is
written over opencode's database with SQLite's backup API. Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup.progress import Sink, Step, Throttled, nowhere
from app.backup.restore import model as rs
from app.backup.restore import sessions
from app.backup.restore.safety import SAFETY_DIR, safety_copy
from app.errors import BackupDamaged
from app.fsutil import PRIVATE_FILE, make_private_dirs
from app.opencode import importer, rebuild, running
from app.opencode.schema import Schema, quote, read_schema

logger = logging.getLogger(__name__)

# Taken from the current database, never from a snapshot: logins (so the user stays logged in, and no
# backup can log them into someone else's account), migrations (they describe the live schema) and saved
# tool permissions (a backup must not grant approvals).
FROM_CURRENT = (
    "account",
    "control_account",
    "credential",
    "account_state",
    "migration",
    "data_migration",
    "permission",
    "kv",  # opencode 2.0's state of this machine (its importer's marker among it), never a backup's
)
WORK = "restore-work"


def refuse_if_running(db: Path) -> None:
    """Raise RestoreRefused when another process has opencode's database open."""
    users, how = running.users_of(db)
    if users:
        raise rs.RestoreRefused(
            f"opencode is running: {how}: {', '.join(users[:3])}; quit opencode (the TUI, 'opencode serve', "
            "opencode2 or the desktop app) and run the restore again"
        )


def plan_full(req: rs.RestoreRequest, files: dict[str, list[Path]], opened: Path | None = None) -> rs.Plan:
    """Check the newest snapshot and every session file; plan the session files newer than the snapshot."""
    refs = br.snapshots(req.machine_dir)
    if not refs:
        raise rs.RestoreRefused(
            "the backup has no database snapshot to rebuild from; use 'restore --missing' instead"
        )
    ref = refs[-1]
    items: list[rs.PlanItem] = []
    notes: list[str] = []
    with sqlite3.connect(req.db.resolve().as_uri() + "?mode=ro", uri=True) as current:
        live = importer.live_schema(current)  # what the rebuilt database will be (its schema is the live one)
    with br.checked_snapshot(
        ref, req.work_dir / WORK, raw_size=_recorded_raw_size(req.machine_dir, ref), seal=req.seal
    ) as snap:
        conn = _open_snapshot(snap)
        try:
            snap_schema = read_schema(conn)
            why = rebuild.refusal(snap_schema, live.schema, ref.path.name)
            if why is not None:
                raise rs.RestoreRefused(why)
            in_snapshot = rebuild.sessions_in(conn, snap_schema)
            notes.append(f"opencode's database is rebuilt from {ref.path.name} ({len(in_snapshot)} sessions)")
            if rebuild.converts(snap_schema, live.schema):
                notes.append(
                    "its sessions are from opencode 1.x: they are converted for opencode 2.0 as it does"
                )
            for sid in sorted(files):
                # a file that cannot be read stops the whole replace (unlike --missing): what it would
                # rebuild is opencode's whole database, and the damage is said before anything is changed
                doc = sessions.newest_doc(sid, files[sid], req.seal, opened)
                if sid in in_snapshot and _same_in_snapshot(conn, snap_schema, doc, in_snapshot[sid]):
                    continue
                action = rs.Action.REPLACE if sid in in_snapshot else rs.Action.ADD
                items.append(sessions.plan_item(live, doc, action, notes))
        except sqlite3.Error as exc:
            raise BackupDamaged(f"refusing snapshot {ref.path.name}: {exc}") from None
        finally:
            conn.close()
    return rs.Plan(rs.Mode.ALL, req.db, tuple(items), snapshot=ref, notes=tuple(dict.fromkeys(notes)))


def _recorded_raw_size(machine_dir: Path, ref: br.SnapshotRef) -> int | None:
    """The database size the manifest recorded for this snapshot (caps its decompression), if any."""
    try:
        entry = mf.load(machine_dir, machine_dir.name).files.get(f"snapshots/{ref.path.name}")
    except BackupDamaged:
        return None
    return entry.raw_size if entry is not None and entry.raw_size else None


def _open_snapshot(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)
    conn.execute("PRAGMA trusted_schema=OFF")
    return conn


def _plain_tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    """Ordinary tables of an (attached) database: not views, not virtual tables, not SQLite's own."""
    rows = conn.execute(
        f"SELECT name, sql FROM {quote(schema)}.sqlite_master WHERE type = 'table'"
    ).fetchall()
    return {
        name
        for name, sql in rows
        if isinstance(sql, str)
        and sql.lstrip().upper().startswith("CREATE TABLE")
        and not name.startswith("sqlite_")
    }


def _same_in_snapshot(
    conn: sqlite3.Connection, schema: Schema, doc: br.SessionDoc, snap_updated: object
) -> bool:
    """True when the snapshot already holds this version of the session (a reply can stream in without
    bumping the session row's ``time_updated``, so its messages' counts and times are compared too)."""
    if not isinstance(snap_updated, int) or snap_updated < doc.time_updated:
        return False
    return rebuild.same_in(conn, schema, doc.store, doc.session_id, doc.rows)


def apply_full(
    plan: rs.Plan, req: rs.RestoreRequest, now: datetime, result: rs.RestoreResult, progress: Sink = nowhere
) -> None:
    """Build the new database, then (opencode not running) safety copy and write it over the live one."""
    assert plan.snapshot is not None
    refuse_if_running(req.db)
    work = req.work_dir / WORK
    raw = _recorded_raw_size(req.machine_dir, plan.snapshot)
    with (
        br.checked_snapshot(plan.snapshot, work, raw_size=raw, seal=req.seal) as snap,
        _private_temp_db(work) as rebuilt,
    ):
        conn = importer.open_writable(rebuilt, uri=True)  # uri: ATTACH takes read-only URIs
        try:
            _rebuild(conn, req.db, snap, plan.snapshot.path.name)
            live = importer.live_schema(conn)
            tell = Throttled(progress)
            nbytes = 0  # of session files read
            for done, item in enumerate(plan.actionable):
                tell.report(Step.RESTORING, done, len(plan.actionable), nbytes)
                nbytes += item.bytes
                try:
                    doc = sessions.reread(item, req.seal, plan.opened)
                    mapped = importer.map_session(live, item.session_id, doc.rows, doc.store)
                    added = importer.apply_session(conn, live, mapped, replace=True)
                except (BackupDamaged, importer.SessionNotMappable, sqlite3.Error) as exc:
                    result.failed.append((item.session_id, f"not restored: {exc}"))
                    continue
                result.restored.append((item.session_id, added))
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            broken = conn.execute("PRAGMA foreign_key_check").fetchmany(3)
            if ok != "ok" or broken:
                why = ok if ok != "ok" else f"rows without their parent, e.g. {broken[0][0]}"
                raise BackupDamaged(f"the rebuilt database failed its checks ({why}); nothing was changed")
        finally:
            conn.close()
        refuse_if_running(req.db)
        result.safety_copy = safety_copy(req.db, req.work_dir / SAFETY_DIR, now)
        try:
            _write_over(rebuilt, req.db)
        except sqlite3.Error as exc:
            raise rs.RestoreFailed(
                f"could not write the rebuilt database ({exc}); opencode's database is as it was "
                f"(a copy is in {result.safety_copy})"
            ) from None
    logger.info("opencode's database was rebuilt from %s", plan.snapshot.path.name)


@contextlib.contextmanager
def _private_temp_db(work: Path) -> Iterator[Path]:
    """An empty 0600 file in a private temp folder (removed, with any journal, on exit)."""
    make_private_dirs(work)
    with tempfile.TemporaryDirectory(dir=work, prefix=f"tmp{os.getpid()}-") as tmp:
        path = Path(tmp) / "rebuilt.db"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        yield path


def _rebuild(conn: sqlite3.Connection, current: Path, snapshot: Path, name: str) -> None:
    """Fill the empty database ``conn`` with the live schema, the snapshot's rows and the current logins."""
    conn.execute("ATTACH DATABASE ? AS cur", (current.resolve().as_uri() + "?mode=ro",))
    conn.execute("ATTACH DATABASE ? AS snap", (snapshot.as_uri() + "?mode=ro",))
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")  # rows arrive table by table; checked as a whole at the end
    objects = conn.execute(
        "SELECT type, name, sql FROM cur.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid"
    ).fetchall()
    tables = [n for t, n, _ in objects if t == "table"]
    conn.execute("BEGIN")
    try:
        for kind, _name, sql in objects:
            if kind == "table":
                conn.execute(sql)  # the live database's own definitions: opencode wrote them
        snap_tables = _plain_tables(conn, "snap")
        for table in tables:
            source = "cur" if table in FROM_CURRENT or table not in snap_tables else "snap"
            if table in FROM_CURRENT or table in snap_tables:
                _copy_rows(conn, table, source, name)
        _keep_share_secrets(conn)
        live = read_schema(conn)  # main's: the live database's tables
        snap_schema = _schema_of(snapshot)
        if rebuild.converts(snap_schema, live):
            converted = rebuild.convert_all(conn, "snap", live, snap_schema)
            logger.info("converted %d opencode 1.x session(s) of %s for opencode 2.0", converted, name)
        for kind, _name, sql in objects:
            if kind != "table":
                conn.execute(sql)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("DETACH DATABASE snap")
    conn.execute("DETACH DATABASE cur")


def _schema_of(snapshot: Path) -> Schema:
    conn = _open_snapshot(snapshot)
    try:
        return read_schema(conn)
    finally:
        conn.close()


def _copy_rows(conn: sqlite3.Connection, table: str, source: str, name: str) -> None:
    """Copy ``source.table`` into ``main.table``, by the column names both have (no generated columns)."""
    live = [r[1] for r in conn.execute(f"PRAGMA main.table_xinfo({quote(table)})") if r[6] == 0]
    theirs = {r[1] for r in conn.execute(f"PRAGMA {source}.table_xinfo({quote(table)})") if r[6] == 0}
    cols = ", ".join(quote(c) for c in live if c in theirs)
    if not cols:
        return
    try:
        conn.execute(f"INSERT INTO main.{quote(table)} ({cols}) SELECT {cols} FROM {source}.{quote(table)}")
    except sqlite3.IntegrityError as exc:
        raise BackupDamaged(
            f"refusing snapshot {name}: its {table} rows do not fit this opencode ({exc})"
        ) from None


def _keep_share_secrets(conn: sqlite3.Connection) -> None:
    """Share secrets of sessions that exist now come from the current database (the snapshot's are blank)."""
    cols = {r[1] for r in conn.execute("PRAGMA main.table_info(session_share)")}
    if {"session_id", "secret"} <= cols and "session_share" in _plain_tables(conn, "cur"):
        conn.execute(
            "UPDATE main.session_share SET secret = (SELECT c.secret FROM cur.session_share c "
            "WHERE c.session_id = session_share.session_id) "
            "WHERE session_id IN (SELECT session_id FROM cur.session_share)"
        )


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
