"""A backup to an rclone remote, each figure side by side with its reference in the same run.

    python bench/bench_remote.py [--scale 1.0] [--work /tmp/ocb-bench] [--server sftp|webdav] [--runs 21]
                                 [--rounds 3]

rclone's own server (``rclone serve sftp`` or ``webdav``) runs on 127.0.0.1 over a folder of ``--work``,
with a config of its own (the user's is never read), so the network is as fast as it gets and what is
measured is our work around rclone, and rclone's start-up.

start-up  ``rclone version`` and ``rclone lsjson`` of the remote's root (a connection), median: what each
          rclone command costs before it does anything.
first     the first sync of the heavy user's database (``gen_db.py --scale``) to the remote: the local
          sync into the mirror and the upload after it, timed apart, median of ``--rounds`` (each into
          a folder of its own, from a HOME of its own). Reference, after each: ``rclone copy`` of the
          finished mirror's machine folder into an empty folder of the same server. Target: the upload
          <= 1.2x the reference.
P1        one new message, synced as the warm service does it (the same context: its manifest and ledger
          kept), median of ``--runs``: the local part (the P1 of bench_sync.py, on this data) and the upload
          after it, timed apart. Reference for the upload: one ``rclone copyto`` for each file that upload
          put on the remote (the session file, its old copy in versions/, manifest.json), in the same run,
          one after the other. Target: the upload <= 1.5x the reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_sync import add_message, bench_session, drop_bench_messages  # noqa: E402

PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(kind: str, root: Path, work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """rclone's server over ``root``, and a config naming it ``bench:``."""
    port = free_port()
    env = {**os.environ, "RCLONE_CACHE_DIR": str(work / "rclone-cache"), "RCLONE_CONFIG": os.devnull}
    proc = subprocess.Popen(
        [
            "rclone",
            "serve",
            kind,
            str(root),
            "--addr",
            f"127.0.0.1:{port}",
            "--user",
            "u",
            "--pass",
            PASSWORD,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True)
    secret = obscured.stdout.strip()
    if kind == "sftp":
        text = f"[bench]\ntype = sftp\nhost = 127.0.0.1\nport = {port}\nuser = u\npass = {secret}\n"
    else:
        url = f"http://127.0.0.1:{port}/"
        text = f"[bench]\ntype = webdav\nurl = {url}\nvendor = other\nuser = u\npass = {secret}\n"
    config = work / "rclone.conf"
    config.write_text(text)
    return proc, config


def median_run(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Timed:
    """Wraps RemoteSite.push to time each upload and keep what it put on the remote."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.put: list[list[str]] = []

    def install(self) -> None:
        from app.backup.remote import diff, site

        real_push, real_compare = site.RemoteSite.push, diff.compare
        timed = self

        def compare(*args: Any, **kwargs: Any) -> Any:
            up = real_compare(*args, **kwargs)
            timed.put.append([*up.new, *up.replaced, *(["manifest.json"] if up.manifest else [])])
            return up

        def push(self: Any, *args: Any, **kwargs: Any) -> int:
            t0 = time.perf_counter()
            try:
                return int(real_push(self, *args, **kwargs))
            finally:
                timed.seconds.append(time.perf_counter() - t0)

        site.compare = compare  # type: ignore[attr-defined]
        site.RemoteSite.push = push  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocb-bench"))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--server", choices=("sftp", "webdav"), default="sftp")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = args.work / f"remote-{args.server}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "served").mkdir(parents=True)
    home = work / "home"
    for var, sub in (("HOME", ""), ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state"),
                     ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")):  # fmt: skip
        os.environ[var] = str(home / sub)
    data = args.work / "p1" / "opencode"  # bench_sync.py's P1 data, made once
    db = data / "opencode.db"
    if not db.exists():
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(HERE / "gen_db.py"), str(db), "--scale", str(args.scale), "-q"], check=True
        )
    proc, config = serve(args.server, work / "served", work)
    os.environ["RCLONE_CONFIG"] = str(config)
    try:
        run(args, work, data, db)
    finally:
        proc.terminate()
        proc.wait()


def run(args: argparse.Namespace, work: Path, data: Path, db: Path) -> None:
    from app import config, wiring
    from app.backup.sync import SyncOptions, run_sync

    version = median_run(["rclone", "version"], 11)
    connect = median_run(["rclone", "lsjson", "bench:"], 11)
    print(f"rclone start-up: 'rclone version' {version * 1e3:.0f} ms,", end=" ")
    print(f"'rclone lsjson bench:' {connect * 1e3:.0f} ms")

    timed = Timed()
    timed.install()
    sid_file = args.work / "p1" / "bench-session-id"
    if sid_file.exists():
        drop_bench_messages(db, sid_file.read_text().strip())
    totals, uploads, references = [], [], []
    for n in range(args.rounds):  # alternated, so the machine's drift hits both alike
        home = work / f"home-{n}"
        for var, sub in (("HOME", ""), ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state"),
                         ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")):  # fmt: skip
            os.environ[var] = str(home / sub)
        settings = config.load(
            {"backupPath": f"rclone:bench:first-{n}", "source": str(data), "machineName": "bench"}
        )
        ctx = wiring.context_for(settings, resident=True)  # as the live service runs it
        t0 = time.perf_counter()
        first = run_sync(ctx)
        totals.append(time.perf_counter() - t0)
        assert first.ok, first.error
        uploads.append(timed.seconds[-1])
        os.sync()
        t0 = time.perf_counter()
        subprocess.run(["rclone", "copy", str(ctx.machine_dir), f"bench:reference-{n}/bench"], check=True)
        references.append(time.perf_counter() - t0)
        if n < args.rounds - 1:
            assert ctx.remote is not None
            ctx.remote.release()
    mb = sum(p.stat().st_size for p in ctx.machine_dir.rglob("*") if p.is_file()) / 1e6
    upload, reference = statistics.median(uploads), statistics.median(references)
    print(
        f"first sync ({db.stat().st_size / 1e6:.0f} MB database, {mb:.0f} MB backup), median of "
        f"{args.rounds}: {statistics.median(totals):.2f} s, of which the upload {upload:.2f} s; 'rclone "
        f"copy' of the finished folder {reference:.2f} s: ratio {upload / reference:.2f} (target <= 1.2)"
    )

    sid = (
        sid_file.read_text().strip()
        if sid_file.exists()
        else bench_session(args.work / "p1", ctx.machine_dir / "sessions")
    )
    local, uploads, refs, ratios = [], [], [], []
    for n in range(args.runs):
        add_message(db, sid, n)
        t0 = time.perf_counter()
        result = run_sync(dataclasses.replace(ctx), SyncOptions(dirty=()))
        elapsed = time.perf_counter() - t0
        assert result.ok and result.sessions_exported == 1, result
        upload = timed.seconds[-1]
        put = timed.put[-1]
        t0 = time.perf_counter()
        for rel in put:
            subprocess.run(["rclone", "copyto", str(ctx.machine_dir / rel), f"bench:reference-p1/{rel}"],
                           check=True, capture_output=True)  # fmt: skip
        ref = time.perf_counter() - t0
        local.append(elapsed - upload)
        uploads.append(upload)
        refs.append(ref)
        ratios.append(upload / ref)
    print(
        f"P1 on the remote, median of {args.runs}: {statistics.median(local) * 1e3:.1f} ms local + "
        f"{statistics.median(uploads) * 1e3:.0f} ms upload ({len(timed.put[-1])} files); one 'rclone "
        f"copyto' each of the same files {statistics.median(refs) * 1e3:.0f} ms: ratio "
        f"{statistics.median(ratios):.2f} (target <= 1.5)"
    )
    assert ctx.remote is not None
    ctx.remote.release()


if __name__ == "__main__":
    main()
