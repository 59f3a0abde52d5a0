from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.analysis.helpers import matrix
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK
from vigil.analysis.matrix import Reference
from vigil.analysis.stddev import StddevAnalyzer
from vigil.config.schema import StddevConfig

BASELINE = [
    89119,
    117282,
    78701,
    63456,
    63731,
    78161,
    78581,
    97605,
    122480,
    73446,
    50475,
    54593,
    58734,
    69682,
    90665,
    118782,
    81981,
    67113,
    68746,
    71977,
]


def analyzer(**params: object) -> StddevAnalyzer:
    return StddevAnalyzer(StddevConfig.model_validate({"id": "s", "type": "stddev", **params}))


def test_band_is_mean_plus_minus_factor_sample_stddev() -> None:
    # Hand-checked: mean 79765.5, sample stddev 20812.02; factor 2 → [38141.46, 121389.54].
    m = matrix([[*BASELINE, 130000.0], [*BASELINE, 80000.0]])
    result = analyzer(factor=2, window=20, min_batch_size=20).evaluate(m, 20)
    assert result.lower == pytest.approx([38141.46, 38141.46], abs=0.01)
    assert result.upper == pytest.approx([121389.54, 121389.54], abs=0.01)
    assert result.status.tolist() == [ANOMALY, OK]
    assert result.baselines["mean"][0] == pytest.approx(79765.5)
    assert result.deviation[0] == pytest.approx(130000 / 79765.5 - 1)


def test_direction_down_ignores_spikes() -> None:
    m = matrix([[*BASELINE, 130000.0], [*BASELINE, 10000.0]])
    result = analyzer(factor=2, window=20, direction="down").evaluate(m, 20)
    assert result.status.tolist() == [OK, ANOMALY]


def test_missing_baseline_values_are_skipped_and_too_few_is_insufficient() -> None:
    sparse = [np.nan] * 15 + BASELINE[:5] + [1e9]
    m = matrix([sparse, [*BASELINE, np.nan]])
    result = analyzer(window=20, min_batch_size=8).evaluate(m, 20)
    assert result.status.tolist() == [INSUFFICIENT, NO_DATA]
    assert np.isnan(result.lower[0])
    assert "only 5 baseline values; need 8" in result.describe(0)


def test_all_series_are_evaluated_in_one_call() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(100, 5, size=(500, 49))
    values[7, 48] = 200
    result = analyzer(factor=4, window=48).evaluate(matrix(values.tolist()), 48)
    assert np.flatnonzero(result.status == ANOMALY).tolist() == [7]


def test_static_thresholds_cap_the_band_with_or() -> None:
    # Computed band [38141.46, 121389.54]; max_upper_threshold 100000 caps it, so 110000 is out.
    m = matrix([[*BASELINE, 110000.0], [*BASELINE, 30000.0]])
    result = analyzer(
        factor=2, window=20, max_upper_threshold=100000, min_lower_threshold=20000
    ).evaluate(m, 20)
    assert result.upper[0] == 100000
    assert result.lower[0] == pytest.approx(38141.46, abs=0.01)
    assert result.status.tolist() == [ANOMALY, ANOMALY]


def test_static_thresholds_must_also_be_passed_with_and() -> None:
    # With `and`, 130000 is beyond the computed 121389.54 but not beyond the static 150000.
    m = matrix([[*BASELINE, 130000.0], [*BASELINE, 160000.0]])
    result = analyzer(factor=2, window=20, max_upper_threshold=150000, limit_type="and").evaluate(
        m, 20
    )
    assert result.upper[0] == 150000
    assert result.status.tolist() == [OK, ANOMALY]


def test_window_and_baseline_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either window or baseline"):
        analyzer(window=5, baseline={"type": "trailing_window", "size": 5})


def test_trailing_window_offset_and_exclusion_cron() -> None:
    # Hourly from 2024-05-01 00:00 UTC. Offset 2 skips the two buckets before the target;
    # the cron drops the 00:00 bucket: the baseline is columns 1..3 = [10, 10, 10].
    row = [1000.0, 10, 10, 10, 500, 500, 10]
    band = analyzer(
        factor=1,
        min_batch_size=2,
        baseline={
            "type": "trailing_window",
            "size": 4,
            "offset": 2,
            "exclusion_cron": ["0 0 * * *"],
        },
    ).evaluate(matrix([row]), 6)
    assert band.baselines["count"][0] == 3
    assert band.baselines["mean"][0] == 10


def test_time_range_baseline_uses_a_fixed_span() -> None:
    # Hourly from 2024-05-01 00:00 UTC; the range covers columns 2..4.
    row = [0.0, 0, 10, 12, 14, 100, 100, 12]
    result = analyzer(
        factor=3,
        min_batch_size=3,
        baseline={"type": "time_range", "start": "2024-05-01T02:00Z", "end": "2024-05-01T05:00Z"},
    ).evaluate(matrix([row]), 7)
    assert result.baselines["mean"][0] == 12
    assert result.baselines["stddev"][0] == 2
    assert (result.lower[0], result.upper[0]) == (6, 18)
    assert result.status.tolist() == [OK]


def test_reference_baseline_reads_the_stored_snapshot() -> None:
    m = matrix([[0.0, 50.0], [0.0, 50.0]])
    snapshot = {"reference": {m.segments[0].key: Reference(values=(10.0, 12.0, 14.0))}}
    result = analyzer(
        factor=3, min_batch_size=3, baseline={"type": "reference", "name": "reference"}
    ).evaluate(replace(m, references=snapshot), 1)
    # Series 0: mean 12 ± 3 · 2 → 50 is an anomaly; series 1 has no snapshot.
    assert result.status.tolist() == [ANOMALY, INSUFFICIENT]
