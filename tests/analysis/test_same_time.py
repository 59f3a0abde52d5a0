from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.helpers import matrix
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK
from vigil.analysis.same_time import SameTimeComparisonAnalyzer
from vigil.config.schema import SameTimeComparisonConfig

DAY, WEEK = 24, 168  # hourly buckets


def analyzer(**params: object) -> SameTimeComparisonAnalyzer:
    # Size alone here; the count test has its own tests below.
    config = {
        "id": "st",
        "type": "same_time_comparison",
        "buckets": 1,
        "min_significance": None,
        **params,
    }
    return SameTimeComparisonAnalyzer(SameTimeComparisonConfig.model_validate(config))


def series(now: float, day_ago: float, week_ago: float) -> list[float]:
    values = [100.0] * (WEEK + 1)
    values[0], values[WEEK - DAY], values[WEEK] = week_ago, day_ago, now
    return values


def test_drop_against_every_lag_is_an_anomaly() -> None:
    # 60 vs 100 and 90: deviations (60−100)/100 = −0.4 and (60−90)/90 = −0.333 → both ≤ −0.3.
    result = analyzer().evaluate(matrix([series(60, 100, 90)]), WEEK)
    assert result.status.tolist() == [ANOMALY]
    assert result.deviation[0] == pytest.approx(-1 / 3)
    assert result.baselines["lag_1d"][0] == 100
    assert result.baselines["lag_1w"][0] == 90
    # Expected band: [min · (1 − 0.3), max / (1 − 0.3)] = [63, 142.857].
    assert result.lower[0] == pytest.approx(63)
    assert result.upper[0] == pytest.approx(100 / 0.7)
    assert result.describe(0) == "60 vs 1d ago 100 (-40.0%), 1w ago 90 (-33.3%)"


def test_deviation_is_symmetric_for_rises_and_drops() -> None:
    # Up: (143 − 100) / 143 = 0.3007 ≥ 0.3; down: (70 − 100) / 100 = −0.3.
    m = matrix([series(143, 100, 100), series(70, 100, 100), series(140, 100, 100)])
    result = analyzer().evaluate(m, WEEK)
    assert result.status.tolist() == [ANOMALY, ANOMALY, OK]


def test_one_normal_lag_vetoes_the_alert() -> None:
    # Yesterday was itself abnormal; a week ago agrees with now.
    result = analyzer().evaluate(matrix([series(60, 100, 62)]), WEEK)
    assert result.status.tolist() == [OK]


def test_value_inside_range_of_lags_is_not_an_anomaly() -> None:
    result = analyzer(threshold=0.2).evaluate(matrix([series(100, 50, 200)]), WEEK)
    assert result.status.tolist() == [OK]


def test_direction_limits_which_side_alerts() -> None:
    m = matrix([series(200, 100, 100), series(20, 100, 100)])
    assert analyzer(direction="down").evaluate(m, WEEK).status.tolist() == [OK, ANOMALY]
    assert analyzer(direction="up").evaluate(m, WEEK).status.tolist() == [ANOMALY, OK]


def test_mean_of_last_buckets_smooths_single_dips() -> None:
    values = [100.0] * (WEEK + 1)
    values[WEEK] = 40  # one bad bucket: mean of 3 = 80 → −0.2, not enough
    result = analyzer(buckets=3).evaluate(matrix([values]), WEEK)
    assert result.status.tolist() == [OK]
    assert result.baselines["current_mean"][0] == pytest.approx(80)
    values[WEEK - 1] = 40  # two bad buckets: mean 60 → −0.4
    assert analyzer(buckets=3).evaluate(matrix([values]), WEEK).status.tolist() == [ANOMALY]


def test_missing_lags_are_skipped_and_none_is_insufficient() -> None:
    only_day = series(50, 100, np.nan)
    neither = series(50, np.nan, np.nan)
    no_value = series(np.nan, 100, 100)
    result = analyzer().evaluate(matrix([only_day, neither, no_value]), WEEK)
    assert result.status.tolist() == [ANOMALY, INSUFFICIENT, NO_DATA]


def test_small_numbers_below_min_value_are_ignored() -> None:
    result = analyzer(min_value=10).evaluate(matrix([series(2, 8, 9), series(2, 80, 90)]), WEEK)
    assert result.status.tolist() == [OK, ANOMALY]


def test_zero_baseline_and_zero_value_is_no_deviation() -> None:
    result = analyzer().evaluate(matrix([series(0, 0, 0)]), WEEK)
    assert result.status.tolist() == [OK]
    assert result.deviation[0] == 0


def test_lags_are_converted_to_buckets_of_the_granularity() -> None:
    a = analyzer(buckets=3)
    from vigil.timeutil import Granularity

    assert a.lag_buckets(Granularity.parse("15m")) == [96, 672]
    assert a.history(Granularity.parse("15m")) == 675
    assert a.lag_buckets(Granularity.parse("1d")) == [1, 7]


def counts(now: float, level: float, noise: list[float] | None = None) -> list[float]:
    """A week of hourly counts at `level` (optionally cycling through `noise` offsets)."""
    values = [level + (noise[i % len(noise)] if noise else 0.0) for i in range(WEEK + 1)]
    values[WEEK] = now
    return values


def test_a_small_count_change_is_noise_a_large_one_is_not() -> None:
    sig = analyzer(min_significance=0.001)
    small, large = counts(14, 20), counts(1400, 2000)
    result = sig.evaluate(matrix([small, large]), WEEK)
    assert result.status.tolist() == [OK, ANOMALY]
    assert "z = -1.0 against the count's own noise" in result.describe(0)
    # Without the test the size alone flags both.
    assert analyzer().evaluate(matrix([small, large]), WEEK).status.tolist() == [ANOMALY] * 2


def test_a_bursty_count_needs_a_bigger_change_than_a_steady_one() -> None:
    sig = analyzer(min_significance=0.001)
    steady = counts(300, 500)
    bursty = counts(300, 500, noise=[-250.0, 250.0])  # swings of ±250 every hour
    bursty[WEEK - DAY] = bursty[0] = 500.0
    result = sig.evaluate(matrix([steady, bursty]), WEEK)
    assert result.status.tolist() == [ANOMALY, OK]


def test_fractions_are_judged_by_size_alone() -> None:
    ratio = counts(0.06, 0.1)
    result = analyzer(min_significance=0.001).evaluate(matrix([ratio]), WEEK)
    assert result.status.tolist() == [ANOMALY]
