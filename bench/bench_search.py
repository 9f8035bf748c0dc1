"""Issue 19's targets: the search index over the bench's heavy user, each beside its reference in the run.

    python bench/bench_search.py [--work /tmp/ocb-bench] [--rounds 3] [--repeat 20]

build        the index of the 1,800-session backup the first sync makes (bench_targets.first_sync), into
             an empty cache folder, vs. a plain read + JSON parse of the same session files (what reading
             them at all costs), in turn, ``--rounds`` times; the median of the ratios. Target: <= 2x.
search       the p95 (and median) of ``--repeat`` runs of each query below on the fresh index, in process
             (what the window and the CLI wait for once the index is current). Target: p95 <= 50 ms. The
             same through the command line (a process: start-up and the freshness check included).
show         ``opencode-backup show`` of the largest session (a process): when its first line arrives.
             Target: <= 0.5 s.
incremental  after each of P1's one-message syncs (bench_sync's: the warm service's sync, the same
             session), the index update the service's worker runs next (its ``search.Follower``),
             median and max. Target: <= 10 ms. P1 itself (its sync vs. the backup-API copy) is printed from
             the same syncs: the update runs after the sync has committed, never inside it.

The cache folder is ``WORK/search/cache`` (XDG_CACHE_HOME), so nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_sync  # noqa: E402
import bench_targets  # noqa: E402

from app.backup import backup_reader as br  # noqa: E402
from app.backup import search as searching  # noqa: E402
from app.backup import search_index, search_refresh  # noqa: E402
from app.backup.sync import SyncOptions, run_sync  # noqa: E402

# gen_db's words: in nearly every session (the worst case for ranking), in fewer, in none; and a start
QUERIES = [("config", False), ("parse handler", False), ("quiet otter", False), ("xylophone", False),
           ("retry timeout logger", False), ("conf", True)]  # fmt: skip


def build(backup: Path, cache: Path, rounds: int) -> dict[str, float]:
    files = [p for ps in br.session_files(backup / "bench").values() for p in ps]
    for p in files:  # both read from the page cache
        p.read_bytes()
    ours, refs, ratios = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for p in files:
            json.loads(p.read_bytes())
        ref = time.perf_counter() - t0
        shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        with search_index.open_index(backup) as index:
            done = search_refresh.refresh(index)
        wall = time.perf_counter() - t0
        assert done.read == len(files) and not done.skipped, done
        ours.append(wall)
        refs.append(ref)
        ratios.append(wall / ref)
    size = search_index.index_path(backup).stat().st_size
    return {"files": len(files), "ours": statistics.median(ours), "ref": statistics.median(refs),
            "ratio": statistics.median(ratios), "index_mb": size / 1e6,
            "backup_mb": sum(p.stat().st_size for p in files) / 1e6}  # fmt: skip


def search(backup: Path, work: Path, repeat: int) -> dict[str, float]:
    times: list[float] = []
    with search_index.open_index(backup) as index:
        for query, prefix in QUERIES:
            index.search(query, 20, prefix=prefix)  # warm
            for _ in range(repeat):
                t0 = time.perf_counter()
                index.search(query, 20, prefix=prefix)
                times.append(time.perf_counter() - t0)
    times.sort()
    env = {**bench_targets.app_env(work, "search"), "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
    cli = [
        *bench_targets.command(),
        "--backup-path",
        str(backup),
        "--machine-name",
        "bench",
        "search",
        "config",
    ]
    walls = [bench_targets.timed(cli, env)[0] for _ in range(5)]
    return {"p95": times[int(len(times) * 0.95) - 1], "median": statistics.median(times),
            "n": len(times), "cli": statistics.median(walls)}  # fmt: skip


def show(backup: Path, work: Path) -> dict[str, float]:
    """``opencode-backup show`` of the largest session: when its first line arrives, and its last."""
    largest = max((backup / "bench" / "sessions").rglob("*.json"), key=lambda p: p.stat().st_size)
    env = bench_targets.app_env(work, "search")
    argv = [
        *bench_targets.command(),
        "--backup-path",
        str(backup),
        "--machine-name",
        "bench",
        "show",
        largest.stem,
    ]
    firsts, lasts = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        proc.stdout.readline()
        firsts.append(time.perf_counter() - t0)
        proc.stdout.read()
        assert proc.wait() == 0
        lasts.append(time.perf_counter() - t0)
    return {
        "mb": largest.stat().st_size / 1e6,
        "first": statistics.median(firsts),
        "all": statistics.median(lasts),
    }


def incremental(work: Path) -> dict[str, Any]:
    """P1's syncs on a backup of its own, the index built first; the update after each one timed."""
    data = work / "p1" / "opencode"
    db = bench_targets.database(work)
    dest = work / "search" / "p1-dest"
    shutil.rmtree(dest, ignore_errors=True)
    c = bench_sync.ctx(data, dest, work / "search" / "p1-app")
    keep = work / "p1" / bench_sync.KEEP
    sid = keep.read_text().strip() if keep.exists() else None
    if sid is not None:
        bench_sync.drop_bench_messages(db, sid)  # back to the size it was chosen at, as P1 does
    assert run_sync(c).ok
    os.sync()
    sid = sid or bench_sync.bench_session(work / "p1", dest / "bench" / "sessions")
    with search_index.open_index(dest) as index:
        search_refresh.refresh(index)
    syncs, updates = [], []
    follower = searching.Follower(dest, "bench")  # as the service's worker keeps it
    for n in range(bench_sync.P1_SYNCS):
        bench_sync.add_message(db, sid, n)
        t0 = time.perf_counter()
        r = run_sync(c, SyncOptions(dirty=()))
        t1 = time.perf_counter()
        follower.after_sync()
        t2 = time.perf_counter()
        assert r.ok and r.sessions_exported == 1, r
        syncs.append(t1 - t0)
        updates.append(t2 - t1)
    follower.close()
    with search_index.open_index(dest) as index:
        assert search_refresh.refresh(index) == search_refresh.Refreshed(), "the updates missed something"
    bench_sync.drop_bench_messages(db, sid)
    full = bench_sync.timed(lambda: bench_sync.full_copy(db, work / "search" / "full.db"))
    return {
        "update": statistics.median(updates),
        "update_max": max(updates),
        "sync": statistics.median(syncs),
        "full": full,
        "session": sid,
    }


def build_line(r: dict[str, float]) -> str:
    return (
        f"index build, {r['files']:,} sessions ({r['backup_mb']:.0f} MB): {r['ours']:.2f} s vs read + JSON "
        f"parse {r['ref']:.2f} s -> ratio {r['ratio']:.2f} (target <= 2); index {r['index_mb']:.0f} MB"
    )


def search_line(r: dict[str, float]) -> str:
    return (
        f"search, {r['n']} queries: p95 {r['p95'] * 1000:.1f} ms, median {r['median'] * 1000:.1f} ms "
        f"(target p95 <= 50 ms); 'opencode-backup search config' {r['cli'] * 1000:.0f} ms"
    )


def show_line(r: dict[str, float]) -> str:
    return (
        f"show, the largest session ({r['mb']:.1f} MB file): first line after {r['first'] * 1000:.0f} ms "
        f"(target <= 500 ms), all of it after {r['all'] * 1000:.0f} ms"
    )


def incremental_line(r: dict[str, Any]) -> str:
    return (
        f"index update after a one-message sync: median {r['update'] * 1000:.1f} ms, max "
        f"{r['update_max'] * 1000:.1f} ms (target <= 10 ms); the sync itself (P1) {r['sync'] * 1000:.1f} "
        f"ms vs backup-API copy {r['full'] * 1000:.0f} ms -> 1/{r['full'] / r['sync']:.0f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocb-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--skip", choices=["build", "search", "show", "incremental"], action="append", default=[])
    args = ap.parse_args()
    os.environ["XDG_CACHE_HOME"] = str(args.work / "search" / "cache")
    cache = args.work / "search" / "cache" / "opencode-session-backup"
    backup = args.work / "first" / "backup"
    if not (backup / "bench" / "manifest.json").exists():
        bench_targets.first_sync(args.work, 1)
    if "build" not in args.skip:
        print(build_line(build(backup, cache, args.rounds)), flush=True)
    if "search" not in args.skip:
        if not search_index.index_path(backup).is_file():
            build(backup, cache, 1)
        print(search_line(search(backup, args.work, args.repeat)), flush=True)
    if "show" not in args.skip:
        print(show_line(show(backup, args.work)), flush=True)
    if "incremental" not in args.skip:
        print(incremental_line(incremental(args.work)), flush=True)


if __name__ == "__main__":
    main()
