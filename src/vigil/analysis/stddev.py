"""Stddev band: baseline mean ± factor · sample standard deviation."""

from __future__ import annotations

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import (
    Evaluation,
    apply_limits,
    band_evaluation,
    format_number,
    nan_stats,
    statuses,
)
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import StddevConfig
from vigil.timeutil import Granularity


class StddevAnalyzer:
    """μ and σ (n − 1) of the non-missing baseline values; anomaly outside μ ± factor · σ.

    The static `max_upper_threshold` / `min_lower_threshold` cap the band (`limit_type: or`)
    or must be passed as well (`and`).
    """

    def __init__(self, config: StddevConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The baseline's reach."""
        return baselines.history(self.config.baseline, granularity)

    def reads(self, granularity: Granularity) -> frozenset[int] | None:
        """The target and the baseline's columns."""
        found = baselines.reads(self.config.baseline, granularity)
        return None if found is None else found | {0}

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Mean and sample stddev of the baseline, then the band test."""
        cfg = self.config
        value = matrix.values[:, target]
        count, mean, std = nan_stats(baselines.values(cfg.baseline, matrix, target))
        lower, upper, above, below = apply_limits(
            value, mean - cfg.factor * std, mean + cfg.factor * std, cfg, cfg.direction
        )
        enough = count >= cfg.min_batch_size
        status = statuses(above | below, enough, value)
        with np.errstate(divide="ignore", invalid="ignore"):
            zscore = np.where(std > 0, (value - mean) / std, np.nan)
        where = baselines.describe(cfg.baseline)

        def describe(i: int) -> str:
            if not enough[i]:
                return f"only {count[i]} baseline values; need {cfg.min_batch_size}"
            return (
                f"{format_number(value[i])} vs mean {format_number(mean[i])}"
                f" ± {cfg.factor:g}σ (σ = {format_number(std[i])}, z = {zscore[i]:+.1f};"
                f" {where})"
            )

        return band_evaluation(
            value,
            status,
            lower,
            upper,
            mean,
            enough,
            {"mean": mean, "stddev": std, "zscore": zscore, "count": count.astype(float)},
            describe,
        )
