"""Stddev band: baseline mean ± factor · sample standard deviation."""

from __future__ import annotations

from statistics import NormalDist

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
from vigil.analysis.counts import ratio_z
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import ReferenceBaseline, StddevConfig
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

    def _ratio_z(self, matrix: SeriesMatrix, target: int) -> np.ndarray | None:
        """The count test of a ratio's target against the baseline's rate (None: no test)."""
        cfg = self.config
        if cfg.min_significance is None or matrix.parts is None:
            return None
        if isinstance(cfg.baseline, ReferenceBaseline):
            return None
        cols = baselines.columns(cfg.baseline, matrix, target)
        numerator, denominator = matrix.parts
        return ratio_z(numerator, denominator, np.asarray(cols), np.array([target]))

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Mean and sample stddev of the baseline, then the band test."""
        cfg = self.config
        value = matrix.values[:, target]
        count, mean, std = nan_stats(baselines.values(cfg.baseline, matrix, target))
        lower, upper, above, below = apply_limits(
            value, mean - cfg.factor * std, mean + cfg.factor * std, cfg, cfg.direction
        )
        z = self._ratio_z(matrix, target)
        if z is not None:
            critical = NormalDist().inv_cdf(1 - float(cfg.min_significance or 0.5))
            above &= np.isnan(z) | (z >= critical)
            below &= np.isnan(z) | (z <= -critical)
        enough = count >= cfg.min_batch_size
        status = statuses(above | below, enough, value)
        with np.errstate(divide="ignore", invalid="ignore"):
            zscore = np.where(std > 0, (value - mean) / std, np.nan)
        where = baselines.describe(cfg.baseline)

        def describe(i: int) -> str:
            if not enough[i]:
                return f"only {count[i]} baseline values; need {cfg.min_batch_size}"
            text = (
                f"{format_number(value[i])} vs mean {format_number(mean[i])}"
                f" ± {cfg.factor:g}σ (σ = {format_number(std[i])}, z = {zscore[i]:+.1f};"
                f" {where})"
            )
            if z is not None and not np.isnan(z[i]):
                text += f"; z = {z[i]:+.1f} against the counts behind the ratio"
            return text

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
