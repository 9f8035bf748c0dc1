"""kill -9 a sync at random points, over and over: ``verify`` must pass on whatever each kill left (an
interrupted sync is named as such, never reported as damage), and the next sync must succeed
(guarantee 7). tests/test_crash_points.py does the same deterministically, at every boundary."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from app.backup.verify import verify
from tests import dbfactory as f

KILLS = int(os.environ.get("CRASH_KILLS", "50"))


def is_temp(p: Path) -> bool:
    """Names our engines and rsync use while writing; never a final name."""
    return p.name.startswith(".") and (".tmp-" in p.name or p.name.count(".") >= 2)


def check_destination(machine_dir: Path) -> int:
    """Every final file is complete: JSON parses, snapshots decompress, manifest hashes hold."""
    checked = 0
    for p in machine_dir.rglob("*"):
        if not p.is_file() or is_temp(p):
            continue
        checked += 1
        if p.suffix == ".json":
            json.loads(p.read_bytes())
        elif p.name.endswith(".db.zst"):
            with open(p, "rb") as fh:
                data = zstandard.ZstdDecompressor().stream_reader(fh).read()
            assert data.startswith(b"SQLite format 3\x00"), p
    return checked


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["rsync"])
def test_kill_9_at_random_points_never_leaves_a_broken_backup(tmp_path: Path, engine: str) -> None:
    data = tmp_path / "opencode"
    conn = f.create_db(data / "opencode.db")
    for i in range(150):
        f.add_session(conn, f"ses_{i:03d}", messages=6, parts=3, payload="x" * 400)
    legacy = data / "storage" / "message"
    for i in range(300):
        (legacy / f"ses_{i % 30}").mkdir(parents=True, exist_ok=True)
        (legacy / f"ses_{i % 30}" / f"msg_{i}.json").write_text(json.dumps({"id": i, "text": "y" * 200}))
    dest = tmp_path / "backup"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "app",
        "sync",
        "--backup-path",
        str(dest),
        "--source",
        str(data),
        "--machine-name",
        "box",
        "--engine",
        engine,
    ]
    rng = random.Random(7)
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # the first, full sync

    def timed(args: list[str]) -> float:
        f.add_message(conn, "ses_000", "calibration")
        t0 = time.monotonic()
        subprocess.run(args, env=env, check=True, capture_output=True)
        return time.monotonic() - t0

    # how long an uninterrupted sync of each kind takes, so kills land anywhere inside one
    duration = {False: timed(cmd), True: timed([*cmd, "--snapshot"])}
    completed = 0
    for i in range(KILLS):
        f.add_message(conn, f"ses_{rng.randrange(150):03d}", f"change {i}")
        (legacy / "ses_1" / f"msg_{rng.randrange(300)}.json").write_text(json.dumps({"v": i}))
        snapshot = i % 5 == 0
        args = [*cmd, "--snapshot"] if snapshot else cmd
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, duration[snapshot]))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            completed += 1
        proc.wait()
        check_destination(dest / "box")
        report = verify(dest / "box", "box", tmp_path / "verify-work")  # whatever a kill left passes
        assert report.ok, (i, report.problems)
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    verified = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "verify",
            "--backup-path",
            str(dest),
            "--machine-name",
            "box",
        ],
        env=env,
        capture_output=True,
        check=False,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the final state holds the newest content of every session
    live = {r[0]: r[1] for r in conn.execute("SELECT session_id, count(*) FROM message GROUP BY session_id")}
    for sid, count in live.items():
        doc = json.loads((dest / "box" / "sessions" / "proj1" / f"{sid}.json").read_bytes())
        assert len(doc["rows"]["message"]) == count, sid
    assert KILLS - completed >= KILLS // 2, f"only {KILLS - completed} of {KILLS} runs were killed mid-sync"
