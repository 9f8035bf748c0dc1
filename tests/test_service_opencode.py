"""Real ``opencode serve`` writes sessions for two minutes while the service runs with its default
timing (5 s delay, 30 s interval) and real rsync: every session's final state reaches the backup
within 35 s of its last change, and syncs stay at least 30 s apart."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app import paths
from app.service.runtime import Runtime
from app.service.status import ServiceState, Status
from tests.backups import sync_context
from tests.peer.opencode import OpencodePeer

pytestmark = [pytest.mark.opencode, pytest.mark.slow]

RUN_SECONDS = 120.0
BOUND = 35.0

Sig = tuple[Any, ...]


def backup_signature(doc: dict[str, Any]) -> Sig:
    rows = doc["rows"]
    msgs, parts = rows.get("message", []), rows.get("part", [])
    return (
        len(msgs),
        len(parts),
        max((m["time_updated"] for m in msgs), default=None),
        max((p["time_updated"] for p in parts), default=None),
        rows["session"][0]["time_updated"],
    )


def db_signatures(peer: OpencodePeer) -> dict[str, Sig]:
    con = peer.connect()
    try:
        out = {}
        for sid, t in con.execute("SELECT id, time_updated FROM session").fetchall():
            m = con.execute("SELECT count(*), max(time_updated) FROM message WHERE session_id=?", (sid,))
            nm, tm = m.fetchone()
            p = con.execute("SELECT count(*), max(time_updated) FROM part WHERE session_id=?", (sid,))
            np_, tp = p.fetchone()
            out[sid] = (nm, np_, tm, tp, t)
        return out
    finally:
        con.close()


class BackupWatcher:
    """Polls the backup's session files; remembers when each (session, signature) first appeared."""

    def __init__(self, sessions_dir: Path) -> None:
        self.dir = sessions_dir
        self.first_seen: dict[tuple[str, Sig], float] = {}
        self._mtimes: dict[Path, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="test-backup-poller")

    def _loop(self) -> None:
        while not self.stop.wait(0.25):
            for p in self.dir.glob("*/*.json"):
                try:
                    mt = p.stat().st_mtime_ns
                    if self._mtimes.get(p) == mt:
                        continue
                    doc = json.loads(p.read_bytes())
                except (OSError, ValueError):
                    continue
                self._mtimes[p] = mt
                self.first_seen.setdefault((doc["session_id"], backup_signature(doc)), time.monotonic())


def test_two_minutes_of_real_opencode_writes_are_all_backed_up_within_35_s(
    make_opencode_peer: Callable[[], OpencodePeer], tmp_path: Path
) -> None:
    peer = make_opencode_peer()
    dest = tmp_path / "backup"
    ctx = sync_context(dest, "laptop", peer.data_dir, paths.app_state_dir(), engine="auto")
    sync_starts: list[float] = []
    last_state = [ServiceState.STARTING]

    def on_status(s: Status) -> None:
        if s.state is ServiceState.SYNCING and last_state[0] is not ServiceState.SYNCING:
            sync_starts.append(time.monotonic())
        last_state[0] = s.state

    runtime = Runtime(ctx, listeners=[on_status])  # default timing: 5 s delay, 30 s interval
    poller = BackupWatcher(dest / "laptop" / "sessions")
    last_change: dict[str, float] = {}
    rng = random.Random(4)
    runtime.start()
    poller.thread.start()
    try:
        t_end = time.monotonic() + RUN_SECONDS
        n = 0
        while time.monotonic() < t_end:
            started = time.monotonic()
            if not last_change or rng.random() < 0.3:
                sid = peer.create_session(f"live {n}", prompts=1, todo=False, settle=False)
            else:
                sid = rng.choice(sorted(last_change))
                peer.prompt(sid, f"more {n}")
            peer.wait_settled(sid)
            last_change[sid] = started  # conservative: before the change began
            n += 1
            time.sleep(rng.uniform(0.0, 1.5))
        final = db_signatures(peer)
        deadline = time.monotonic() + BOUND + 5
        while time.monotonic() < deadline:
            if all((sid, final[sid]) in poller.first_seen for sid in last_change):
                break
            time.sleep(0.5)
    finally:
        poller.stop.set()
        poller.thread.join()
        assert runtime.stop()
    assert len(last_change) >= 5 and n >= 40, (len(last_change), n)
    late = {}
    for sid, t in last_change.items():
        seen = poller.first_seen.get((sid, final[sid]))
        if seen is None or seen - t > BOUND:
            late[sid] = None if seen is None else round(seen - t, 1)
    assert not late, f"sessions not in the backup within {BOUND} s of their last change: {late}"
    gaps = [b - a for a, b in itertools.pairwise(sync_starts)]
    assert len(sync_starts) >= 4 and min(gaps) >= 29.9, gaps
