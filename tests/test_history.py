"""When each copy of a session was backed up, worked out from the stamps of versions/ (thinning leaves
gaps), which copy a time names, and how a copy reads: syncs with a clock the test moves, no opencode."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.backup import asof, lookup, scan
from app.backup.guard import stamp
from app.backup.history import Kind, NoCopyThen, add_snapshots, history, version_counts
from app.backup.sync import SyncOptions, run_sync
from app.errors import UsageError
from app.opencode import conversation as cv
from tests import dbfactory as f
from tests.backups import Env, count_reads, make_env, run_cli

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.fixture
def chain(tmp_path: Path) -> Env:
    """ses_a backed up at 9:00, 10:00 and 11:00, each time with one more message written 5 min before."""
    env = make_env(tmp_path, "m1")
    conn = f.create_db(env.db)
    f.add_session(
        conn, "ses_a", title="chain", time_updated=ms(T0 - timedelta(minutes=5)), payload="first words"
    )
    f.add_session(conn, "ses_b", time_updated=ms(T0 - timedelta(hours=1)))
    clock = Clock()
    ctx = env.context(clock=clock)
    assert run_sync(ctx, SyncOptions(snapshot=True)).ok
    for hour in (1, 2):
        f.add_message(conn, "ses_a", f"message of hour {hour}")
        conn.execute(
            "UPDATE session SET time_updated = ? WHERE id = 'ses_a'",
            (ms(T0 + timedelta(hours=hour, minutes=-5)),),
        )
        conn.commit()
        clock.now = T0 + timedelta(hours=hour)
        assert run_sync(ctx, SyncOptions(allow_deletions=True)).ok
    conn.close()
    return env


def work_of(env: Env) -> Path:
    """Where a test of the chain lets history and restores work (this install's own folder)."""
    return env.app / "work"


def test_each_copy_is_dated_by_the_sync_that_wrote_it_and_the_first_by_a_range(
    chain: Env,
) -> None:
    machine, work = chain.machine, work_of(chain)
    h = history(machine, "ses_a", work)
    assert [c.number for c in h.copies] == [1, 2, 3] and h.title == "chain"
    current, middle, first = h.copies
    assert (
        current.kind is Kind.CURRENT
        and current.backed_up == T0 + timedelta(hours=2)
        and current.messages == 4
    )
    assert middle.kind is Kind.VERSION and middle.backed_up == T0 + timedelta(hours=1)
    assert middle.until == T0 + timedelta(hours=2) and middle.rel.startswith(
        f"versions/{stamp(T0 + timedelta(hours=2))}/"
    )
    # the first sync replaced nothing: no stamp says when it ran, only its last change and its replacement
    assert (
        first.backed_up is None
        and first.after == T0 - timedelta(minutes=5)
        and first.until == T0 + timedelta(hours=1)
    )
    assert first.when().startswith("after ") and ", by " in first.when()
    # the snapshot the first sync took holds the first copy: named on it, not listed apart
    assert [a.split("/")[0] for a in first.also_in] == ["snapshots"]
    assert h.as_of(T0 + timedelta(hours=1, minutes=30)) is middle
    assert h.as_of(T0 + timedelta(hours=5)) is current
    assert h.as_of(T0) is first
    with pytest.raises(NoCopyThen, match="holds no copy of ses_a from"):
        h.as_of(T0 - timedelta(hours=1))
    assert version_counts(machine) == {"ses_a": 3, "ses_b": 1}


def test_a_thinned_copy_leaves_no_answer_for_the_time_it_was_the_newest_never_a_wrong_one(
    chain: Env,
) -> None:
    machine, work = chain.machine, work_of(chain)
    shutil.rmtree(machine / "versions" / stamp(T0 + timedelta(hours=2)))  # what thinning does to 10:00's copy
    current, first = history(machine, "ses_a", work).copies
    # its last change (10:55) is after the copy before it was replaced (10:00): copies in between are gone
    assert current.backed_up is None and current.after == T0 + timedelta(hours=1, minutes=55)
    with pytest.raises(NoCopyThen, match="copies in between were thinned"):
        history(machine, "ses_a", work).as_of(T0 + timedelta(hours=1, minutes=30))
    assert history(machine, "ses_a", work).as_of(T0 + timedelta(hours=2)) == current
    assert first.until == T0 + timedelta(hours=1)


def test_a_time_after_a_deletion_was_backed_up_says_it_was_deleted_and_which_version_is_its_last(
    chain: Env,
) -> None:
    machine, work = chain.machine, work_of(chain)
    clock = Clock()
    clock.now = T0 + timedelta(hours=3)
    f.delete_session(chain.db, "ses_a")
    assert run_sync(chain.context(clock=clock), SyncOptions(allow_deletions=True)).ok
    h = history(machine, "ses_a", work)
    assert h.copies[0].until == T0 + timedelta(hours=3)
    assert h.as_of(T0 + timedelta(hours=2, minutes=30)) == h.copies[0]  # before the deletion: its last copy
    with pytest.raises(NoCopyThen) as told:
        h.as_of(T0 + timedelta(hours=4))
    assert "was deleted" in str(told.value) and "its last copy is version 1 (--version 1)" in str(told.value)
    assert "thinned" not in str(told.value)


def test_a_copy_only_a_snapshot_holds_is_a_version_that_reads_and_restores(chain: Env) -> None:
    machine, work = chain.machine, work_of(chain)
    shutil.rmtree(machine / "versions" / stamp(T0 + timedelta(hours=1)))  # the 9:00 file copy, thinned
    h = history(machine, "ses_a", work)
    snap = h.copies[-1]
    assert snap.kind is Kind.SNAPSHOT and snap.backed_up == T0 and snap.messages == 2 and snap.size is None
    doc = asof.read_copy(h, snap, work)
    assert [m.role for m in cv.messages(doc.rows, doc.store)] == ["user", "assistant"]
    path = asof.restore_file(h, snap, work)
    assert path.is_relative_to(work) and json.loads(path.read_bytes())["session_id"] == "ses_a"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("thinned", [False, True])
def test_snapshots_added_to_the_files_read_first_give_the_history_read_at_once_reading_no_file_again(
    chain: Env, thinned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine, work = chain.machine, work_of(chain)
    if thinned:  # the 9:00 file copy gone: the snapshot's copy is listed apart, not named on a file's
        shutil.rmtree(machine / "versions" / stamp(T0 + timedelta(hours=1)))
    whole = history(machine, "ses_a", work)
    files = history(machine, "ses_a", work, with_snapshots=False)
    assert all(c.kind is not Kind.SNAPSHOT and not c.also_in for c in files.copies)
    read = count_reads(monkeypatch)
    added = add_snapshots(files, work)
    assert read == []
    assert added == whole and added.title == whole.title == "chain"
    if thinned:
        assert [c.kind for c in added.copies] == [Kind.CURRENT, Kind.VERSION, Kind.SNAPSHOT]
    else:
        assert [c.number for c in added.copies if c.also_in] == [3]
    assert add_snapshots(added, work) == whole  # looked into once only


@pytest.mark.parametrize(
    ("text", "local", "expected"),
    [
        ("2026-11-30", True, datetime(2026, 11, 30, 23, 59, 59, 999_999)),
        ("20261130", True, datetime(2026, 11, 30, 23, 59, 59, 999_999)),
        ("2026-11-30T14:05", True, datetime(2026, 11, 30, 14, 5)),
        ("2026-11-30 14:05:10", True, datetime(2026, 11, 30, 14, 5, 10)),
        ("2026-11-30T13:05Z", False, datetime(2026, 11, 30, 13, 5, tzinfo=UTC)),
        ("2026-11-30T15:05+02:00", False, datetime(2026, 11, 30, 13, 5, tzinfo=UTC)),
    ],
)
def test_a_time_is_iso_8601_local_unless_it_says_otherwise_and_a_date_is_its_end(
    text: str, local: bool, expected: datetime
) -> None:
    want = expected.astimezone() if local else expected
    assert asof.parse_time(text) == want and asof.parse_time(text).tzinfo is not None


@pytest.mark.parametrize("bad", ["yesterday", "30/11/2026", "2026-13-01", "", "2026-11-30T25:00"])
def test_a_time_that_is_not_one_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="not a time"):
        asof.parse_time(bad)


@pytest.mark.parametrize("far", ["9999-12-31", "0001-01-01T00:00", "9999-12-31T23:59-05:00"])
def test_a_time_out_of_range_is_one_line_whatever_the_time_zone(chain: Env, far: str) -> None:
    """West of UTC the end of 9999 is past what a datetime holds, and year 1 local is before it."""
    for args in (("show", "ses_a", "--at", far), ("restore", "ses_a", "--at", far, "--yes")):
        res = run_cli(chain.dest, "m1", chain.data, *args, env={"TZ": "America/New_York"})
        assert res.returncode == 2 and "out of range" in res.stderr, (args, res.stderr)
        assert res.stderr.count("\n") == 1, (args, res.stderr)


def test_the_command_line_says_no_time_and_no_version_in_one_line_and_changes_nothing(
    chain: Env,
) -> None:
    backup, data = chain.dest, chain.data
    before = chain.db.read_bytes()
    for args, code, said in (
        (("restore", "ses_a", "--at", "soon", "--yes"), 2, "not a time"),
        (("restore", "ses_a", "ses_b", "--version", "1", "--yes"), 2, "exactly one SESSION_ID"),
        (("restore", "ses_a", "--version", "9", "--yes"), 1, "has 3 version(s) in the backup; there is no 9"),
        (("restore", "ses_a", "--at", "2020-01-01", "--yes"), 1, "holds no copy of ses_a from"),
        (("show", "ses_zzz"), 2, "no backed-up session in any machine folder"),
        (("history", "ses_"), 2, "is the start of 2 sessions' ids"),
    ):
        res = run_cli(backup, "m1", data, *args)
        assert res.returncode == code and said in res.stderr and res.stderr.count("\n") == 1, (
            args,
            res.stderr,
        )
    assert chain.db.read_bytes() == before


def test_a_backup_folder_that_is_not_there_is_said_so_not_that_no_session_has_the_id(
    tmp_path: Path,
) -> None:
    """A drive not mounted: show, history and restore --at say the folder is not reachable (exit 1)."""
    data = make_env(tmp_path).data
    for args in (
        ("show", "ses_a"),
        ("history", "ses_a"),
        ("restore", "ses_a", "--at", "2026-11-30", "--yes"),
    ):
        res = run_cli(tmp_path / "not-mounted", "m1", data, *args)
        assert res.returncode == 1 and "backup folder not reachable" in res.stderr, (args, res.stderr)
        assert res.stderr.count("\n") == 1, (args, res.stderr)


def test_an_exact_id_of_a_current_session_is_found_without_looking_through_versions(
    chain: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """versions/ of a long-used backup holds thousands of files: an id in sessions/ needs none of them."""
    looked: list[Path] = []
    last_copies = scan.last_copies
    monkeypatch.setattr(scan, "last_copies", lambda d, *a: looked.append(d) or last_copies(d, *a))
    assert lookup.find_session(chain.dest, "m1", "ses_a").session_id == "ses_a" and looked == []
    f.delete_session(chain.db, "ses_b")
    assert run_sync(
        chain.context(clock=lambda: T0 + timedelta(hours=3)), SyncOptions(allow_deletions=True)
    ).ok
    assert lookup.find_session(chain.dest, "m1", "ses_b").session_id == "ses_b" and looked  # deleted: looked
