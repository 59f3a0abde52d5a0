"""Change: a level shift, reported once (the idea of Anomstack's change detection).

The new level is the median of the `recent` buckets ending at the target; the old level is
the median of the `window` buckets before them, and its spread the MAD (median absolute
deviation, scaled by 1.4826 to a standard deviation for normal noise). A change is a robust
z-score |new − old| / spread of at least `threshold`. A shift keeps that z high for many
buckets after it (until the window fills with the new level), so a change is reported only
at the first bucket that shows it: not when it was also seen at any of the `snooze` buckets
before. The median of the recent buckets makes a one-bucket spike no change at all.
"""

from __future__ import annotations

import warnings

import numpy as np

from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK, Evaluation, format_number
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import ChangeConfig
from vigil.model import Direction
from vigil.timeutil import Granularity

MAD_TO_SIGMA = 1.4826  # the MAD of normal noise times this is its standard deviation
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi / 2): the same for the mean absolute deviation


class ChangeAnalyzer:
    """Robust level-shift test of every series at once, at the target and the snoozed ones."""

    def __init__(self, config: ChangeConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The old window, the earlier recent buckets, and the buckets the snooze looks at."""
        cfg = self.config
        return cfg.window + cfg.recent - 1 + cfg.snooze

    def _levels(self, values: np.ndarray, col: int) -> tuple[np.ndarray, ...]:
        """(new level, old level, spread, enough data) of every row at column `col`."""
        cfg = self.config
        first = col - cfg.recent + 1
        recent = values[:, max(first, 0) : col + 1]
        old = values[:, max(first - cfg.window, 0) : max(first, 0)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
            new_level = np.nanmedian(recent, axis=1) if recent.shape[1] else _nan(values)
            if old.shape[1]:
                old_level = np.nanmedian(old, axis=1)
                spread_from = np.abs(old - old_level[:, None])
                mad = np.nanmedian(spread_from, axis=1) * MAD_TO_SIGMA
                mean_ad = np.nanmean(spread_from, axis=1) * MEAN_AD_TO_SIGMA
            else:
                old_level = mad = mean_ad = _nan(values)
        # A series that is mostly constant has MAD 0; its mean deviation still measures noise.
        spread = np.fmax(mad, mean_ad)
        known_recent = (~np.isnan(recent)).sum(axis=1)
        known_old = (~np.isnan(old)).sum(axis=1)
        enough = (known_recent * 2 > cfg.recent) & (known_old >= max(4, cfg.window // 2))
        return new_level, old_level, spread, enough

    def _changed(
        self, new: np.ndarray, old: np.ndarray, spread: np.ndarray, enough: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(robust z, whether it is a change in the configured direction) per row."""
        cfg = self.config
        delta = new - old
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(spread > 0, delta / spread, np.sign(delta) * np.inf)
            z[delta == 0] = 0.0
            big = np.abs(delta) >= cfg.min_change * np.abs(old)
        if cfg.direction == Direction.UP:
            far = z >= cfg.threshold
        elif cfg.direction == Direction.DOWN:
            far = z <= -cfg.threshold
        else:
            far = np.abs(z) >= cfg.threshold
        return z, np.asarray(far & big & enough, dtype=bool)

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """The test at the target, and at the `snooze` buckets before it."""
        cfg = self.config
        values = matrix.values
        value = values[:, target]
        new, old, spread, enough = self._levels(values, target)
        z, changed = self._changed(new, old, spread, enough)
        seen_before = np.zeros(len(value), dtype=bool)
        for back in range(1, cfg.snooze + 1):
            if target - back < 0:
                break
            _, earlier = self._changed(*self._levels(values, target - back))
            seen_before |= earlier
        status = np.where(changed & ~seen_before, ANOMALY, OK)
        status[~enough] = INSUFFICIENT
        status[np.isnan(value)] = NO_DATA
        with np.errstate(divide="ignore", invalid="ignore"):
            deviation = np.where(old != 0, (new - old) / np.abs(old), np.nan)
        lower = old - cfg.threshold * spread
        upper = old + cfg.threshold * spread

        def describe(i: int) -> str:
            if not enough[i]:
                return f"too few values for a level (need {max(4, cfg.window // 2)} before)"
            level = (
                f"level {format_number(new[i])} over the last {cfg.recent} buckets vs"
                f" {format_number(old[i])} in the {cfg.window} before (robust z {z[i]:+.1f},"
                f" threshold {cfg.threshold:g})"
            )
            if changed[i] and seen_before[i]:
                return level + "; the shift was reported when it began"
            return level + ("; a new level" if changed[i] else "")

        return Evaluation(
            value,
            status,
            lower,
            upper,
            deviation,
            {"new_level": new, "old_level": old, "spread": spread, "z": z},
            describe,
        )


def _nan(values: np.ndarray) -> np.ndarray:
    return np.full(values.shape[0], np.nan)
