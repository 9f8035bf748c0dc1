"""The debouncer decides when syncs start; a fake timeline drives it, nothing sleeps."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from app.service.debouncer import Debouncer


def test_a_burst_of_changes_starts_one_sync_delay_after_the_first_change() -> None:
    deb = Debouncer(delay=5, interval=30)
    for t in (100.0, 101.0, 102.5, 104.9):
        deb.changed(t)
    assert deb.due_at() == 105.0  # later changes do not push the sync back
    deb.started(105.0)
    assert deb.due_at() is None and not deb.pending


def test_syncs_are_at_least_min_interval_apart_and_a_trailing_change_is_never_dropped() -> None:
    deb = Debouncer(delay=5, interval=30)
    deb.changed(0.0)
    deb.started(5.0)
    deb.changed(6.0)  # arrives while the sync runs: it may have read the database before this change
    assert deb.due_at() is None  # never two syncs at once
    deb.finished()
    assert deb.due_at() == 35.0  # 30 s after the previous start, not dropped


def test_force_bypasses_delay_and_interval_but_not_a_running_sync() -> None:
    deb = Debouncer(delay=5, interval=30)
    deb.changed(0.0)
    deb.started(5.0)
    deb.force()
    assert deb.due_at() is None
    deb.finished()
    assert deb.due_at() == -math.inf
    assert deb.started(7.0) is True


@dataclass
class _Sync:
    start: float
    end: float
    forced: bool


def _simulate(
    delay: float, interval: float, events: list[tuple[float, bool]], durations: list[float]
) -> tuple[list[_Sync], list[tuple[float, int, float | None]]]:
    """Run the debouncer over a timeline. Returns the syncs and, per change, (time, index of the first
    sync started after it was recorded, end of the sync running when it arrived)."""
    deb = Debouncer(delay, interval)
    syncs: list[_Sync] = []
    changes: list[tuple[float, int, float | None]] = []
    now, i, running_end = 0.0, 0, None
    times = []
    t = 0.0
    for gap, force in events:
        t += gap
        times.append((t, force))
    while i < len(times) or deb.pending or running_end is not None:
        te = times[i][0] if i < len(times) else math.inf
        tf = running_end if running_end is not None else math.inf
        due = deb.due_at()
        td = max(due, now) if due is not None else math.inf
        now = min(te, tf, td)
        if tf == now:
            deb.finished()
            running_end = None
        elif td == now:
            forced = deb.started(now)
            running_end = now + durations[len(syncs) % len(durations)]
            syncs.append(_Sync(now, running_end, forced))
        else:
            if times[i][1]:
                deb.force()
            else:
                deb.changed(now)
                changes.append((now, len(syncs), running_end))
            i += 1
    return syncs, changes


@settings(max_examples=400, deadline=None)
@given(
    delay=st.floats(0, 10),
    interval=st.floats(0, 60),
    events=st.lists(st.tuples(st.floats(0, 90), st.sampled_from([False, False, False, True])), max_size=60),
    durations=st.lists(st.floats(0, 120), min_size=1, max_size=8),
)
def test_every_change_is_covered_in_time_and_unforced_syncs_keep_their_distance(
    delay: float, interval: float, events: list[tuple[float, bool]], durations: list[float]
) -> None:
    syncs, changes = _simulate(delay, interval, events, durations)
    eps = 1e-6
    for t, first_after, running_end in changes:
        assert first_after < len(syncs), "a change was never synced"
        start = syncs[first_after].start
        # the exact bound: max(t + max(delay, interval), end of the sync running at t)
        bound = max(t + max(delay, interval), running_end if running_end is not None else t)
        assert start <= bound + eps
        running = (running_end - t) if running_end is not None else 0.0
        assert start <= t + delay + interval + running + eps  # the looser figure
    for prev, cur in itertools.pairwise(syncs):
        assert cur.start >= prev.end - eps  # one sync at a time
        if not cur.forced:
            assert cur.start - prev.start >= interval - eps
