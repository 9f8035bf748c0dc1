#!/usr/bin/env python3
"""Benchmarks of the live service (``opencode-backup run --headless`` as a real process).

- P3 idle: the service watches an ~800 MB database (``gen_db.py``) plus a 100,000-file legacy tree
  (``gen_legacy.py``). After its start-up sync, CPU seconds used per idle minute (target <= 0.1) and
  syncs started while idle (target 0).
- P4 peak RSS of the service process over P3 (start-up sync included) and P5 (target <= 80 MB).
- P5 change -> in-backup latency while real ``opencode serve`` (fake LLM) answers prompts: from the
  moment a prompt is sent until the backup holds the session's settled state; median and max
  (targets <= 6 s median, <= 35 s max). Default timing (5 s delay, 30 s interval). Prompts come
  ``--p5-gap`` seconds apart (uniform), like a user who reads the answer before typing again; a
  second prompt in one session sent a few seconds after the first measures the worst case.

Usage::

    bench/bench_service.py [--work /tmp/ocb-svc] [--idle 60] [--p5-prompts 8] [--skip p3|p5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.peer.opencode import OpencodePeer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int, key: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def read_status(state_home: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_home / "opencode-session-backup" / "service" / "status.json").read_bytes())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class ServiceProcess:
    """``python -m app run --headless`` (or, with ``tray_env``, the tray app) with its own state/data dirs."""

    def __init__(
        self, work: Path, source: Path, dest: Path, tray_env: dict[str, str] | None = None, name: str = "svc"
    ) -> None:
        self.home = work / f"{name}-home"
        self.state = self.home / "state"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(self.state)}
        env["XDG_DATA_HOME"] = str(self.home / "data")
        env.update(tray_env or {})
        argv = [sys.executable, "-m", "app", "run", *([] if tray_env else ["--headless"])]
        argv += ["--backup-path", str(dest), "--source", str(source), "--machine-name", "bench"]
        self.log = open(work / f"{name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=self.log)
        self.peak = 0.0

    def status(self) -> dict[str, Any]:
        self.peak = max(self.peak, rss_mb(self.proc.pid))
        return read_status(self.state)

    def wait_idle(self, min_syncs: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st.get("syncs", 0) >= min_syncs and st.get("state") == "idle":
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"service exited: {self.proc.returncode}")
            time.sleep(0.5)
        raise SystemExit("service did not become idle in time")

    def stop(self) -> float:
        self.peak = max(self.peak, rss_mb(self.proc.pid))
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()
        return time.monotonic() - t0


def p3(work: Path, idle: float) -> dict[str, float]:
    data = work / "opencode"
    if not (data / "opencode.db").exists():
        subprocess.run([sys.executable, str(HERE / "gen_db.py"), str(data / "opencode.db"), "-q"], check=True)
    if not (data / "storage").exists():
        subprocess.run([sys.executable, str(HERE / "gen_legacy.py"), str(data)], check=True)
    svc = ServiceProcess(work, data, work / "dest")
    t0 = time.monotonic()
    svc.wait_idle(1, 3600)
    startup = time.monotonic() - t0
    time.sleep(3)  # let the watcher settle after the start-up sync
    syncs0, cpu0 = svc.status()["syncs"], cpu_seconds(svc.proc.pid)
    time.sleep(idle)
    syncs1, cpu1 = svc.status()["syncs"], cpu_seconds(svc.proc.pid)
    rss_idle = rss_mb(svc.proc.pid, "VmRSS")
    stop_s = svc.stop()
    return {
        "startup_sync_s": startup,
        "cpu_s_per_idle_min": (cpu1 - cpu0) * 60 / idle,
        "idle_syncs": syncs1 - syncs0,
        "peak_rss_mb": svc.peak,
        "idle_rss_mb": rss_idle,
        "stop_s": stop_s,
    }


def _backup_sig(path: Path) -> tuple[Any, ...] | None:
    try:
        rows = json.loads(path.read_bytes())["rows"]
    except (OSError, ValueError, KeyError):
        return None
    return (len(rows.get("message", [])), len(rows.get("part", [])), rows["session"][0]["time_updated"])


def _db_sig(db: Path, sid: str) -> tuple[Any, ...]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        nm = con.execute("SELECT count(*) FROM message WHERE session_id=?", (sid,)).fetchone()[0]
        np_ = con.execute("SELECT count(*) FROM part WHERE session_id=?", (sid,)).fetchone()[0]
        t = con.execute("SELECT time_updated FROM session WHERE id=?", (sid,)).fetchone()[0]
        return (nm, np_, t)
    finally:
        con.close()


def p5(work: Path, prompts: int, gap: tuple[float, float]) -> dict[str, float]:
    rng = random.Random(5)
    peer = OpencodePeer(work / "p5-peer").start()
    dest = work / "p5-dest"
    svc = ServiceProcess(work, peer.data_dir, dest)
    latencies: list[float] = []
    try:
        sid = peer.create_session("bench warm-up", prompts=1, todo=False)
        svc.wait_idle(1, 120)
        sessions = [sid]
        for i in range(prompts):
            time.sleep(rng.uniform(*gap) if i % 4 != 3 else 3.0)  # every 4th: right after the last
            if rng.random() < 0.3:
                sessions.append(str(peer.api("POST", "/session", {"title": f"bench {i}"})["id"]))
            sid = sessions[-1] if i % 4 == 3 else rng.choice(sessions)
            t0 = time.monotonic()
            peer.prompt(sid, f"bench prompt {i}")
            peer.wait_settled(sid)
            want = _db_sig(peer.db_path, sid)
            while time.monotonic() - t0 < 120:
                found = list(dest.glob(f"bench/sessions/*/{sid}.json"))
                if found and _backup_sig(found[0]) == want:
                    break
                svc.status()
                time.sleep(0.1)
            latencies.append(time.monotonic() - t0)
            print(f"  P5 prompt {i}: {latencies[-1]:.1f} s", flush=True)
    finally:
        svc.stop()
        peer.stop()
    return {
        "latency_median_s": statistics.median(latencies),
        "latency_max_s": max(latencies),
        "prompts": len(latencies),
        "peak_rss_mb": svc.peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocb-svc"))
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--p5-prompts", type=int, default=8)
    ap.add_argument("--p5-gap", type=float, nargs=2, default=(20.0, 50.0))
    ap.add_argument("--skip", choices=["p3", "p5"], action="append", default=[])
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    peak = 0.0
    if "p3" not in args.skip:
        r = p3(args.work, args.idle)
        peak = max(peak, r["peak_rss_mb"])
        print(
            f"P3 start-up sync {r['startup_sync_s']:.1f} s; idle: {r['cpu_s_per_idle_min']:.3f} CPU s/min "
            f"(target <= 0.1), {r['idle_syncs']} sync(s) (target 0); idle RSS {r['idle_rss_mb']:.1f} MB; "
            f"SIGTERM -> exit {r['stop_s']:.2f} s; peak RSS {r['peak_rss_mb']:.1f} MB"
        )
    if "p5" not in args.skip:
        r = p5(args.work, args.p5_prompts, tuple(args.p5_gap))
        peak = max(peak, r["peak_rss_mb"])
        print(
            f"P5 change -> in backup: median {r['latency_median_s']:.1f} s (target <= 6), "
            f"max {r['latency_max_s']:.1f} s (target <= 35) over {r['prompts']} prompts; "
            f"peak RSS {r['peak_rss_mb']:.1f} MB"
        )
    print(f"P4 peak RSS {peak:.1f} MB (target <= 80)")


if __name__ == "__main__":
    main()
