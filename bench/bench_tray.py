"""What the tray costs on top of the headless service: idle CPU and memory, side by side in one run.

Both processes watch the same opencode data (a generated database) and back up into their own
folders; the tray app runs on a private test desktop (Xvfb + trayer + dunst, as in the tests).
After both have finished their start-up backup, CPU time and RSS are sampled over the same idle
window. Prints one table and the ratios; no target is asserted (these machines are shared and noisy).
RSS includes shared, file-backed pages (GTK's libraries, icon and font caches); RssAnon is what the
process itself holds.

    .venv/bin/python bench/bench_tray.py [--idle 60] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_service import ServiceProcess, cpu_seconds, rss_mb  # noqa: E402

from tests.desktop import start_desktop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle to measure (default 60)")
    ap.add_argument("--scale", type=float, default=0.05, help="gen_db.py --scale of the database")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tray-") as tmp:
        work = Path(tmp)
        source = work / "opencode"
        source.mkdir()
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "gen_db.py"), str(source / "opencode.db"), "--scale",
             str(args.scale)], check=True, capture_output=True,
        )  # fmt: skip
        (work / "dest-headless").mkdir()
        (work / "dest-tray").mkdir()
        with start_desktop(work) as desk:
            tray_env = {k: desk.env[k] for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE")}
            procs = {
                "headless": ServiceProcess(work, source, work / "dest-headless", name="headless"),
                "tray": ServiceProcess(work, source, work / "dest-tray", tray_env=tray_env, name="tray"),
            }
            try:
                for p in procs.values():
                    p.wait_idle(1, timeout=600)
                time.sleep(5)  # let the start-up settle (GTK, the first refresh)
                cpu0 = {n: cpu_seconds(p.proc.pid) for n, p in procs.items()}
                time.sleep(args.idle)
                cpu = {n: (cpu_seconds(p.proc.pid) - cpu0[n]) * 60 / args.idle for n, p in procs.items()}
                rss = {n: rss_mb(p.proc.pid, "VmRSS") for n, p in procs.items()}
                anon = {n: rss_mb(p.proc.pid, "RssAnon") for n, p in procs.items()}
                peak = {n: rss_mb(p.proc.pid, "VmHWM") for n, p in procs.items()}
                docked = desk.icon_docked()
            finally:
                for p in procs.values():
                    p.stop()
    print(f"idle window {args.idle:.0f} s, database scale {args.scale}; tray icon docked: {docked}")
    print(f"{'':<28}{'headless':>10}{'tray':>10}{'tray/headless':>15}")
    rows = (
        ("CPU s per idle minute", cpu),
        ("RSS now (MB)", rss),
        ("  of it private, RssAnon", anon),
        ("RSS peak (MB)", peak),
    )
    for label, data in rows:
        ratio = data["tray"] / data["headless"] if data["headless"] else float("inf")
        print(f"{label:<28}{data['headless']:>10.3f}{data['tray']:>10.3f}{ratio:>15.2f}")


if __name__ == "__main__":
    main()
