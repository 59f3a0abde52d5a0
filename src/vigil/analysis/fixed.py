"""Fixed bounds: anomalous above `upper` or below `lower`."""

from __future__ import annotations

import numpy as np

from vigil.analysis.base import ANOMALY, NO_DATA, OK, Evaluation, format_number, relative
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import FixedConfig
from vigil.timeutil import Granularity


class FixedAnalyzer:
    """Static thresholds, for metrics with known healthy ranges (a CTR floor, an error ceiling)."""

    def __init__(self, config: FixedConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """Only the target bucket is read."""
        return 0

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Compare each series' value with the bounds."""
        value = matrix.values[:, target]
        n = len(value)
        upper = np.full(n, np.inf if self.config.upper is None else self.config.upper)
        lower = np.full(n, -np.inf if self.config.lower is None else self.config.lower)
        above, below = value > upper, value < lower
        status = np.where(above | below, ANOMALY, OK)
        status[np.isnan(value)] = NO_DATA
        bound = np.where(above, upper, lower)
        deviation = np.where(above | below, relative(value, bound), 0.0)

        def describe(i: int) -> str:
            if above[i]:
                return (
                    f"{format_number(value[i])} is above the upper bound {format_number(upper[i])}"
                )
            if below[i]:
                return (
                    f"{format_number(value[i])} is below the lower bound {format_number(lower[i])}"
                )
            return "within bounds"

        finite_lower = np.where(np.isfinite(lower), lower, np.nan)
        finite_upper = np.where(np.isfinite(upper), upper, np.nan)
        return Evaluation(value, status, finite_lower, finite_upper, deviation, {}, describe)
