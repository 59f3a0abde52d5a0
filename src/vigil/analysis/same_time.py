"""Same-time comparison: the mean of the last N buckets against the same buckets k days ago."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from vigil.analysis.base import (
    ANOMALY,
    INSUFFICIENT,
    NO_DATA,
    OK,
    Evaluation,
    format_number,
)
from vigil.analysis.counts import ratio_z
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import SameTimeComparisonConfig
from vigil.model import Direction
from vigil.timeutil import Granularity, format_duration, get_zone


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

    def level_buckets(self, granularity: Granularity) -> int:
        """The level window (before the compared buckets) as a number of buckets; 0 if off."""
        window = self.config.level_window
        return 0 if window is None else max(1, round(window.total_seconds() / granularity.seconds))

    def history(self, granularity: Granularity) -> int:
        """The largest lag plus the averaged buckets (and the level window before them)."""
        level = self.level_buckets(granularity)
        week = _week(granularity) if level else 0
        return max(self.lag_buckets(granularity)) + self.config.buckets + level + week

    def reads(self, granularity: Granularity) -> frozenset[int]:
        """The averaged buckets now and at each lag (at least `NOISE_BUCKETS` of each, for
        the count test's dispersion), and the level windows before them."""
        n = self._window()
        starts = [0, *self.lag_buckets(granularity)]
        level = self.level_buckets(granularity)
        before = range(self.config.buckets, self.config.buckets + level)
        week = _week(granularity) if level else 0
        levels = {w + k + i for w in (0, week) for k in starts for i in before} if level else set()
        return frozenset({k + i for k in starts for i in range(n)} | levels)

    def _window(self) -> int:
        if self.config.min_significance is None:
            return self.config.buckets
        return max(self.config.buckets, NOISE_BUCKETS)

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Compare the window ending at `target` with the same window at each lag."""
        cfg = self.config
        n = cfg.buckets
        value = matrix.values[:, target]
        current = _window_mean(matrix.values, target, n)
        lags = self.lag_buckets(matrix.granularity)
        base = np.vstack([_window_mean(matrix.values, target - k, n) for k in lags])
        level = self.level_buckets(matrix.granularity)
        factor = np.ones_like(base)
        # The level is the day's own: read only after its midnight, once half the window is.
        today = min(level, _since_midnight(matrix, target - n + 1))
        levelled = bool(level) and today >= min(level, LEVEL_MIN)
        if levelled:
            week = _week(matrix.granularity)
            factor, kept = day_levels(
                np.vstack([level_factor(matrix.values, target - n, k, today) for k in lags]),
                np.vstack([level_factor(matrix.values, target - n - week, k, today) for k in lags]),
            )
            base = np.where(kept, base * factor, np.nan)
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
        z = np.full((len(lags), len(value)), np.nan)
        if cfg.min_significance is not None:
            z = count_z(matrix.values, target, n, lags, self._window(), factor)
            if matrix.parts is not None:
                z = np.where(np.isnan(z), self._ratio_z(matrix, target, lags), z)
            critical = NormalDist().inv_cdf(1 - cfg.min_significance)
            # Every lag must agree, as for the size: the weakest z decides.
            z_up = np.where(available, z, np.inf).min(axis=0)
            z_down = np.where(available, z, -np.inf).max(axis=0)
            counts = ~np.isnan(z).all(axis=0)
            flagged &= ~counts | np.where(flagged & up, z_up >= critical, z_down <= -critical)
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
        if levelled:
            baselines.update(
                {f"level_{name.removeprefix('lag_')}": factor[i] for i, name in enumerate(names)}
            )

        def describe(i: int) -> str:
            parts = [
                f"{name.removeprefix('lag_')} ago {format_number(base[j, i])}"
                + (f" ({_pct(current[i], base[j, i])})" if available[j, i] else "")
                for j, name in enumerate(names)
            ]
            mean = f"mean of last {n} buckets " if n > 1 else ""
            text = f"{mean}{format_number(current[i])} vs " + ", ".join(parts)
            if levelled:
                scaled = ", ".join(
                    f"×{factor[j, i]:.2f}" for j in range(len(names)) if available[j, i]
                )
                window = format_duration(cfg.level_window) if cfg.level_window else ""
                text += f" (baselines scaled {scaled} by the {window} before)"
            scores = z[:, i][available[:, i] & ~np.isnan(z[:, i])]
            if scores.size:
                weakest = float(scores[np.abs(scores).argmin()])
                noise = "the counts behind the ratio" if matrix.parts else "the count's own noise"
                text += f"; z = {weakest:+.1f} against {noise}"
            return text

        return Evaluation(value, status, lower, upper, deviation, baselines, describe)

    def _ratio_z(self, matrix: SeriesMatrix, target: int, lags: list[int]) -> np.ndarray:
        """Per lag, the count test of a ratio: the current window's numerator against the lag
        window's rate, φ from the lag windows (see vigil.analysis.counts)."""
        assert matrix.parts is not None
        numerator, denominator = matrix.parts
        n, window = self.config.buckets, self._window()
        current = np.arange(target - n + 1, target + 1)
        noise = np.concatenate(
            [np.arange(max(0, target - k - window + 1), target - k + 1) for k in lags]
        )
        out = np.full((len(lags), numerator.shape[0]), np.nan)
        if current[0] < 0:
            return out
        for j, k in enumerate(lags):
            base = current - k
            if base[0] >= 0:
                out[j] = ratio_z(numerator, denominator, base, current, noise[noise >= 0])
        return out


NOISE_BUCKETS = 12  # buckets per window from which a series' dispersion is estimated


def count_z(
    values: np.ndarray,
    target: int,
    n: int,
    lags: list[int],
    window: int,
    factor: np.ndarray | None = None,
) -> np.ndarray:
    """Per lag and series, the z-score of the current n-bucket total against the lag's total,
    for count series; NaN where a row is not counts (a fraction, a negative value).

    Under "nothing changed", two totals S₀ and S₁ of an overdispersed Poisson process differ
    with variance φ·(S₀ + S₁); φ ≥ 1 is estimated from the series' own bucket-to-bucket
    changes in the lag windows, detrended (second differences, whose variance for a Poisson
    count is the sum of the means weighted 1, 4, 1):
    φ = Σ (xᵢ₊₁ − 2xᵢ + xᵢ₋₁)² / Σ (xᵢ₊₁ + 4xᵢ + xᵢ₋₁). A 30% drop from 20 to 14
    users gives z ≈ −1.0 (noise); from 2,000 to 1,400 z ≈ −10. With a level `factor` f per
    lag and series, the lag's total is expected at f·S₁: z = (S₀ − f·S₁) / √(φ·(S₀ + f²·S₁)).
    """
    rows = values.shape[0]
    # The noise is read at the lags only: the current window may hold the change itself.
    windows = [values[:, max(0, target - k - window + 1) : target - k + 1] for k in lags]
    if any(w.shape[1] == 0 for w in windows) or target - n + 1 < 0:
        return np.full((len(lags), rows), np.nan)
    current_window = values[:, target - n + 1 : target + 1]
    known = np.hstack([*windows, current_window])
    with np.errstate(invalid="ignore"):
        whole = np.where(np.isnan(known), True, (known >= 0) & (known == np.round(known)))
    is_count = whole.all(axis=1)
    num = np.zeros(rows)
    den = np.zeros(rows)
    for w in windows:
        # Second differences: a ramp of the daily shape is no noise (first differences would
        # count it and hide a real change behind an inflated φ).
        bend = w[:, 2:] - 2 * w[:, 1:-1] + w[:, :-2]
        spread = w[:, 2:] + 4 * w[:, 1:-1] + w[:, :-2]
        ok = ~np.isnan(bend)
        num += np.where(ok, bend**2, 0.0).sum(axis=1)
        den += np.where(ok, spread, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.clip(np.where(den > 0, num / den, 1.0), 1.0, MAX_DISPERSION)
    current = _window_sum(values, target, n)
    z = np.full((len(lags), rows), np.nan)
    for j, k in enumerate(lags):
        base = _window_sum(values, target - k, n)
        f = np.ones(rows) if factor is None else np.where(np.isnan(factor[j]), 1.0, factor[j])
        total = current + f * f * base
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(total > 0, (current - f * base) / np.sqrt(phi * total), 0.0)
        z[j] = np.where(is_count & ~np.isnan(score), score, np.nan)
    return z


MAX_DISPERSION = 1000.0
# Beyond this many times either way, a window's ratio is not read as a level at all.
LEVEL_LIMIT = 2.5
# How far today may run from the lag most like it and still be its own level (between 0.7 and
# 1/0.7 times: a holiday 15–20% low all day, with noise); beyond, today is unlike every lag —
# an incident under way — and no lag is scaled, so that a long outage keeps its alert and its
# end is no "spike".
LEVEL_RANGE = 0.3
# How much a window's bucket-by-bucket ratios may disagree (interquartile range of their logs)
# and still be one level: noise of counts in the hundreds is about 0.15.
LEVEL_SPREAD = 0.3
# Buckets of today a level is read from at the least (an hour of 15-minute buckets).
LEVEL_MIN = 4


def day_levels(factors: np.ndarray, before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lags' level factors (lags × rows; NaN: not told) as applied, and which lags are
    kept, given the same factors a week earlier (`before`).

    Where the lag most like today (the factor nearest 1) is within `LEVEL_RANGE` of it, today
    runs at its own level: a lag within `LEVEL_RANGE` of that one is scaled by its factor (a
    holiday 15% low against both), and so is a lag whose factor recurs a week earlier (a
    Saturday at half a Friday's level, every week); a lag further off that the week before
    shows not to recur is a day unlike others at this time (yesterday's outage) and is left
    out, and one the week before cannot judge stays, unscaled. Where no lag is that close —
    an incident under way — nothing is scaled or left out."""
    keep = np.ones(factors.shape, dtype=bool)
    if not factors.size:
        return factors, keep
    close = -np.log(1 - LEVEL_RANGE)
    with np.errstate(invalid="ignore"):
        logs = np.log(factors)
        told = ~np.isnan(logs)
        rank = np.where(told, np.abs(logs), np.inf)
        nearest = np.take_along_axis(logs, rank.argmin(axis=0)[None, :], axis=0)[0]
        own = told.any(axis=0) & (np.abs(nearest) <= close)
        alike = np.abs(logs - nearest[None, :]) <= close
        recurs = np.abs(logs - np.log(before)) <= close
    scaled = own[None, :] & told & (alike | recurs)
    # Left out only when the week before tells that this lag's difference is not a weekly
    # one; when it cannot tell (too few or too noisy values), the lag stays, unscaled.
    keep = ~(own[None, :] & told & ~scaled & ~np.isnan(before))
    return np.where(scaled, factors, 1.0), keep


def level_factor(values: np.ndarray, end: int, lag: int, size: int) -> np.ndarray:
    """Per row, how the day runs against the lag's day: the median over the columns
    [end − size + 1 … end] of each value's ratio to the same column `lag` earlier, when those
    ratios agree (their log's interquartile range within `LEVEL_SPREAD`: a whole day running
    low is low in every bucket, while an incident in part of the window is a step); NaN where
    it cannot be told (fewer than half the columns known and positive in both, ratios that
    disagree, or beyond `LEVEL_LIMIT` times either way)."""
    rows = values.shape[0]
    if end - lag - size + 1 < 0 or end - size + 1 < 0:
        return np.full(rows, np.nan)
    now = values[:, end - size + 1 : end + 1]
    then = values[:, end - lag - size + 1 : end - lag + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where((now > 0) & (then > 0), np.log(now / then), np.nan)
    enough = (~np.isnan(logs)).sum(axis=1) * 2 >= size
    out = np.full(rows, np.nan)
    if not enough.any():
        return out
    with np.errstate(all="ignore"):
        low, median, high = np.nanpercentile(logs[enough], [25, 50, 75], axis=1)
    agree = (high - low) <= LEVEL_SPREAD
    inside = np.abs(median) <= np.log(LEVEL_LIMIT)
    out[enough] = np.where(agree & inside, np.exp(median), np.nan)
    return out


def _week(granularity: Granularity) -> int:
    """A week as a number of buckets (where the level window looks a week back)."""
    return max(1, round(7 * 86400 / granularity.seconds))


def _since_midnight(matrix: SeriesMatrix, column: int) -> int:
    """Buckets between the local midnight of the day of `column` and that column."""
    if not 0 <= column < len(matrix.times):
        return 0
    granularity = matrix.granularity
    local = matrix.times[column].astimezone(get_zone(granularity.tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int((local - midnight).total_seconds() // granularity.seconds)


def _window_sum(values: np.ndarray, end: int, size: int) -> np.ndarray:
    """Total of the known values in columns [end − size + 1, end] per row (NaN if none)."""
    if end - size + 1 < 0:
        return np.full(values.shape[0], np.nan)
    window = values[:, end - size + 1 : end + 1]
    known = ~np.isnan(window)
    total = np.where(known, window, 0.0).sum(axis=1)
    return np.where(known.any(axis=1), total, np.nan)


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
