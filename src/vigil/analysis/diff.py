"""Diff: the target against the baseline aggregate B, in percent or absolute units."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import (
    Evaluation,
    band_evaluation,
    format_number,
    outside,
    statuses,
)
from vigil.analysis.counts import ratio_z
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import DiffConfig, ReferenceBaseline
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

    def _count_z(self, matrix: SeriesMatrix, target: int) -> np.ndarray | None:
        """The count test of the target against the baseline's mean (None: no test): for a
        ratio with its parts; for counts, as a rate per bucket (denominator 1)."""
        cfg = self.config
        if cfg.min_significance is None or cfg.aggregate != "mean":
            return None
        if isinstance(cfg.baseline, ReferenceBaseline):
            return None
        cols = np.asarray(baselines.columns(cfg.baseline, matrix, target))
        if matrix.parts is not None:
            numerator, denominator = matrix.parts
            return ratio_z(numerator, denominator, cols, np.array([target]))
        chosen = matrix.values[:, [*cols.tolist(), target]]
        with np.errstate(invalid="ignore"):
            whole = np.where(np.isnan(chosen), True, (chosen >= 0) & (chosen == np.round(chosen)))
        ones = np.ones_like(matrix.values)
        z = ratio_z(matrix.values, ones, cols, np.array([target]))
        return np.where(whole.all(axis=1), z, np.nan)

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
        z = self._count_z(matrix, target)
        if z is not None:
            critical = NormalDist().inv_cdf(1 - float(cfg.min_significance or 0.5))
            flagged &= np.isnan(z) | np.where(above, z >= critical, z <= -critical)
        status = statuses(flagged, enough, value)
        unit = "%" if cfg.mode == "pct" else ""

        def describe(i: int) -> str:
            if not enough[i]:
                return f"only {count[i]} baseline values; need {max(cfg.min_batch_size, 1)}"
            text = (
                f"{format_number(value[i])} vs baseline {cfg.aggregate}"
                f" {format_number(base[i])}: difference {diff[i]:.2f}{unit}"
                f" (threshold {cfg.threshold:g}{unit})"
            )
            if z is not None and not np.isnan(z[i]):
                noise = "the counts behind the ratio" if matrix.parts else "the count's own noise"
                text += f"; z = {z[i]:+.1f} against {noise}"
            return text

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
