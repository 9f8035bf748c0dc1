"""The search index on its own: private, in the cache folder, rebuilt when lost or damaged, brought up to
date by reading only what changed, and no query is ever a syntax error. No opencode (tests/dbfactory.py)."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.backup import search as sr
from app.backup import search_index as si
from app.backup import search_refresh
from app.backup.result import Outcome, SyncResult
from app.backup.sync import SyncOptions, run_sync
from app.service.runtime import Runtime
from app.service.service import Timing
from app.service.worker import Job, Worker
from tests import dbfactory as f
from tests.backups import Env, make_env, run_cli

QUERIES = ['"', '""', 'a"b', "NEAR(a b)", "a OR b", "-a", "*", "a*", "(", ")", "AND", "title:x", "^a", "'",
           "\\", "a:b", "{a} [b]", "+a", "a NOT b", 'NEAR("x" "y", 2)', "COLUMN:", "¿qué?", "日本語",
           "a\x00b", "\x1b[31m"]  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path, "m1")
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a", title="Fix the login bug", payload="retry the token refresh")
    f.add_session(conn, "ses_b", title="Write docs", payload="sprockets and widgets")
    conn.close()
    assert run_sync(env.context()).ok
    return env


def ids(hits: list[si.Hit]) -> list[str]:
    return [h.session_id for h in hits]


def test_the_index_is_private_in_the_cache_folder_and_never_in_the_backup(
    env: Env, isolated_home: Path
) -> None:
    before = sorted(p.relative_to(env.dest) for p in env.dest.rglob("*"))
    hits, skipped = sr.search(env.dest, "login", 10)
    assert ids(hits) == ["ses_a"] and skipped == []
    path = si.index_path(env.dest)
    assert path.is_relative_to(isolated_home / ".cache" / "opencode-session-backup" / "search")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with si.open_index(env.dest):  # its log exists while it is open
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    assert sorted(p.relative_to(env.dest) for p in env.dest.rglob("*")) == before


@pytest.mark.parametrize("query", QUERIES)
def test_no_query_is_a_syntax_error(env: Env, query: str) -> None:
    try:
        hits, _skipped = sr.search(env.dest, query, 10)
    except si.NoWords:
        return  # nothing in it to look for: a usage error with one line, not a crash
    assert isinstance(hits, list)


def test_every_word_must_occur_in_any_case_and_the_snippet_marks_them(env: Env) -> None:
    assert ids(sr.search(env.dest, "TOKEN Refresh", 10)[0]) == ["ses_a"]
    assert ids(sr.search(env.dest, "token sprockets", 10)[0]) == []
    [hit] = sr.search(env.dest, "widgets", 10)[0]
    assert "**widgets**" in hit.snippet and hit.machine == "m1" and hit.in_backup
    assert si.match_expression('a"b NEAR(') == '"a""b" AND "NEAR("'


def test_a_lost_or_damaged_index_is_built_again(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    sr.search(env.dest, "login", 10)
    path = si.index_path(env.dest)
    si.remove(path)
    assert ids(sr.search(env.dest, "login", 10)[0]) == ["ses_a"]
    path.write_bytes(b"not a database at all" * 100)
    Path(f"{path}-wal").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING):
        assert ids(sr.search(env.dest, "login", 10)[0]) == ["ses_a"]
    assert "building it again" in caplog.text


def test_a_refresh_reads_only_what_a_sync_changed_and_keeps_deleted_sessions(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with si.open_index(env.dest) as index:
        assert search_refresh.refresh(index).read == 2
        assert (
            search_refresh.refresh(index) == search_refresh.Refreshed()
        )  # nothing changed: a stat per project folder
    ctx = env.context()
    conn = f.connect(env.db)
    f.add_message(conn, "ses_b", "a word about gearboxes")
    conn.close()
    assert run_sync(ctx).ok
    with caplog.at_level(logging.DEBUG, logger="app.backup.search"):
        sr.after_sync(env.dest, "m1")  # what the sync command and the service's worker run next
    assert "search index: 1 read, 0 dropped" in caplog.text  # ses_b alone, not ses_a again
    with si.open_index(env.dest) as index:
        assert ids(index.search("gearboxes")) == ["ses_b"]  # there already, without a refresh
        assert search_refresh.refresh(index) == search_refresh.Refreshed()
    f.delete_session(env.db, "ses_a")
    assert run_sync(ctx, SyncOptions(allow_deletions=True)).ok
    with si.open_index(env.dest) as index:
        assert search_refresh.refresh(index).read == 1  # its last copy, now in versions/
        [hit] = index.search("login")
    assert hit.session_id == "ses_a" and not hit.in_backup


def test_a_file_that_cannot_be_read_is_named_not_indexed_and_indexed_once_it_reads(
    env: Env,
) -> None:
    target = next((env.dest / "m1" / "sessions").rglob("ses_b.json"))
    good = target.read_bytes()
    target.write_bytes(good[:50])
    hits, skipped = sr.search(env.dest, "sprockets", 10)
    assert hits == [] and [(m, r) for m, r, _why in skipped] == [
        ("m1", target.relative_to(env.dest / "m1").as_posix())
    ]
    assert "not valid JSON" in skipped[0][2]
    target.write_bytes(good)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    os.utime(target.parent, ns=(target.parent.stat().st_atime_ns, target.parent.stat().st_mtime_ns + 10**9))
    hits, skipped = sr.search(env.dest, "sprockets", 10)
    assert ids(hits) == ["ses_b"] and skipped == []


def test_the_service_worker_updates_the_index_after_posting_the_result() -> None:
    """The index follows the sync off its path: the result is out first, then the index is updated on the
    worker thread, before the next job."""
    order: list[str] = []
    twice = threading.Event()
    result = SyncResult(Outcome.OK, datetime.now(UTC))

    def after(r: SyncResult) -> None:
        order.append("index" if r is result else "?")
        if len(order) == 4:
            twice.set()

    worker = Worker(
        lambda _o, _p: result, lambda e: order.append(type(e).__name__), threading.Event(), after_sync=after
    )
    worker.start()
    worker.submit(Job(1, SyncOptions()))
    worker.submit(Job(2, SyncOptions()))
    assert twice.wait(10)
    worker.stop()
    assert worker.join(10)
    assert order == ["JobDone", "index", "JobDone", "index"]


def test_the_running_service_lets_the_index_follow_its_syncs(env: Env) -> None:
    """The whole Runtime (no watcher): its start-up sync puts a new word in the index, no search needed."""
    sr.search(env.dest, "login", 10)  # the index exists
    conn = f.connect(env.db)
    f.add_message(conn, "ses_b", "a word about gearboxes")
    conn.close()
    rt = Runtime(env.context(), timing=Timing(delay=0.1, interval=60), watch=False, control_poll=0.05)
    rt.start()
    try:
        deadline = time.monotonic() + 10
        while rt.status.syncs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.status.syncs >= 1
        found: list[str] = []
        while not found and time.monotonic() < deadline:  # the worker updates it after posting the result
            with si.open_index(env.dest) as index:
                found = ids(index.search("gearboxes"))  # no refresh: only what the service put there
            time.sleep(0.05)
        assert found == ["ses_b"]
    finally:
        assert rt.stop()


def test_a_sync_never_builds_the_index_the_next_search_does(env: Env) -> None:
    """Building takes seconds on a large backup: never on the service's worker, between two syncs."""
    path = si.index_path(env.dest)
    sr.after_sync(env.dest, "m1")
    assert not path.exists()
    sr.search(env.dest, "login", 10)
    path.write_bytes(b"damaged" * 1000)
    follower = sr.Follower(env.dest, "m1")
    follower.after_sync()  # the damaged index is set up empty again, and left for the next search
    follower.close()
    with si.open_index(env.dest) as index:
        assert index.empty
    assert ids(sr.search(env.dest, "login", 10)[0]) == ["ses_a"]


def test_a_search_that_does_not_refresh_asks_the_index_as_it_is_unless_it_is_empty(env: Env) -> None:
    """What search as you type asks between refreshes: no look through every machine folder."""
    assert ids(sr.search(env.dest, "login", 10, refresh=False)[0]) == ["ses_a"]  # built all the same
    conn = f.connect(env.db)
    f.add_message(conn, "ses_b", "a word about gearboxes")
    conn.close()
    assert run_sync(env.context()).ok  # the index not told (no after_sync)
    assert sr.search(env.dest, "gearboxes", 10, refresh=False)[0] == []
    assert ids(sr.search(env.dest, "gearboxes", 10)[0]) == ["ses_b"]


def test_the_command_searches_on_a_computer_that_has_not_backed_up_yet(env: Env, tmp_path: Path) -> None:
    """A new laptop finds the old one's sessions before its own first backup; a backup folder that is not
    there is one line."""
    res = run_cli(env.dest, "new-laptop", env.data, "search", "sprockets")
    assert res.returncode == 0 and "ses_b" in res.stdout, res.stderr
    res = run_cli(tmp_path / "not-mounted", "new-laptop", env.data, "search", "sprockets")
    assert res.returncode == 1 and "backup folder not reachable" in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr


def test_every_face_shows_when_a_session_was_updated_in_local_minutes() -> None:
    from app.words import minutes

    noon = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)
    assert minutes(noon) == noon.astimezone().strftime("%Y-%m-%d %H:%M") == minutes(noon.replace(tzinfo=None))
    assert minutes(None) == "unknown" and minutes(None, "") == ""


def test_every_sync_in_this_process_lets_the_index_follow(tmp_path: Path) -> None:
    """The sync command's and the agent's: both are wiring.sync_once."""
    from app import config, wiring

    env = make_env(tmp_path, "m1")
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_b", title="Write docs", payload="sprockets and widgets")
    settings = config.load({"backupPath": str(env.dest), "source": str(env.data), "machineName": "m1"})
    assert wiring.sync_once(settings).backed_up
    sr.search(env.dest, "sprockets", 10)  # the index exists
    f.add_message(conn, "ses_b", "a word about gearboxes")
    conn.close()
    assert wiring.sync_once(settings).backed_up
    with si.open_index(env.dest) as index:
        assert ids(index.search("gearboxes")) == ["ses_b"]  # without a refresh
