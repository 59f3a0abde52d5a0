from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.helpers import matrix
from vigil.analysis.base import ANOMALY, NO_DATA, OK
from vigil.analysis.fixed import FixedAnalyzer
from vigil.config.schema import FixedConfig


def analyzer(**params: object) -> FixedAnalyzer:
    return FixedAnalyzer(FixedConfig.model_validate({"id": "f", "type": "fixed", **params}))


def test_values_outside_bounds_are_anomalies_with_relative_excess() -> None:
    m = matrix([[0.0, 0.25], [0.0, 0.05], [0.0, 0.5], [0.0, np.nan]])
    result = analyzer(lower=0.1, upper=0.4).evaluate(m, 1)
    assert result.status.tolist() == [OK, ANOMALY, ANOMALY, NO_DATA]
    assert result.deviation[1] == pytest.approx(-0.5)
    assert result.deviation[2] == pytest.approx(0.25)
    assert result.describe(1) == "0.05 is below the lower bound 0.1"


def test_one_sided_bound_leaves_the_other_open() -> None:
    result = analyzer(upper=10).evaluate(matrix([[0.0, -1e9]]), 1)
    assert result.status.tolist() == [OK]
    assert np.isnan(result.lower[0])
    assert result.upper[0] == 10


def test_config_needs_a_bound_and_consistent_order() -> None:
    with pytest.raises(ValueError, match="needs upper, lower or both"):
        analyzer()
    with pytest.raises(ValueError, match=r"lower \(5.0\) is above upper \(1.0\)"):
        analyzer(lower=5, upper=1)


def test_n_consecutive_needs_every_recent_bucket_to_breach() -> None:
    # upper 10, N = 3: only the series whose last three values all exceed 10 is anomalous.
    m = matrix([[11.0, 12, 13], [5.0, 12, 13], [11.0, np.nan, 13], [20.0, 20, 5]])
    result = analyzer(upper=10, n_consecutive=3).evaluate(m, 2)
    assert result.status.tolist() == [ANOMALY, OK, OK, OK]
    assert result.describe(1) == "13 is above the upper bound 10 (2 of the last 3 buckets breach)"


def test_n_consecutive_without_enough_history_does_not_fire() -> None:
    assert analyzer(upper=10, n_consecutive=3).evaluate(matrix([[50.0, 50]]), 1).status == [OK]
