"""Fixed bounds: anomalous above `upper` or below `lower` (optionally N buckets in a row)."""

from __future__ import annotations

import numpy as np

from vigil.analysis.base import ANOMALY, NO_DATA, OK, Evaluation, format_number, relative
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import FixedConfig
from vigil.timeutil import Granularity


class FixedAnalyzer:
    """Static thresholds, for metrics with known healthy ranges (a CTR floor, an error ceiling).

    With `n_consecutive: N` the target and the N − 1 buckets before it must all breach. The
    earlier buckets are judged from their stored values with the same static bounds — exactly
    what their own results were — so the rule also holds right after the analyzer is added.
    """

    def __init__(self, config: FixedConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The N − 1 buckets before the target."""
        return self.config.n_consecutive - 1

    def reads(self, granularity: Granularity) -> frozenset[int]:
        """The target and the N − 1 buckets before it."""
        return frozenset(range(self.config.n_consecutive))

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Compare each series' value with the bounds."""
        cfg = self.config
        value = matrix.values[:, target]
        n = len(value)
        upper = np.full(n, np.inf if cfg.upper is None else cfg.upper)
        lower = np.full(n, -np.inf if cfg.lower is None else cfg.lower)
        above, below = value > upper, value < lower
        # The target and the N − 1 buckets before it (none before the first column: no streak).
        first = target - cfg.n_consecutive + 1
        window = matrix.values[:, max(0, first) : target + 1]
        with np.errstate(invalid="ignore"):
            breach = (window > upper[:, None]) | (window < lower[:, None])
        run = breach.sum(axis=1)
        streak = breach.all(axis=1) & (first >= 0)
        status = np.where((above | below) & streak, ANOMALY, OK)
        status[np.isnan(value)] = NO_DATA
        bound = np.where(above, upper, lower)
        deviation = np.where(above | below, relative(value, bound), 0.0)

        def describe(i: int) -> str:
            side = "above the upper" if above[i] else "below the lower" if below[i] else ""
            if not side:
                return "within bounds"
            text = f"{format_number(value[i])} is {side} bound {format_number(bound[i])}"
            if cfg.n_consecutive > 1:
                text += f" ({run[i]} of the last {cfg.n_consecutive} buckets breach)"
            return text

        finite_lower = np.where(np.isfinite(lower), lower, np.nan)
        finite_upper = np.where(np.isfinite(upper), upper, np.nan)
        return Evaluation(value, status, finite_lower, finite_upper, deviation, {}, describe)
