#!/usr/bin/env python3
"""opencode 2.0's targets (issue 14), each measured side by side with its reference in the same run.

    python bench/bench_v2.py [--work /tmp/ocb-bench] [--rounds 2] [--native 60] [--skip NAME ...]

The data: the bench's heavy user (``gen_db.py``: 1,800 sessions, ~800 MB) upgraded to opencode 2.0.26 as
2.0 does it at its first start (its 11 migrations and its importer, ``tests/opencode2/make_v2.py``), plus
``--native`` sessions 2.0 wrote itself (events, watermark, messages updated in place). Made once and kept
under ``--work`` (about a minute).

first     a first ``opencode-backup sync`` of the 2.0 database into an empty folder, as its own process.
          Reference: a process that copies it with the backup API and compresses the copy with zstd-3.
          Target <= 3x.
restore   ``restore --missing --yes`` of all its sessions into an empty 2.0 database (a fresh install's
          schema). Reference: ``INSERT ... SELECT`` of the same tables from the decompressed snapshot of
          that backup. Target <= 3x.
convert   ``restore --missing --yes`` of the 1.x backup of the same 1,800 sessions into an empty 2.0
          database: each session converted as 2.0's importer converts it. Reference: the ``INSERT ...
          SELECT`` floor of the 1.x rows into an empty 1.x database. Target <= 5x.
p1        one new turn streamed into a 2.0 session (a prompt and its reply, the reply's row rewritten in
          place as it streams, the watermark raised), synced as the warm service does, median of 31, vs a
          backup-API copy of the database. Target <= 1/150.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_sync  # noqa: E402
import bench_targets as bt  # noqa: E402

from app.backup.sync import SyncOptions, run_sync  # noqa: E402
from tests.opencode2 import make_v2  # noqa: E402

FRESH_SCHEMA = ROOT / "tests" / "opencode2" / "migrations" / "schema.gen.2.0.26.sql"


def database(work: Path, native: int) -> Path:
    """The 2.0.26 upgrade of the bench database (made once)."""
    db = work / "v2" / "opencode" / "opencode.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        made = make_v2.upgrade(bt.database(work), db, late_v1=0, native=native)
        print(
            f"(made the 2.0 database in {time.perf_counter() - t0:.0f} s: {len(made.imported)} imported, "
            f"{len(made.native)} native sessions)",
            flush=True,
        )
    return db


def empty_v2(folder: Path) -> Path:
    """A fresh opencode 2.0.26 install's database: the schema, no session."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = folder / "opencode.db"
    conn = sqlite3.connect(db)
    for stmt in make_v2.sql_statements(FRESH_SCHEMA):
        conn.execute(stmt)
    conn.execute("CREATE TABLE migration (id TEXT PRIMARY KEY, time_completed INTEGER NOT NULL)")
    conn.commit()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return db


def restore_into(
    work: Path, backup: Path, snap_tables: Path, name: str, *, rounds: int, floor_db: bool = False
) -> dict[str, float]:
    """``restore --missing`` from ``backup`` into an empty 2.0 database, against INSERT ... SELECT of the
    session tables of the snapshot ``snap_tables`` into an empty database of its own kind."""
    from app.opencode import importer
    from app.opencode.stores import stores_in

    ours, refs, ratios = [], [], []
    for _ in range(rounds):
        target = bt.empty_opencode(work / name / "ref") if floor_db else empty_v2(work / name / "ref")
        conn = sqlite3.connect(target)
        live = importer.live_schema(conn)
        conn.close()
        wanted: set[str] = set()
        for store in stores_in(live.schema):
            wanted |= {
                store.root,
                *live.children(store),
                *live.parents(store),
                *(n.table for n in store.named),
            }
        tables = [t for t in live.order if t in wanted]
        ref = bt.timed(
            [sys.executable, "-c", bt.REFERENCE_RESTORE, str(target), str(snap_tables), ",".join(tables)]
        )
        target = empty_v2(work / name / "ours")
        shutil.rmtree(work / f"home-{name}", ignore_errors=True)
        base = ["--backup-path", str(backup), "--source", str(target.parent), "--machine-name", "bench"]
        wall, _peak, _ = bt.timed(
            [*bt.command(), *base, "restore", "--missing", "--yes"], bt.app_env(work, name)
        )
        restored = sqlite3.connect(target).execute("SELECT count(*) FROM session_v2").fetchone()[0]
        assert restored >= 1800, restored
        ours.append(wall)
        refs.append(ref[0])
        ratios.append(wall / ref[0])
    return {
        "wall_s": statistics.median(ours),
        "ref_s": statistics.median(refs),
        "ratio": statistics.median(ratios),
    }


def snapshot_of(backup: Path, out: Path) -> Path:
    import zstandard

    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        packed = sorted((backup / "bench" / "snapshots").glob("*.db.zst"))[-1]
        with open(packed, "rb") as fin, open(out, "wb") as fout:
            zstandard.ZstdDecompressor().copy_stream(fin, fout)
    return out


def first_sync_v2(work: Path, db: Path, rounds: int) -> tuple[dict[str, float], Path]:
    ours, refs, ratios = [], [], []
    dest = work / "v2" / "backup"
    for _ in range(rounds):
        ref_dir = work / "v2" / "ref"
        shutil.rmtree(ref_dir, ignore_errors=True)
        ref_dir.mkdir(parents=True)
        ref = bt.timed(
            [sys.executable, "-c", bt.REFERENCE_SNAPSHOT, str(db), str(ref_dir / "raw"), str(ref_dir / "o")]
        )
        shutil.rmtree(ref_dir)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(work / "home-v2first", ignore_errors=True)
        dest.mkdir(parents=True)
        args = ["--backup-path", str(dest), "--source", str(db.parent), "--machine-name", "bench", "sync"]
        wall, _peak, _ = bt.timed([*bt.command(), *args], bt.app_env(work, "v2first"))
        ours.append(wall)
        refs.append(ref[0])
        ratios.append(wall / ref[0])
    return {
        "wall_s": statistics.median(ours),
        "ref_s": statistics.median(refs),
        "ratio": statistics.median(ratios),
    }, dest


def stream_turn(db: Path, sid: str, n: int) -> None:
    """One turn as 2.0's projector writes it: the prompt and the reply at the next seqs, each an event,
    the reply's row rewritten in place as its text streams, the watermark raised at each event."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    seq = conn.execute("SELECT seq FROM event_sequence WHERE aggregate_id = ?", (sid,)).fetchone()[0]
    t = int(time.time() * 1000)
    user, reply = f"msg_bench{time.time_ns()}u{n}", f"msg_bench{time.time_ns()}a{n}"

    def event(kind: str, data: dict[str, object]) -> int:
        nonlocal seq
        seq += 1
        conn.execute(
            "INSERT INTO event (id, aggregate_id, seq, type, data, created) VALUES (?, ?, ?, ?, ?, ?)",
            (f"evt_bench{time.time_ns()}", sid, seq, kind, json.dumps(data), t),
        )
        conn.execute("UPDATE event_sequence SET seq = ? WHERE aggregate_id = ?", (seq, sid))
        return seq

    at = event("session.inbox.delivered.1", {"sessionID": sid})
    conn.execute(
        "INSERT INTO session_message (id, session_id, type, seq, time_created, time_updated, data) "
        "VALUES (?, ?, 'user', ?, ?, ?, ?)",
        (user, sid, at, t, t, json.dumps({"text": f"bench prompt {n}", "time": {"created": t}})),
    )
    at = event("session.step.started.1", {"sessionID": sid})
    body: dict[str, object] = {"time": {"created": t}, "agent": "build", "content": []}
    conn.execute(
        "INSERT INTO session_message (id, session_id, type, seq, time_created, time_updated, data) "
        "VALUES (?, ?, 'assistant', ?, ?, ?, ?)",
        (reply, sid, at, t, t, json.dumps(body)),
    )
    conn.execute("UPDATE session_v2 SET time_updated = ? WHERE id = ?", (t, sid))
    for chunk in range(3):  # the reply streams in: its row rewritten in place
        event("session.text.ended.1", {"sessionID": sid})
        body["content"] = [{"type": "text", "text": "streamed " * (40 * (chunk + 1))}]
        conn.execute(
            "UPDATE session_message SET data = ?, time_updated = ? WHERE id = ?",
            (json.dumps(body), t + chunk + 1, reply),
        )
    conn.execute("COMMIT")
    conn.close()


def p1_v2(work: Path, db: Path) -> dict[str, float]:
    dest = work / "v2" / "p1dest"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(work / "v2" / "p1app", ignore_errors=True)
    c = bench_sync.ctx(db.parent, dest, work / "v2" / "p1app")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM session_message WHERE id LIKE 'msg_bench%'")
    conn.execute("DELETE FROM event WHERE id LIKE 'evt_bench%'")
    conn.close()
    first = run_sync(c)
    assert first.ok, first.error
    os.sync()
    sid = bench_sync.bench_session(work / "v2", dest / "bench" / "sessions")
    conn = sqlite3.connect(db, isolation_level=None)  # back to its seq: the messages above were deleted
    top = conn.execute("SELECT max(seq) FROM session_message WHERE session_id = ?", (sid,)).fetchone()[0]
    conn.execute("UPDATE event_sequence SET seq = ? WHERE aggregate_id = ?", (top, sid))
    conn.close()
    elapsed = []
    for n in range(bench_sync.P1_SYNCS):
        stream_turn(db, sid, n)
        t0 = time.perf_counter()
        r = run_sync(c, SyncOptions(dirty=()))
        elapsed.append(time.perf_counter() - t0)
        assert r.ok and r.sessions_exported == 1, r

    ours = statistics.median(elapsed)
    full = bench_sync.timed(lambda: bench_sync.full_copy(db, work / "v2" / "full.db"))
    size = next((dest / "bench" / "sessions").rglob(f"{sid}.json")).stat().st_size
    return {
        "sync_s": ours,
        "full_s": full,
        "ratio": ours / full,
        "kb": size / 1e3,
        "mb": db.stat().st_size / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocb-bench"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--native", type=int, default=60, help="sessions 2.0 wrote itself, beside the imported")
    names = ["first", "restore", "convert", "p1"]
    ap.add_argument("--skip", choices=names, action="append", default=[])
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    db = database(args.work, args.native)
    say(
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"2.0 database {db.stat().st_size / 1e6:.0f} MB"
    )
    backup = args.work / "v2" / "backup"
    if "first" not in args.skip or not (backup / "bench" / "manifest.json").exists():
        r, backup = first_sync_v2(args.work, db, args.rounds if "first" not in args.skip else 1)
        say(
            f"2.0 first sync: {r['wall_s']:.1f} s vs backup-API copy + zstd-3 {r['ref_s']:.1f} s -> ratio "
            f"{r['ratio']:.2f} (target <= 3)"
        )
    if "restore" not in args.skip:
        snap = snapshot_of(backup, args.work / "v2" / "snapshot.db")
        r = restore_into(args.work, backup, snap, "v2restore", rounds=args.rounds)
        say(
            f"2.0 restore --missing, all sessions into an empty 2.0: {r['wall_s']:.1f} s "
            "vs INSERT ... SELECT "
            f"{r['ref_s']:.1f} s -> ratio {r['ratio']:.2f} (target <= 3)"
        )
    if "convert" not in args.skip:
        v1_backup = args.work / "first" / "backup"
        if not (v1_backup / "bench" / "manifest.json").exists():
            bt.first_sync(args.work, 1)
        snap = snapshot_of(v1_backup, args.work / "restore" / "snapshot.db")
        r = restore_into(args.work, v1_backup, snap, "v2convert", rounds=args.rounds, floor_db=True)
        say(
            f"1.x backup converted into an empty 2.0, 1,800 sessions: {r['wall_s']:.1f} s vs the 1.x "
            f"INSERT ... SELECT floor {r['ref_s']:.1f} s -> ratio {r['ratio']:.2f} (target <= 5)"
        )
    if "p1" not in args.skip:
        r = p1_v2(args.work, db)
        say(
            f"2.0 P1 one turn streamed in place, {r['mb']:.0f} MB DB, warm service: "
            f"sync {r['sync_s'] * 1000:.1f} ms vs backup-API copy {r['full_s'] * 1000:.0f} ms "
            f"-> ratio 1/{1 / r['ratio']:.0f} (target <= 1/150;"
            f" session file {r['kb']:.0f} KB)"
        )
    say(f"load {os.getloadavg()[0]:.2f} at the end")


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main()
