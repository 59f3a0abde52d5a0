"""Diff: the target against the baseline aggregate B, in percent or absolute units."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import (
    Evaluation,
    band_evaluation,
    format_number,
    outside,
    statuses,
)
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import DiffConfig
from vigil.timeutil import Granularity

_AGGREGATES: dict[str, Callable[..., np.ndarray]] = {
    "mean": np.nanmean,
    "sum": np.nansum,
    "median": np.nanmedian,
    "min": np.nanmin,
    "max": np.nanmax,
}


class DiffAnalyzer:
    """pct: d = |B − T| / |B| · 100, band B ± |B| · threshold / 100; abs: d = |B − T|.

    In abs mode the band is B ± threshold.

    Anomaly when d > threshold (on the side `direction` allows). B is the mean of the baseline
    values by default, so one bucket is compared with a typical bucket; `aggregate: sum` gives
    the total over the window (WhyLabs' merged-profile count).
    """

    def __init__(self, config: DiffConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The baseline's reach."""
        return baselines.history(self.config.baseline, granularity)

    def reads(self, granularity: Granularity) -> frozenset[int] | None:
        """The target and the baseline's columns."""
        found = baselines.reads(self.config.baseline, granularity)
        return None if found is None else found | {0}

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Aggregate the baseline, measure the difference, test it."""
        cfg = self.config
        value = matrix.values[:, target]
        window = baselines.values(cfg.baseline, matrix, target)
        count = (~np.isnan(window)).sum(axis=1)
        enough = (count >= cfg.min_batch_size) & (count > 0)
        base = np.full(len(value), np.nan)
        if window.size:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                base = _AGGREGATES[cfg.aggregate](window, axis=1)
            base[count == 0] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            if cfg.mode == "pct":
                diff = np.abs(base - value) / np.abs(base) * 100
                half = np.abs(base) * cfg.threshold / 100
            else:
                diff = np.abs(base - value)
                half = np.full(len(value), cfg.threshold)
        lower, upper = base - half, base + half
        above, below = outside(value, lower, upper, cfg.direction)
        flagged = (above | below) & (diff > cfg.threshold)
        status = statuses(flagged, enough, value)
        unit = "%" if cfg.mode == "pct" else ""

        def describe(i: int) -> str:
            if not enough[i]:
                return f"only {count[i]} baseline values; need {max(cfg.min_batch_size, 1)}"
            return (
                f"{format_number(value[i])} vs baseline {cfg.aggregate}"
                f" {format_number(base[i])}: difference {diff[i]:.2f}{unit}"
                f" (threshold {cfg.threshold:g}{unit})"
            )

        return band_evaluation(
            value,
            status,
            lower,
            upper,
            base,
            enough,
            {"baseline": base, "diff": diff, "count": count.astype(float)},
            describe,
        )
