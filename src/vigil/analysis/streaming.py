"""The auto detector's core: an online model of many series at once, one time step per call.

Each step, for every series (numpy arrays of shape (series,)):

1. Two forecasts compete: the recent level (an exponentially weighted mean) and, once two
   seasons of history exist, the same time one season ago moved by the change in level since
   (seasons: a day and a week, in steps of the series' spacing). Each keeps an exponentially
   weighted mean absolute error; the one with the smaller error is the expectation.
2. The surprise is the forecast error in units of that model's typical error (a robust z):
   `raw = 1 − exp(−z² / 2·k²)` in [0, 1).
3. Like an anomaly likelihood, the detector asks how unusual the last few surprises are next
   to their own long-run distribution (a Gaussian tail of the short mean against the long
   mean and spread), so constant noise scores low and a change scores near 1.

The score is in [0, 1]; `expected()` gives the range the value was expected in, for messages.
Nothing looks ahead: a step sees only values before it, then learns from the new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AutoParams:
    """The detector's knobs (one set for every series)."""

    level_alpha: float = 0.05  # weight of the newest value in the level
    error_alpha: float = 0.02  # weight of the newest error in each model's typical error
    sensitivity: float = 3.0  # k: a surprise of k typical errors scores raw ≈ 0.39
    short_window: int = 6  # steps in the recent-surprise mean
    long_alpha: float = 0.002  # weight in the long-run mean and spread of surprises
    warmup: int = 30  # steps before scores are given
    likelihood: bool = False  # score the surprise's rarity (else the surprise itself)
    quiet: int = 1000  # steps a peak holds down lesser scores after it
    drift_window: int = 8  # steps whose mean surprise reveals a sustained shift
    drift_weight: float = 0.0  # how much a sustained shift counts against a single surprise
    damping: float = 0.5  # factor on scores below a recent peak
    floor: float = 0.001  # smallest typical error, as a share of the range seen


def _upper_tail(z: np.ndarray) -> np.ndarray:
    """P(Z > z) of a standard normal, accurate far into the tail."""
    return np.asarray(0.5 * _erfc(z / math.sqrt(2.0)), dtype=float)


_erfc = np.vectorize(math.erfc, otypes=[float])
# Scores are log tail probabilities scaled to [0, 1]: 1 means a chance of 1e-10 or less.
_LOG_FLOOR = math.log(1e-10)


class StreamingDetector:
    """Online anomaly scores for `series` series that advance together."""

    def __init__(self, series: int, seasons: list[int], params: AutoParams | None = None) -> None:
        self.p = params or AutoParams()
        self.seasons = sorted({s for s in seasons if s >= 2})
        span = max(self.seasons, default=1) + 1
        self.history = np.full((series, span), np.nan)
        self.level_history = np.full((series, span), np.nan)
        self.steps = 0
        self.level = np.full(series, np.nan)
        models = 1 + len(self.seasons)
        self.error = np.full((models, series), np.nan)
        self.low = np.full(series, np.inf)
        self.high = np.full(series, -np.inf)
        self.recent = np.zeros((series, self.p.short_window))
        self.long_mean = np.zeros(series)
        self.long_var = np.zeros(series)
        self.peaks = np.zeros((series, max(1, self.p.quiet)))
        self.residuals = np.zeros((series, max(1, self.p.drift_window)))
        self.last_expected = np.full(series, np.nan)
        self.last_scale = np.full(series, np.nan)

    def forecasts(self) -> np.ndarray:
        """(models, series): the level, then each season's value moved by the level change."""
        out = [self.level.copy()]
        span = self.history.shape[1]
        for season in self.seasons:
            if self.steps >= 2 * season:
                at = (self.steps - season) % span
                moved = self.history[:, at] + (self.level - self.level_history[:, at])
                out.append(moved)
            else:
                out.append(np.full_like(self.level, np.nan))
        return np.vstack(out)

    def step(self, values: np.ndarray) -> np.ndarray:
        """Score one new value per series (NaN: missing, scored 0), then learn from it."""
        x = np.asarray(values, dtype=float)
        p = self.p
        guesses = self.forecasts()
        errors = np.abs(x[None, :] - guesses)
        typical = np.where(np.isnan(self.error), np.inf, self.error)
        usable = ~np.isnan(guesses) & np.isfinite(typical)
        ranked = np.where(usable, typical, np.inf)
        best = np.argmin(ranked, axis=0)
        cols = np.arange(len(x))
        expected = guesses[best, cols]
        scale = typical[best, cols]
        spread = np.where(np.isfinite(self.high - self.low), self.high - self.low, 0.0)
        floor = 1e-6 + p.floor * spread
        z = (x - expected) / np.maximum(scale, floor)
        z = np.where(np.isfinite(z), z, 0.0)
        self.residuals = np.roll(self.residuals, -1, axis=1)
        self.residuals[:, -1] = z
        # A sustained shift: the mean of the last few surprises, in its own standard error.
        drift = self.residuals.mean(axis=1) * math.sqrt(self.residuals.shape[1])
        size = np.maximum(np.abs(z), p.drift_weight * np.abs(drift)) / p.sensitivity
        raw = size / (1.0 + size)
        raw = np.where(np.isnan(x), 0.0, raw)
        self.last_expected, self.last_scale = expected, np.maximum(scale, floor)
        score = self._likelihood(raw) if p.likelihood else raw
        score = self._onsets(score)
        self._learn(x, errors)
        if self.steps <= p.warmup:
            score = np.zeros_like(score)
        return score

    def _onsets(self, score: np.ndarray) -> np.ndarray:
        """Keep a score only where it rises above everything of the last `quiet` steps: the
        start of a change is news, its continuation is not."""
        p = self.p
        if p.quiet <= 0:
            return score
        previous = self.peaks.max(axis=1)
        self.peaks = np.roll(self.peaks, -1, axis=1)
        self.peaks[:, -1] = score
        return np.where(score > previous, score, score * p.damping)

    def _likelihood(self, raw: np.ndarray) -> np.ndarray:
        p = self.p
        self.recent = np.roll(self.recent, -1, axis=1)
        self.recent[:, -1] = raw
        short = self.recent.mean(axis=1)
        spread = np.sqrt(np.maximum(self.long_var, 1e-6))
        tail = _upper_tail((short - self.long_mean) / spread)
        likelihood = np.clip(np.log(np.maximum(tail, 1e-10)) / _LOG_FLOOR, 0.0, 1.0)
        a = p.long_alpha if self.steps > 1 / p.long_alpha else 1.0 / (self.steps + 1)
        delta = raw - self.long_mean
        self.long_mean = self.long_mean + a * delta
        self.long_var = (1 - a) * (self.long_var + a * delta**2)
        return np.asarray(likelihood, dtype=float)

    def _learn(self, x: np.ndarray, errors: np.ndarray) -> None:
        p = self.p
        seen = ~np.isnan(x)
        first = np.isnan(self.level) & seen
        self.level = np.where(first, x, self.level)
        self.level = np.where(seen, self.level + p.level_alpha * (x - self.level), self.level)
        known = ~np.isnan(errors) & seen[None, :]
        fresh = np.isnan(self.error) & known
        self.error = np.where(fresh, errors, self.error)
        updated = self.error + p.error_alpha * (errors - self.error)
        self.error = np.where(known & ~fresh, updated, self.error)
        self.low = np.where(seen, np.minimum(self.low, x), self.low)
        self.high = np.where(seen, np.maximum(self.high, x), self.high)
        span = self.history.shape[1]
        self.history[:, self.steps % span] = x
        self.level_history[:, self.steps % span] = self.level
        self.steps += 1

    def expected(self, width: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """The range the last value was expected in: expectation ± width typical errors."""
        return (
            self.last_expected - width * self.last_scale,
            self.last_expected + width * self.last_scale,
        )


def seasons_for(step_seconds: float) -> list[int]:
    """Daily and weekly seasons in steps of `step_seconds` (each used once two have passed)."""
    out = []
    for period in (86_400, 7 * 86_400):
        steps = round(period / step_seconds) if step_seconds > 0 else 0
        if 2 <= steps <= 20_000:
            out.append(steps)
    return out
