"""The same-time comparison's level window: a day's own level is no anomaly, a change within
the day is; an incident in the window or at a lag neither hides nor invents one."""

from __future__ import annotations

import numpy as np

from tests.analysis.helpers import matrix
from vigil.analysis.base import ANOMALY, OK
from vigil.analysis.same_time import SameTimeComparisonAnalyzer
from vigil.config.schema import SameTimeComparisonConfig

DAY = 24  # hourly buckets
DAYS = 16  # today is the last day; a week and a day before it, and a week before those
TODAY = (DAYS - 1) * DAY
NOON = TODAY + 12


def analyzer(**params: object) -> SameTimeComparisonAnalyzer:
    config = {
        "id": "st",
        "type": "same_time_comparison",
        "buckets": 2,
        "threshold": 0.1,
        "min_significance": None,
        **params,
    }
    return SameTimeComparisonAnalyzer(SameTimeComparisonConfig.model_validate(config))


def days() -> np.ndarray:
    """DAYS of hourly values with a daily shape (low at night), the same every day."""
    hours = np.arange(DAYS * DAY) % DAY
    return 1000.0 * (1.2 - np.cos(2 * np.pi * hours / DAY))


def scale(values: np.ndarray, start: int, end: int, factor: float) -> np.ndarray:
    out = values.copy()
    out[start:end] *= factor
    return out


LEVEL = {"level_window": "4h"}


def test_a_uniformly_quieter_day_is_its_own_normal() -> None:
    quiet = scale(days(), TODAY, TODAY + DAY, 0.85)
    assert analyzer().evaluate(matrix([quiet.tolist()]), NOON).status.tolist() == [ANOMALY]
    result = analyzer(**LEVEL).evaluate(matrix([quiet.tolist()]), NOON)
    assert result.status.tolist() == [OK]
    assert "(baselines scaled ×0.85, ×0.85 by the 4h before)" in result.describe(0)


def test_a_sudden_drop_within_the_day_is_an_anomaly() -> None:
    drop = scale(days(), NOON - 1, NOON + 1, 0.6)
    result = analyzer(**LEVEL).evaluate(matrix([drop.tolist()]), NOON)
    assert result.status.tolist() == [ANOMALY]
    assert "×1.00, ×1.00" in result.describe(0)


def test_a_long_outage_keeps_alerting_and_its_end_is_no_spike() -> None:
    outage = scale(days(), TODAY + 6, TODAY + 14, 0.5)
    a = analyzer(**LEVEL)
    # At 13:00 the 4 h before are all outage: today is unlike every lag, nothing is scaled.
    assert a.evaluate(matrix([outage.tolist()]), TODAY + 13).status.tolist() == [ANOMALY]
    # Normal again from 14:00: the comparison at 15:00 is against the lags as they were.
    assert a.evaluate(matrix([outage.tolist()]), TODAY + 15).status.tolist() == [OK]


def test_a_weekly_quieter_day_scales_its_lag_and_a_one_off_outage_is_left_out() -> None:
    values = days()
    for day in (DAYS - 2, DAYS - 9):  # yesterday and the day a week before it: half, weekly
        values = scale(values, day * DAY, (day + 1) * DAY, 0.5)
    weekly = analyzer(**LEVEL).evaluate(matrix([values.tolist()]), NOON)
    assert weekly.status.tolist() == [OK]
    assert "×2.00, ×1.00" in weekly.describe(0)
    # Yesterday had an outage at this time (once): today's drop is judged on the week alone.
    outage = scale(days(), TODAY - DAY + 6, TODAY - DAY + 14, 0.4)
    drop = scale(outage, NOON - 1, NOON + 1, 0.6)
    assert analyzer().evaluate(matrix([drop.tolist()]), NOON).status.tolist() == [OK]
    result = analyzer(**LEVEL).evaluate(matrix([drop.tolist()]), NOON)
    assert result.status.tolist() == [ANOMALY]
    assert "1d ago n/a" in result.describe(0)


def test_the_level_is_read_only_from_today() -> None:
    # At 01:00 the window would reach into yesterday: nothing is scaled yet.
    quiet = scale(days(), TODAY, TODAY + DAY, 0.85)
    result = analyzer(**LEVEL).evaluate(matrix([quiet.tolist()]), TODAY + 1)
    assert "scaled" not in result.describe(0)


def test_the_reads_cover_the_level_windows_and_a_week_before() -> None:
    from vigil.timeutil import Granularity

    a = analyzer(**LEVEL)
    hourly = Granularity.parse("1h")
    reads = a.reads(hourly)
    assert {2, 5, 26, 29, 170, 173} <= reads  # now, 1d, 7d level windows (buckets 2..5)
    assert {170 + 168, 26 + 168} <= reads  # the same a week earlier
    assert a.history(hourly) == 168 + 2 + 4 + 168
