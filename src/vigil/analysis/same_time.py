"""Same-time comparison: the mean of the last N buckets against the same buckets k days ago."""

from __future__ import annotations

import numpy as np

from vigil.analysis.base import (
    ANOMALY,
    INSUFFICIENT,
    NO_DATA,
    OK,
    Evaluation,
    format_number,
)
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import SameTimeComparisonConfig
from vigil.model import Direction
from vigil.timeutil import Granularity, format_duration


class SameTimeComparisonAnalyzer:
    """Anomalous when, against every available lag, the symmetric deviation passes the threshold.

    The symmetric deviation (x − b) / max(|x|, |b|) lies in [−1, 1]: a drop to 70% and a rise to
    1/0.7 ≈ 143% both give 0.3. The value must also lie outside the range of the lagged values.
    """

    def __init__(self, config: SameTimeComparisonConfig) -> None:
        self.config = config

    def lag_buckets(self, granularity: Granularity) -> list[int]:
        """Each lag as a number of buckets."""
        return [
            max(1, round(lag.total_seconds() / granularity.seconds)) for lag in self.config.lags
        ]

    def history(self, granularity: Granularity) -> int:
        """The largest lag plus the averaged buckets."""
        return max(self.lag_buckets(granularity)) + self.config.buckets

    def reads(self, granularity: Granularity) -> frozenset[int]:
        """The averaged buckets now and at each lag."""
        n = self.config.buckets
        starts = [0, *self.lag_buckets(granularity)]
        return frozenset(k + i for k in starts for i in range(n))

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Compare the window ending at `target` with the same window at each lag."""
        cfg = self.config
        n = cfg.buckets
        value = matrix.values[:, target]
        current = _window_mean(matrix.values, target, n)
        lags = self.lag_buckets(matrix.granularity)
        base = np.vstack([_window_mean(matrix.values, target - k, n) for k in lags])
        available = ~np.isnan(base)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.maximum(np.abs(current), np.abs(base))
            dev = np.where(scale > 0, (current - base) / scale, 0.0)
        thr = cfg.threshold
        lo_base = np.where(available, base, np.inf).min(axis=0)
        hi_base = np.where(available, base, -np.inf).max(axis=0)
        up = np.where(available, dev >= thr, True).all(axis=0) & (current > hi_base)
        down = np.where(available, dev <= -thr, True).all(axis=0) & (current < lo_base)
        flagged = {Direction.UP: up, Direction.DOWN: down, Direction.BOTH: up | down}[cfg.direction]
        small = (np.abs(current) < cfg.min_value) & np.where(
            available, np.abs(base) < cfg.min_value, True
        ).all(axis=0)
        has_base = available.any(axis=0)
        status = np.full(len(value), OK)
        status[~has_base] = INSUFFICIENT
        status[has_base & flagged & ~small & ~np.isnan(current)] = ANOMALY
        status[np.isnan(value)] = NO_DATA
        # The binding deviation: the lag closest to the current value.
        masked = np.where(available, np.abs(dev), np.inf)
        closest = masked.argmin(axis=0)
        deviation = np.where(has_base, dev[closest, np.arange(len(value))], np.nan)
        lower = np.where(has_base, lo_base * (1 - thr), np.nan)
        upper = np.where(has_base, hi_base / (1 - thr), np.nan)
        baselines = {"current_mean": current}
        names = [f"lag_{format_duration(lag)}" for lag in cfg.lags]
        baselines.update({name: base[i] for i, name in enumerate(names)})

        def describe(i: int) -> str:
            parts = [
                f"{name.removeprefix('lag_')} ago {format_number(base[j, i])}"
                + (f" ({_pct(current[i], base[j, i])})" if available[j, i] else "")
                for j, name in enumerate(names)
            ]
            mean = f"mean of last {n} buckets " if n > 1 else ""
            return f"{mean}{format_number(current[i])} vs " + ", ".join(parts)

        return Evaluation(value, status, lower, upper, deviation, baselines, describe)


def _window_mean(values: np.ndarray, end: int, size: int) -> np.ndarray:
    """Mean of the known values in columns [end − size + 1, end] per row (NaN if none)."""
    if end - size + 1 < 0:
        return np.full(values.shape[0], np.nan)
    window = values[:, end - size + 1 : end + 1]
    known = ~np.isnan(window)
    total = np.where(known, window, 0.0).sum(axis=1)
    count = known.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _pct(current: float, base: float) -> str:
    if base == 0 or base != base:
        return "n/a"
    return f"{(current / base - 1) * 100:+.1f}%"
