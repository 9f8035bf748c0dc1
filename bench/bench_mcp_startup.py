"""How long opencode waits for the agent tools: from spawning ``opencode-backup mcp`` to its answer to
``initialize``, side by side with spawning ``python -c pass`` (the floor any Python server pays) in the
same run, interleaved so both see the same machine load.

opencode starts the server on the first request for a project and waits for it before its first LLM
request, so this time is added to the user's first answer. The target is under 150 ms on a 2-core
machine; no target is asserted here (these machines are shared and noisy): medians and the ratio are
printed. Also times one ``tools/call`` of ``status`` after start-up (the engine's import is paid there).

    .venv/bin/python bench/bench_mcp_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.opencode.agent_config import mcp_command  # noqa: E402

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}
STATUS = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "status", "arguments": {}}}


def time_initialize(cmd: list[str], env: dict[str, str], call_status: bool) -> tuple[float, float | None]:
    """Seconds from spawn to the initialize answer, and (optionally) to a status call's answer after it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(INIT).encode() + b"\n")
    proc.stdin.flush()
    answer = json.loads(proc.stdout.readline())
    startup = time.perf_counter() - t0
    assert answer.get("id") == 1 and "result" in answer, answer
    status = None
    if call_status:
        t1 = time.perf_counter()
        proc.stdin.write(json.dumps(STATUS).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()).get("id") == 2
        status = time.perf_counter() - t1
    proc.stdin.close()
    proc.wait(30)
    proc.stdout.close()
    return startup, status


def time_pass(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="runs of each (default 15)")
    args = ap.parse_args()
    cmd = mcp_command()  # exactly what 'agent-tools enable' registers
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE", "XDG_"))}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"))
        env["OPENCODE_BACKUP_PATH"] = str(home / "backup")
        (home / "backup").mkdir()
        time_initialize(cmd, env, call_status=False)  # warm the OS file cache once, as a login would
        time_pass(env)
        starts, passes, calls = [], [], []
        for _ in range(args.runs):
            passes.append(time_pass(env))
            start, call = time_initialize(cmd, env, call_status=True)
            starts.append(start)
            calls.append(call or 0.0)
    med_start, med_pass = statistics.median(starts), statistics.median(passes)
    ms = 1000
    print(f"server: {' '.join(cmd)}")
    print(f"runs: {args.runs} of each, interleaved")
    print(f"python -c pass                  median {med_pass * ms:6.1f} ms  (min {min(passes) * ms:.1f})")
    print(
        f"mcp spawn -> initialize answer  median {med_start * ms:6.1f} ms  "
        f"(min {min(starts) * ms:.1f}, max {max(starts) * ms:.1f})"
    )
    print(f"first status call after that    median {statistics.median(calls) * ms:6.1f} ms  (engine import)")
    print(f"ratio initialize / python -c pass: {med_start / med_pass:.2f}")


if __name__ == "__main__":
    main()
