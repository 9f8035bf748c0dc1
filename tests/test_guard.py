"""The mass-deletion guard and the Time-Machine-style thinning of versions/, as pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.backup.guard import check_mass_deletion, keep_decision, parse_stamp, stamp

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_guard_trips_only_when_more_than_half_is_lost() -> None:
    assert not check_mass_deletion(10, 5).tripped
    assert check_mass_deletion(10, 6).tripped
    assert check_mass_deletion(1800, 1800).tripped
    assert not check_mass_deletion(2, 2).tripped  # too few to call it a mass deletion; versions/ keeps them
    assert "1800" in check_mass_deletion(1800, 1800).reason


def test_stamps_sort_in_time_order_and_round_trip() -> None:
    a, b = NOW, NOW + timedelta(milliseconds=1)
    assert stamp(a) < stamp(b)
    assert parse_stamp(stamp(a)) == a
    assert ":" not in stamp(a)  # valid file name on Windows


def test_a_file_rewritten_every_30_seconds_for_a_month_keeps_one_copy_per_hour_then_per_day() -> None:
    versions = [(NOW - timedelta(seconds=30 * i), 1000) for i in range(0, 2 * 60 * 24 * 40)]
    keep = keep_decision(versions, NOW, keep_days=30, live_size=1000)
    kept = [w for (w, _s), k in zip(versions, keep, strict=True) if k]
    assert 24 + 28 <= len(kept) <= 24 + 31
    assert all(NOW - w < timedelta(days=30) for w in kept)


def test_the_last_copy_of_a_deleted_file_is_kept_however_old() -> None:
    versions = [(NOW - timedelta(days=400), 10), (NOW - timedelta(days=500), 10)]
    assert keep_decision(versions, NOW, keep_days=30, live_size=None) == [True, False]


def test_the_newest_copy_bigger_than_a_truncated_file_is_kept() -> None:
    versions = [(NOW - timedelta(days=90), 5000), (NOW - timedelta(days=100), 6000)]
    assert keep_decision(versions, NOW, keep_days=30, live_size=0) == [True, False]
    assert keep_decision(versions, NOW, keep_days=30, live_size=9000) == [False, False]


@given(
    st.lists(st.integers(min_value=0, max_value=60 * 24 * 60), min_size=1, max_size=300),
    st.integers(min_value=1, max_value=60),
    st.one_of(st.none(), st.integers(0, 10)),
)
def test_thinning_is_bounded_and_never_drops_the_protected_copy(
    minutes: list[int], keep_days: int, live: int | None
) -> None:
    versions = sorted(((NOW - timedelta(minutes=m), m % 13) for m in set(minutes)), reverse=True)
    keep = keep_decision(versions, NOW, keep_days, live)
    assert sum(keep) <= 25 + keep_days + 1
    if live is None:
        assert keep[0]  # a deleted file's newest copy
    else:
        bigger = [i for i, (_w, s) in enumerate(versions) if s > live]
        if bigger:
            assert keep[bigger[0]]
