from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.helpers import build, matrix
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK


def test_pct_diff_from_55_to_100_at_threshold_50() -> None:
    # Hand-checked: |55 − 100| / 55 · 100 = 81.82 > 50; bounds 55 ± 55 · 0.5 = [27.5, 82.5].
    result = build(
        "diff", mode="pct", threshold=50, baseline={"type": "trailing_window", "size": 1}
    ).evaluate(matrix([[55.0, 100.0]]), 1)
    assert result.status.tolist() == [ANOMALY]
    assert result.baselines["diff"][0] == pytest.approx(81.818, abs=1e-3)
    assert (result.lower[0], result.upper[0]) == pytest.approx((27.5, 82.5))
    assert "difference 81.82% (threshold 50%)" in result.describe(0)


def test_abs_diff_with_mean_baseline_and_direction() -> None:
    # Baseline mean of [8, 10, 12] = 10; band 10 ± 3.
    rows = [[8.0, 10, 12, 14], [8.0, 10, 12, 6], [8.0, 10, 12, 12.5]]
    up_only = build(
        "diff",
        mode="abs",
        threshold=3,
        direction="up",
        baseline={"type": "trailing_window", "size": 3},
    )
    result = up_only.evaluate(matrix(rows), 3)
    assert result.status.tolist() == [ANOMALY, OK, OK]
    assert (result.lower[0], result.upper[0]) == (7.0, 13.0)
    both = build("diff", mode="abs", threshold=3, baseline={"type": "trailing_window", "size": 3})
    assert both.evaluate(matrix(rows), 3).status.tolist() == [ANOMALY, ANOMALY, OK]


def test_sum_aggregate_compares_with_the_window_total() -> None:
    # A merged count: baseline 10 + 20 + 30 = 60, target 66 → 10% off.
    analyzer = build(
        "diff",
        mode="pct",
        threshold=5,
        aggregate="sum",
        baseline={"type": "trailing_window", "size": 3},
    )
    result = analyzer.evaluate(matrix([[10.0, 20, 30, 66]]), 3)
    assert result.baselines["baseline"][0] == 60
    assert result.baselines["diff"][0] == pytest.approx(10.0)
    assert result.status.tolist() == [ANOMALY]


def test_too_little_baseline_is_insufficient_and_missing_target_no_data() -> None:
    analyzer = build("diff", mode="pct", threshold=10, min_batch_size=2)
    result = analyzer.evaluate(matrix([[np.nan, 5.0, 50.0], [1.0, 1.0, np.nan]]), 2)
    assert result.status.tolist() == [INSUFFICIENT, NO_DATA]
    assert "only 1 baseline values; need 2" in result.describe(0)


def test_lagged_baseline_is_the_same_bucket_periods_ago() -> None:
    # Hourly buckets; 24 h ago = column 1 (value 100), target 130 → 30%.
    values = [0.0, 100.0] + [999.0] * 23 + [130.0]
    analyzer = build("diff", mode="pct", threshold=20, baseline={"type": "lagged", "lags": ["1d"]})
    result = analyzer.evaluate(matrix([values]), 25)
    assert result.baselines["baseline"][0] == 100
    assert result.status.tolist() == [ANOMALY]


def test_with_min_significance_a_small_count_change_is_noise_a_large_one_is_not() -> None:
    # 30% above a steady baseline of 20 is noise for a count; 30% above 2,000 is not.
    analyzer = build(
        "diff",
        mode="pct",
        threshold=20,
        min_significance=0.001,
        baseline={"type": "trailing_window", "size": 24},
    )
    rng = np.random.default_rng(5)
    small = [float(v) for v in rng.poisson(20, 24)] + [26.0]
    large = [float(v) for v in rng.poisson(2000, 24)] + [2600.0]
    result = analyzer.evaluate(matrix([small, large]), 24)
    assert result.status.tolist() == [OK, ANOMALY]
    assert "against the count's own noise" in result.describe(1)
    # Off by default: WhyLabs' diff, the threshold alone.
    plain = build(
        "diff", mode="pct", threshold=20, baseline={"type": "trailing_window", "size": 24}
    )
    assert plain.evaluate(matrix([small, large]), 24).status.tolist() == [ANOMALY, ANOMALY]
