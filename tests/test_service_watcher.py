"""The watcher turns real file-system changes in opencode's data dir into Changed events."""

from __future__ import annotations

import os
import queue
import sys
import time
from pathlib import Path

import pytest

from app.service.events import Changed, Event
from app.service.watcher import Watcher, classify

DATA = Path("/d/opencode")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/d/opencode/opencode.db", Changed()),
        ("/d/opencode/opencode.db-wal", Changed()),
        ("/d/opencode/opencode-beta.db", Changed()),
        ("/d/opencode/storage/message/s/m.json", Changed(paths=("storage/message/s/m.json",))),
        ("/d/opencode/opencode.db-shm", None),  # readers touch it, opencode's data is not in it
        ("/d/opencode/log/2026.log", None),
        ("/d/opencode/snapshot/abc/objects/x", None),
        ("/d/opencode/bin/rg", None),
        ("/d/opencode/tool-output/x.txt", None),
        ("/d/opencode/auth.json", None),
        ("/d/elsewhere/opencode.db", None),
    ],
)
def test_only_the_database_and_storage_are_changes(path: str, expected: Changed | None) -> None:
    assert classify(DATA, path) == expected


class Collector:
    def __init__(self) -> None:
        self.q: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def wait_for(self, pred: object, timeout: float = 10.0) -> list[Event]:
        """Collect events until one satisfies ``pred``; fail after ``timeout``."""
        seen: list[Event] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(e)
            if pred(e):  # type: ignore[operator]
                return seen
        raise AssertionError(f"expected event never came; saw {seen[:20]}")

    def drain(self, quiet: float = 0.5) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                out.append(self.q.get(timeout=quiet))
            except queue.Empty:
                return out


def test_database_writes_and_storage_files_are_reported_and_noise_is_not(tmp_path: Path) -> None:
    data = tmp_path / "opencode"
    (data / "storage" / "message" / "ses_a").mkdir(parents=True)
    (data / "log").mkdir()
    c = Collector()
    w = Watcher(data, c.q.put)
    w.start()
    try:
        time.sleep(0.3)
        (data / "log" / "x.log").write_text("noise")
        (data / "opencode.db-shm").write_bytes(b"noise")
        (data / "auth.json").write_text("{}")
        assert not [e for e in c.drain() if e != Changed(appeared=True)]
        (data / "opencode.db-wal").write_bytes(b"x")
        c.wait_for(lambda e: e == Changed())
        (data / "storage" / "message" / "ses_a" / "m1.json").write_text("{}")
        c.wait_for(lambda e: e == Changed(paths=("storage/message/ses_a/m1.json",)))
    finally:
        w.stop()


def test_a_data_dir_that_does_not_exist_yet_is_watched_from_its_parent(tmp_path: Path) -> None:
    data = tmp_path / "share" / "opencode"
    c = Collector()
    w = Watcher(data, c.q.put)
    w.start()
    try:
        time.sleep(0.3)
        data.mkdir(parents=True)
        c.wait_for(lambda e: isinstance(e, Changed) and e.appeared)
        time.sleep(0.3)
        (data / "opencode.db").write_bytes(b"x")
        c.wait_for(lambda e: e == Changed())
        (data / "storage" / "session").mkdir(parents=True)
        (data / "storage" / "session" / "s.json").write_text("{}")  # before storage/ is watched, maybe
        # storage/ appearing asks for a full walk: what was written before its watch is found at once
        c.wait_for(lambda e: e == Changed(appeared=True))
        (data / "storage" / "session" / "t.json").write_text("{}")
        c.wait_for(lambda e: e == Changed(paths=("storage/session/t.json",)))
    finally:
        w.stop()


def test_storage_appearing_inside_a_watched_data_dir_is_announced(tmp_path: Path) -> None:
    data = tmp_path / "opencode"
    data.mkdir()
    c = Collector()
    w = Watcher(data, c.q.put)
    w.start()
    try:
        time.sleep(0.3)
        c.drain()
        (data / "storage" / "message" / "ses_a").mkdir(parents=True)
        (data / "storage" / "message" / "ses_a" / "m.json").write_text("{}")
        c.wait_for(lambda e: e == Changed(appeared=True))
    finally:
        w.stop()


def _inotify_watches() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/self/fdinfo/{fd}") as f:
                    n += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            pass
    return n


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts inotify watches")
def test_events_deep_in_a_legacy_tree_of_10000_folders_still_arrive(tmp_path: Path) -> None:
    """watchdog's default mask overflows the inotify queue on its own scan of a big tree and then
    delivers nothing (the 7.1.0 trap); our event filter keeps the events coming."""
    data = tmp_path / "opencode"
    dirs = []
    for i in range(10):
        for j in range(1000):
            d = data / "storage" / "part" / f"msg_{i:02d}_{j:04d}"
            d.mkdir(parents=True)
            dirs.append(d)
    (dirs[0] / "prt_0.json").write_text("{}")
    c = Collector()
    base = _inotify_watches()
    w = Watcher(data, c.q.put)
    w.start()
    try:
        deadline = time.monotonic() + 60
        while _inotify_watches() - base < len(dirs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _inotify_watches() - base >= len(dirs)
        deep = dirs[-1] / "prt_new.json"
        deep.write_text('{"id": "prt_new"}')
        rel = deep.relative_to(data).as_posix()
        c.wait_for(lambda e: isinstance(e, Changed) and rel in e.paths, timeout=15)
        fresh = dirs[5000] / "sub"
        fresh.mkdir()
        time.sleep(0.3)
        (fresh / "inner.json").write_text("{}")
        rel2 = (fresh / "inner.json").relative_to(data).as_posix()
        c.wait_for(lambda e: isinstance(e, Changed) and rel2 in e.paths, timeout=15)
    finally:
        w.stop()


def test_a_data_dir_made_with_its_parents_in_one_go_is_armed_before_appeared_is_posted(
    tmp_path: Path,
) -> None:
    """``mkdir -p`` makes two levels faster than a watch moves down one: the watcher must look again,
    or it says the data dir appeared while still watching its parent and misses every write."""
    for i in range(25):
        data = tmp_path / f"round{i}" / "share" / "opencode"
        c = Collector()
        w = Watcher(data, c.q.put)
        w.start()
        try:
            data.mkdir(parents=True)
            c.wait_for(lambda e: isinstance(e, Changed) and e.appeared)
            (data / "opencode.db").write_bytes(b"x")
            c.wait_for(lambda e: e == Changed(), timeout=5.0)
        finally:
            w.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_watch_whose_reader_died_is_started_again_and_a_full_walk_asked_for(tmp_path: Path) -> None:
    """An exception in watchdog's reader thread (or in our handler) ends that thread, and the watch goes
    silent; the supervisor notices, watches again, and asks for a full walk for what it missed."""
    data = tmp_path / "opencode"
    data.mkdir()
    c = Collector()
    w = Watcher(data, c.q.put, supervise_every=0.1)
    w.start()
    try:
        time.sleep(0.3)
        assert w.healthy()
        (emitter,) = list(w._observer.emitters)

        def broken(timeout: float) -> None:
            raise RuntimeError("the reader broke")

        emitter.queue_events = broken  # type: ignore[method-assign]
        (data / "auth.json").write_text("{}")  # wakes the reader: its next round calls it, and it dies
        emitter.join(timeout=5)
        assert not emitter.is_alive()
        c.wait_for(lambda e: e == Changed(appeared=True))
        assert w.healthy()
        (data / "opencode.db-wal").write_bytes(b"x")  # heard again
        c.wait_for(lambda e: e == Changed())
    finally:
        w.stop()
    assert w._supervisor is not None and not w._supervisor.is_alive()
