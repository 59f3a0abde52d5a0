from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.helpers import matrix
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK
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
