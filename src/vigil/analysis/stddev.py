"""Stddev band: trailing-window mean ± factor · sample standard deviation."""

from __future__ import annotations

import warnings

import numpy as np

from vigil.analysis.base import (
    ANOMALY,
    INSUFFICIENT,
    NO_DATA,
    OK,
    Evaluation,
    format_number,
    relative,
)
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import StddevConfig
from vigil.model import Direction
from vigil.timeutil import Granularity


class StddevAnalyzer:
    """Band from the previous `window` buckets (the target excluded), missing values skipped."""

    def __init__(self, config: StddevConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The trailing window."""
        return self.config.window

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Mean and sample stddev (n − 1) of the baseline, then the band test."""
        cfg = self.config
        value = matrix.values[:, target]
        baseline = matrix.values[:, max(0, target - cfg.window) : target]
        count = (~np.isnan(baseline)).sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(baseline, axis=1) if baseline.size else np.full(len(value), np.nan)
            std = (
                np.nanstd(baseline, axis=1, ddof=1)
                if baseline.size
                else np.full(len(value), np.nan)
            )
        lower, upper = mean - cfg.factor * std, mean + cfg.factor * std
        up, down = value > upper, value < lower
        flagged = {Direction.UP: up, Direction.DOWN: down, Direction.BOTH: up | down}[cfg.direction]
        enough = count >= cfg.min_batch_size
        status = np.where(flagged & enough, ANOMALY, OK)
        status[~enough] = INSUFFICIENT
        status[np.isnan(value)] = NO_DATA
        with np.errstate(divide="ignore", invalid="ignore"):
            zscore = np.where(std > 0, (value - mean) / std, np.nan)

        def describe(i: int) -> str:
            if not enough[i]:
                return f"only {count[i]} baseline values; need {cfg.min_batch_size}"
            return (
                f"{format_number(value[i])} vs mean {format_number(mean[i])}"
                f" ± {cfg.factor:g}σ (σ = {format_number(std[i])}, z = {zscore[i]:+.1f})"
            )

        return Evaluation(
            value,
            status,
            np.where(enough, lower, np.nan),
            np.where(enough, upper, np.nan),
            np.where(enough, relative(value, mean), np.nan),
            {"mean": mean, "stddev": std, "zscore": zscore, "count": count.astype(float)},
            describe,
        )
