"""Monotonic: a metric that keeps rising (or falling) bucket after bucket."""

from __future__ import annotations

import numpy as np

from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK, Evaluation
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import MonotonicConfig
from vigil.timeutil import Granularity


class MonotonicAnalyzer:
    """Counts the steps in `direction` between consecutive known values over the window.

    The window is `window` buckets before the `target_size` buckets ending at the target
    (by default num_buckets − target_size + 1, i.e. num_buckets + 1 values and num_buckets
    steps); anomaly when at least `num_buckets` steps go in `direction`. With the defaults
    that is a strictly monotonic run of num_buckets steps ending now.
    """

    def __init__(self, config: MonotonicConfig) -> None:
        self.config = config

    @property
    def span(self) -> int:
        """Buckets before the target read by the check."""
        cfg = self.config
        before = cfg.window if cfg.window is not None else cfg.num_buckets - cfg.target_size + 1
        return max(before, 0) + cfg.target_size - 1

    def history(self, granularity: Granularity) -> int:
        """The window plus the earlier target buckets."""
        return self.span

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Count rising (or falling) steps per series at once."""
        cfg = self.config
        value = matrix.values[:, target]
        window = matrix.values[:, max(0, target - self.span) : target + 1]
        steps = np.zeros(len(value), dtype=int)
        known_count = (~np.isnan(window)).sum(axis=1)
        if window.shape[1] > 1:
            # Compare each known value with the previous known one (gaps skipped).
            filled = window.copy()
            for c in range(1, filled.shape[1]):
                gap = np.isnan(filled[:, c])
                filled[gap, c] = filled[gap, c - 1]
            prev, cur = filled[:, :-1], window[:, 1:]
            with np.errstate(invalid="ignore"):
                moved = cur > prev if cfg.direction == "increasing" else cur < prev
            steps = np.where(np.isnan(prev) | np.isnan(cur), False, moved).sum(axis=1)
        status = np.where(steps >= cfg.num_buckets, ANOMALY, OK)
        status[known_count < 2] = INSUFFICIENT
        status[np.isnan(value)] = NO_DATA
        word = "rising" if cfg.direction == "increasing" else "falling"

        def describe(i: int) -> str:
            return (
                f"{steps[i]} {word} steps over the last {window.shape[1]} buckets"
                f" (anomaly at {cfg.num_buckets})"
            )

        nan = np.full(len(value), np.nan)
        return Evaluation(
            value,
            status,
            nan,
            np.full(len(value), float(cfg.num_buckets)),
            steps.astype(float),
            {"steps": steps.astype(float)},
            describe,
        )
