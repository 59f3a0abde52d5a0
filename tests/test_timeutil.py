from datetime import UTC, datetime, time, timedelta

import pytest

from vigil.timeutil import (
    Granularity,
    in_daily_window,
    parse_duration,
    parse_instant,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("3h", timedelta(hours=3)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
        ("PT15M", timedelta(minutes=15)),
        ("P1DT2H", timedelta(days=1, hours=2)),
    ],
)
def test_parse_duration_accepts_short_and_iso_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["15", "fifteen minutes", "3x", "P"])
def test_parse_duration_rejects_other_text_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="expected a number and a unit"):
        parse_duration(text)


def test_sub_daily_buckets_align_to_utc_epoch() -> None:
    g = Granularity.parse("15m")
    assert g.floor(datetime(2024, 5, 1, 10, 44, 59, tzinfo=UTC)) == datetime(
        2024, 5, 1, 10, 30, tzinfo=UTC
    )
    assert g.last_complete(datetime(2024, 5, 1, 10, 45, tzinfo=UTC)) == datetime(
        2024, 5, 1, 10, 30, tzinfo=UTC
    )


def test_daily_buckets_follow_local_midnight_across_dst() -> None:
    g = Granularity.parse("1d", "Europe/Berlin")
    # 2024-03-31 is 23 hours long in Berlin: midnight moves from 23:00 UTC to 22:00 UTC.
    start = g.floor(datetime(2024, 3, 31, 12, tzinfo=UTC))
    assert start == datetime(2024, 3, 30, 23, tzinfo=UTC)
    assert g.next(start) == datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert g.shift(start, -1) == datetime(2024, 3, 29, 23, tzinfo=UTC)


def test_weekly_buckets_start_on_monday() -> None:
    g = Granularity.parse("1w", "UTC")
    assert g.floor(datetime(2024, 5, 2, 15, tzinfo=UTC)) == datetime(2024, 4, 29, tzinfo=UTC)


@pytest.mark.parametrize("text", ["7m", "25h", "0m", "2d"])
def test_granularity_must_divide_a_day_or_be_a_day_or_week(text: str) -> None:
    with pytest.raises(ValueError, match="not a supported granularity"):
        Granularity.parse(text)


def test_range_lists_bucket_starts_in_half_open_interval() -> None:
    g = Granularity.parse("1h")
    starts = g.range(datetime(2024, 5, 1, 0, 30, tzinfo=UTC), datetime(2024, 5, 1, 3, tzinfo=UTC))
    assert [s.hour for s in starts] == [1, 2]


def test_parse_instant_reads_naive_times_in_the_project_zone() -> None:
    parsed = parse_instant("2024-05-01T12:00", "Europe/Moscow")
    assert parsed == datetime(2024, 5, 1, 9, tzinfo=UTC)


def test_parse_instant_understands_now_minus_duration() -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_instant("now-2h", now=now) == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_parse_instant_rejects_garbage_naming_the_expected_form() -> None:
    with pytest.raises(ValueError, match="expected ISO 8601"):
        parse_instant("yesterday-ish")


def test_daily_window_wraps_past_midnight() -> None:
    late = datetime(2024, 5, 1, 23, 30, tzinfo=UTC)
    early = datetime(2024, 5, 1, 0, 30, tzinfo=UTC)
    noon = datetime(2024, 5, 1, 12, tzinfo=UTC)
    window = (time(23), time(1))
    assert in_daily_window(late, *window, "UTC")
    assert in_daily_window(early, *window, "UTC")
    assert not in_daily_window(noon, *window, "UTC")
