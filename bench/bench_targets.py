#!/usr/bin/env python3
"""Issue 13's targets, each measured side by side with its reference in the same run, printed as a ratio.

    python bench/bench_targets.py [--work /tmp/ocb-bench] [--runs 10] [--rounds 2] [--skip NAME ...]

start-up  ``opencode-backup --version`` vs ``python -c pass`` (same interpreter), in turn, median of
          ``--runs`` each; the ratio pair by pair. Target <= 3.
status    ``opencode-backup status`` with no service running, on the backup the first sync made. Target
          <= 0.3 s (the ratio to ``python -c pass`` is printed too).
first     a first ``opencode-backup sync`` of the ~800 MB, 1,800-session database (``gen_db.py``) into an
          empty folder, as its own process: wall and peak RSS (the kernel's, from wait4). Reference: a
          process that copies the same database with the backup API and compresses the copy with zstd
          level 3 (one thread, as the snapshots are). Target: wall <= 3x the reference, peak <= 80 MB.
restore   ``opencode-backup restore --missing --yes`` of all its sessions into an empty opencode
          database (the schema only), as its own process. Reference: a process that copies the same rows
          with ``INSERT ... SELECT`` from the snapshot of that backup (decompressed, attached). Target <= 3x.
p1, p2    from bench_sync.py: one new message in the warm service vs a full backup-API copy, and five
          changed files in a 100,000-file legacy tree vs ``rsync -a --delete`` with nothing to do.
          Target <= 1/150 each.

Every child process gets its own HOME-like XDG folders under ``--work``. Quote the ratios: the machine's
speed drifts between runs, a ratio measured pair by pair much less. Needs rsync; the first run
generates the data (about 30 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SCHEMA = ROOT / "tests" / "data" / "schema.sql"

REFERENCE_SNAPSHOT = """
import sqlite3, sys, zstandard
src, raw, out = sys.argv[1:4]
s = sqlite3.connect("file:" + src + "?mode=ro", uri=True)
d = sqlite3.connect(raw)
s.backup(d, pages=-1)
d.close()
s.close()
cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
with open(raw, "rb") as fin, open(out, "wb") as fout:
    cctx.copy_stream(fin, fout, read_size=1 << 20, write_size=1 << 20)
"""

REFERENCE_RESTORE = """
import sqlite3, sys
target, snapshot, tables = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
conn = sqlite3.connect(target, isolation_level=None)
conn.execute("ATTACH DATABASE ? AS snap", ("file:" + snapshot + "?mode=ro",))
conn.execute("BEGIN IMMEDIATE")
for t in tables:
    cols = ", ".join('"%s"' % r[1] for r in conn.execute('PRAGMA main.table_info("%s")' % t))
    conn.execute('INSERT INTO main."%s" (%s) SELECT %s FROM snap."%s"' % (t, cols, cols, t))
conn.execute("COMMIT")
"""


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one child process; its output is discarded."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def command() -> list[str]:
    """How a user starts the program: the console script next to this interpreter, else ``-m app``."""
    script = Path(sys.executable).with_name("opencode-backup")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def app_env(work: Path, name: str) -> dict[str, str]:
    home = work / f"home-{name}"
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        env[var] = str(home / sub)
    for var in ("OPENCODE_BACKUP_PATH", "OPENCODE_DB", "OPENCODE_BACKUP_CONFIG"):
        env.pop(var, None)
    return env


def pairs(a: list[str], b: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``a`` and ``b`` in turn ``runs`` times (after one warm-up each): medians and median of a/b."""
    timed(a, env)
    timed(b, env)
    ta, tb = [], []
    for _ in range(runs):
        ta.append(timed(a, env)[0])
        tb.append(timed(b, env)[0])
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def database(work: Path) -> Path:
    db = work / "p1" / "opencode" / "opencode.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "gen_db.py"), str(db), "-q"], check=True)
    return db


def first_sync(work: Path, rounds: int) -> dict[str, float]:
    db = database(work)
    ours, refs, peaks, ratios = [], [], [], []
    for _ in range(rounds):
        ref_dir = work / "first" / "ref"
        shutil.rmtree(ref_dir, ignore_errors=True)
        ref_dir.mkdir(parents=True)
        ref = timed(
            [
                sys.executable,
                "-c",
                REFERENCE_SNAPSHOT,
                str(db),
                str(ref_dir / "raw.db"),
                str(ref_dir / "o.zst"),
            ]
        )
        shutil.rmtree(ref_dir)
        dest = work / "first" / "backup"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(work / "home-first", ignore_errors=True)
        dest.mkdir(parents=True)
        args = ["--backup-path", str(dest), "--source", str(db.parent), "--machine-name", "bench", "sync"]
        wall, peak, _ = timed([*command(), *args], app_env(work, "first"))
        ours.append(wall)
        refs.append(ref[0])
        peaks.append(peak)
        ratios.append(wall / ref[0])
    return {
        "wall_s": statistics.median(ours),
        "ref_s": statistics.median(refs),
        "ratio": statistics.median(ratios),
        "peak_mb": max(peaks),
    }


def status(work: Path, runs: int) -> tuple[float, float, float]:
    dest = work / "first" / "backup"
    if not (dest / "bench" / "manifest.json").exists():
        first_sync(work, 1)
    db = database(work)
    args = ["--backup-path", str(dest), "--source", str(db.parent), "--machine-name", "bench", "status"]
    return pairs([*command(), *args], [sys.executable, "-c", "pass"], runs, app_env(work, "first"))


def restore(work: Path, rounds: int) -> dict[str, float]:
    import zstandard

    from app.opencode import importer
    from app.opencode.store import V1

    dest = work / "first" / "backup"
    if not (dest / "bench" / "manifest.json").exists():
        first_sync(work, 1)
    snap = work / "restore" / "snapshot.db"
    snap.parent.mkdir(parents=True, exist_ok=True)
    packed = sorted((dest / "bench" / "snapshots").glob("*.db.zst"))[-1]
    with open(packed, "rb") as fin, open(snap, "wb") as fout:
        zstandard.ZstdDecompressor().copy_stream(fin, fout)
    ours, refs, peaks, ratios, dry = [], [], [], [], []
    for _ in range(rounds):
        target = empty_opencode(work / "restore" / "ref")
        conn = sqlite3.connect(target)
        live = importer.live_schema(conn)
        conn.close()
        tables = [t for t in live.order if t == "session" or t in live.children(V1) | live.parents(V1)]
        ref = timed([sys.executable, "-c", REFERENCE_RESTORE, str(target), str(snap), ",".join(tables)])
        target = empty_opencode(work / "restore" / "ours")
        shutil.rmtree(work / "home-restore", ignore_errors=True)
        base = ["--backup-path", str(dest), "--source", str(target.parent), "--machine-name", "bench"]
        env = app_env(work, "restore")
        dry.append(timed([*command(), *base, "restore", "--missing", "--dry-run"], env)[0])
        wall, peak, _ = timed([*command(), *base, "restore", "--missing", "--yes"], env)
        restored = sqlite3.connect(target).execute("SELECT count(*) FROM session").fetchone()[0]
        assert restored == 1800, restored
        ours.append(wall)
        refs.append(ref[0])
        peaks.append(peak)
        ratios.append(wall / ref[0])
    return {
        "wall_s": statistics.median(ours),
        "dry_s": statistics.median(dry),
        "ref_s": statistics.median(refs),
        "ratio": statistics.median(ratios),
        "peak_mb": max(peaks),
    }


def empty_opencode(folder: Path) -> Path:
    """An opencode data folder whose database has the schema and no session (a new laptop's)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = folder / "opencode.db"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA.read_text())
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocb-bench"))
    ap.add_argument("--runs", type=int, default=10, help="runs of each short command")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each long one (first sync, restore)")
    ap.add_argument("--legacy-files", type=int, default=100_000)
    names = ["startup", "status", "first", "restore", "p1", "p2"]
    ap.add_argument("--skip", choices=names, action="append", default=[])
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    say(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at the start")
    if "startup" not in args.skip:
        a, b, r = pairs(
            [*command(), "--version"], [sys.executable, "-c", "pass"], args.runs, dict(os.environ)
        )
        say(
            f"start-up: --version {a * 1000:.0f} ms vs python -c pass {b * 1000:.0f} ms -> ratio {r:.2f} "
            "(target <= 3)"
        )
    if "first" not in args.skip:
        r = first_sync(args.work, args.rounds)
        say(
            f"first sync: {r['wall_s']:.1f} s vs backup-API copy + zstd-3 {r['ref_s']:.1f} s -> ratio "
            f"{r['ratio']:.2f} (target <= 3); peak RSS {r['peak_mb']:.0f} MB (target <= 80)"
        )
    if "status" not in args.skip:
        a, b, r = status(args.work, args.runs)
        say(
            f"status, no service: {a * 1000:.0f} ms (target <= 300) = {r:.1f}x python -c pass "
            f"({b * 1000:.0f} ms)"
        )
    if "restore" not in args.skip:
        r = restore(args.work, args.rounds)
        say(
            f"restore --missing, 1,800 sessions into an empty opencode: {r['wall_s']:.1f} s (dry run "
            f"{r['dry_s']:.1f} s) vs INSERT ... SELECT from the attached snapshot {r['ref_s']:.1f} s -> "
            f"ratio {r['ratio']:.2f} (target <= 3); peak RSS {r['peak_mb']:.0f} MB"
        )
    if "p1" not in args.skip or "p2" not in args.skip:
        import bench_sync

        if "p1" not in args.skip:
            say(bench_sync.p1_line(bench_sync.p1(args.work, 1.0)))
        if "p2" not in args.skip:
            say(bench_sync.p2_line(bench_sync.p2(args.work, args.legacy_files)))
    say(f"load {os.getloadavg()[0]:.2f} at the end")


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main()
