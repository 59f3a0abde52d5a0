"""The auto detector's core: an online model of many series at once, one time step per call.

Each step, for every series (numpy arrays of shape (series,)), four surprises are measured,
each against only what came before:

1. **Value novelty**: the distance from the new value to the nearest value in the series'
   history. A value far from everything seen before is news; one close to an earlier value is
   not, wherever in the day it falls.
2. **Level novelty**: the same for the mean of the last `window` values, against earlier such
   means. It catches a shift or a drift that no single value shows.
3. **Forecast surprise**: the error against a forecast, in typical errors. Two forecasts
   compete: the recent level (an exponentially weighted mean) and, once two seasons of history
   exist, the same time one season ago moved by the change in level since (seasons: a day and
   a week, in steps of the series' spacing). It catches a value that is ordinary in itself but
   not at this time of day.
4. **Same-time novelty**: the distance from the new value to the nearest value at about this
   time (up to `season_reach` steps either side) in the last `season_cycles` days (or weeks,
   for daily data). A night-time value at the peak hour is news even if nights are common.

Each surprise becomes a p-value against its own history (the conformal p-value: the share of
earlier surprises at least as large; past the largest one it falls further, as
`(largest / new)³`). The longer that history, the more often a merely rare surprise turns up
in it, so past `base` surprises the p-value is multiplied by `(surprises / base) ** growth`:
the bar rises slowly with the history (×2 at 5,000 surprises, ×3 at 20,000). The smallest
p-value, each scaled by how far that component is to be trusted, gives the score
`min(1, −log10 p / scale)`: with the default scale, the default threshold 0.5 means a surprise
rarer than about 1 in 160 of a short history (1 in 320 at 5,000 steps), and 1 means 1 in
25,000 or rarer. So the score means the same on every series, whatever its units.

Two rules keep it to news: a score that does not beat the last `quiet` steps' peak is damped,
and after a score at or above the threshold the next `hold` steps stay below it (unless a
much rarer surprise comes).

Nothing looks ahead: a step sees only values before it, then learns from the new one.
`expected()` gives the forecast's range for messages; `reason` says which surprise decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VALUE, LEVEL, FORECAST, SEASON = 0, 1, 2, 3
REASONS = {
    VALUE: "a value unlike its history",
    LEVEL: "a level unlike its history",
    FORECAST: "far from the forecast",
    SEASON: "a value unlike this time in earlier cycles",
}


@dataclass(frozen=True)
class AutoParams:
    """The detector's knobs (one set for every series)."""

    threshold: float = 0.5  # a score at or above this is an anomaly (and starts a hold)
    scale: float = 4.4  # score = −log10(p) / scale
    window: int = 24  # values in the recent level
    level_factor: float = 0.7  # multiplies the level novelty's p-value (below 1: trust it more)
    forecast_factor: float = 30.0  # multiplies the forecast surprise's p-value
    season_factor: float = 30.0  # multiplies the same-time novelty's p-value
    season_cycles: int = 7  # earlier cycles (days, or weeks) the same-time novelty looks at
    season_reach: int = 3  # ... at most this many steps either side of the same time
    tail: float = 3.0  # past the largest earlier surprise, p falls as (largest / new) ** tail
    base: int = 500  # surprises a history holds before the bar starts to rise
    growth: float = 0.3  # past `base`, p is multiplied by (surprises / base) ** growth
    history: int = 20_000  # values (and surprises) remembered
    warmup: int = 20  # surprises a component needs before it scores
    quiet: int = 50  # steps whose peak a score must beat to count in full
    damping: float = 0.9  # factor on a score that does not beat that peak
    hold: int = 120  # steps after an anomaly that stay below the threshold
    release: float = 0.4  # ... unless the score beats the anomaly's by this much
    level_alpha: float = 0.05  # weight of the newest value in the forecast's level
    error_alpha: float = 0.02  # weight of the newest error in each forecast's typical error
    floor: float = 0.001  # smallest typical error, as a share of the range seen


def nearest(past: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per series, the distance from its value to the nearest of its `past` values (a
    non-empty (series, n) array; NaN entries are skipped, and a row of them gives NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(np.fmin.reduce(np.abs(past - values[:, None]), axis=1), dtype=float)


class _History:
    """A ring buffer of the last `size` values per series, with the queries the detector asks.

    Missing entries are NaN: no distance is taken to them and no comparison counts them."""

    def __init__(self, series: int, size: int) -> None:
        self.data = np.full((series, size), np.nan)
        self.size = size
        self.filled = 0
        self.cursor = 0
        self.count = np.zeros(series, dtype=np.int64)
        self.top = np.full(series, -np.inf)  # the largest value ever pushed

    def view(self) -> np.ndarray:
        return self.data[:, : self.filled]

    def push(self, values: np.ndarray) -> None:
        present = ~np.isnan(values)
        if self.filled == self.size:
            evicted = self.data[:, self.cursor]
            self.count -= ~np.isnan(evicted)
        self.data[:, self.cursor] = values
        self.count += present
        self.top = np.where(present, np.maximum(self.top, values), self.top)
        self.cursor = (self.cursor + 1) % self.size
        self.filled = min(self.filled + 1, self.size)

    def nearest(self, values: np.ndarray) -> np.ndarray:
        """Distance from each series' value to its nearest remembered value (NaN: none)."""
        if self.filled == 0:
            return np.full(len(values), np.nan)
        return nearest(self.view(), values)

    def p_value(self, values: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
        """The conformal p-value of each value among the remembered ones, and their count."""
        at_least = (self.view() >= values[:, None]).sum(axis=1)
        p = (at_least + 1) / (self.count + 1)
        if tail > 0:
            beyond = (at_least == 0) & (self.top > 0) & (values > self.top)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(beyond, self.top / values, 1.0)
            p = p * ratio**tail
        return p, self.count


class StreamingDetector:
    """Online anomaly scores for `series` series that advance together."""

    def __init__(
        self,
        series: int,
        seasons: list[int],
        params: AutoParams | None = None,
        capacity: int | None = None,
    ) -> None:
        self.p = params or AutoParams()
        p = self.p
        self.seasons = sorted({s for s in seasons if s >= 2})
        size = max(1, min(p.history, capacity if capacity is not None else p.history))
        # The forecasts: the level, and each season's value moved by the level change.
        span = max(self.seasons, default=1) + 1
        self.history = np.full((series, span), np.nan)
        self.level_history = np.full((series, span), np.nan)
        self.level = np.full(series, np.nan)
        self.error = np.full((1 + len(self.seasons), series), np.nan)
        self.errors_seen = np.zeros((1 + len(self.seasons), series), dtype=np.int64)
        self.low = np.full(series, np.inf)
        self.high = np.full(series, -np.inf)
        # The novelties: remembered values, recent levels and every component's surprises.
        self.values = _History(series, size)
        self.levels = _History(series, size)
        self.recent = np.full((series, max(1, p.window)), np.nan)
        self.pending = np.full((series, max(1, p.window)), np.nan)
        self.surprises = [_History(series, size) for _ in REASONS]
        # The same-time novelty: the shortest season (a day, else a week), its last cycles.
        self.cycle = self.seasons[0] if self.seasons else 0
        self.reach = min(p.season_reach, self.cycle // 8)
        depth = self.cycle * max(1, p.season_cycles) + self.reach + 1 if self.cycle else 1
        self.tape = np.full((series, depth), np.nan)
        offsets = [
            k * self.cycle + j
            for k in range(1, max(1, p.season_cycles) + 1)
            for j in range(-self.reach, self.reach + 1)
        ]
        self.offsets = np.array(offsets if self.cycle else [], dtype=np.int64)
        self.peaks = np.zeros((series, max(1, p.quiet)))
        self.since = np.full(series, np.iinfo(np.int64).max // 2)
        self.fired = np.zeros(series)
        self.steps = 0
        self.last_expected = np.full(series, np.nan)
        self.last_scale = np.full(series, np.nan)
        self.last_p = np.ones(series)
        self.last_chance = np.ones(series)
        self.damped = np.zeros(series, dtype=bool)
        self.held = np.zeros(series, dtype=bool)
        self.reason = np.zeros(series, dtype=np.int64)

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
        seen = ~np.isnan(x)
        errors, z = self._forecast(x)
        slot = self.steps % self.recent.shape[1]
        self.recent[:, slot] = x
        level = self._recent_level()
        surprise = np.vstack(
            [self.values.nearest(x), self.levels.nearest(level), np.abs(z), self._same_time(x)]
        )
        factors = (1.0, p.level_factor, p.forecast_factor, p.season_factor)
        chances = np.ones_like(surprise)
        raw = np.ones_like(surprise)
        for i, (memory, factor) in enumerate(zip(self.surprises, factors, strict=True)):
            chance, count = memory.p_value(surprise[i], p.tail)
            usable = ~np.isnan(surprise[i]) & (count >= p.warmup) & seen
            raw[i] = np.where(usable, chance, 1.0)
            bar = (np.maximum(count, p.base) / max(p.base, 1)) ** p.growth
            chances[i] = np.where(usable, np.minimum(1.0, chance * factor * bar), 1.0)
        self.reason = np.argmin(chances, axis=0)
        chance = chances.min(axis=0)
        self.last_p = np.take_along_axis(raw, self.reason[None, :], axis=0)[0]
        self.last_chance = np.where(seen, chance, 1.0)
        score = np.minimum(1.0, -np.log10(np.maximum(chance, 1e-300)) / p.scale)
        score = np.where(seen, score, 0.0)
        score = self._news(score)
        self._learn(x, errors, surprise, level, slot)
        return score

    def _same_time(self, x: np.ndarray) -> np.ndarray:
        """Distance from the value to the nearest value at about this time in earlier cycles
        (NaN until one cycle has passed)."""
        if not self.cycle or self.steps < self.cycle + self.reach:
            return np.full(len(x), np.nan)
        depth = self.tape.shape[1]
        usable = self.offsets[self.offsets <= self.steps]
        return nearest(self.tape[:, (self.steps - usable) % depth], x)

    def _recent_level(self) -> np.ndarray:
        """The mean of the last `window` values (NaN until that many steps have passed)."""
        if self.steps < self.recent.shape[1] - 1:
            return np.full(self.recent.shape[0], np.nan)
        present = ~np.isnan(self.recent)
        count = present.sum(axis=1)
        total = np.where(present, self.recent, 0.0).sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def _forecast(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each model's absolute error, and the best model's error in its typical errors."""
        guesses = self.forecasts()
        errors = np.abs(x[None, :] - guesses)
        # A model is trusted once it has `warmup` errors: one lucky first error is no scale.
        trusted = ~np.isnan(self.error) & (self.errors_seen >= self.p.warmup)
        typical = np.where(trusted, self.error, np.inf)
        usable = ~np.isnan(guesses) & np.isfinite(typical)
        best = np.argmin(np.where(usable, typical, np.inf), axis=0)
        cols = np.arange(len(x))
        expected = guesses[best, cols]
        scale = typical[best, cols]
        spread = np.where(np.isfinite(self.high - self.low), self.high - self.low, 0.0)
        scale = np.maximum(scale, 1e-6 + self.p.floor * spread)
        with np.errstate(invalid="ignore"):
            z = (x - expected) / scale
        self.last_expected, self.last_scale = expected, scale
        return errors, np.where(np.isfinite(z) & np.isfinite(scale), z, np.nan)

    def _news(self, score: np.ndarray) -> np.ndarray:
        """Damp a score that does not beat the recent peak; hold after an anomaly."""
        p = self.p
        if p.quiet > 0:
            previous = self.peaks.max(axis=1)
            self.peaks[:, self.steps % self.peaks.shape[1]] = score
            self.damped = (score <= previous) & (score > 0)
            score = np.where(score > previous, score, score * p.damping)
        held = (self.since < p.hold) & (score < self.fired + p.release)
        self.held = held & (score > 0.9 * p.threshold)
        score = np.where(held, np.minimum(score, 0.9 * p.threshold), score)
        fire = ~held & (score >= p.threshold)
        self.fired = np.where(fire, score, self.fired)
        self.since = np.where(fire, 0, self.since + 1)
        return np.asarray(score, dtype=float)

    def _learn(
        self, x: np.ndarray, errors: np.ndarray, surprise: np.ndarray, level: np.ndarray, slot: int
    ) -> None:
        p = self.p
        seen = ~np.isnan(x)
        self.values.push(x)
        for memory, row in zip(self.surprises, surprise, strict=True):
            memory.push(np.where(seen, row, np.nan))
        # A level joins the history only once it no longer overlaps the current one.
        self.levels.push(self.pending[:, slot].copy())
        self.pending[:, slot] = level
        first = np.isnan(self.level) & seen
        self.level = np.where(first, x, self.level)
        self.level = np.where(seen, self.level + p.level_alpha * (x - self.level), self.level)
        known = ~np.isnan(errors) & seen[None, :]
        fresh = np.isnan(self.error) & known
        self.error = np.where(fresh, errors, self.error)
        updated = self.error + p.error_alpha * (errors - self.error)
        self.error = np.where(known & ~fresh, updated, self.error)
        self.errors_seen += known
        self.low = np.where(seen, np.minimum(self.low, x), self.low)
        self.high = np.where(seen, np.maximum(self.high, x), self.high)
        self.tape[:, self.steps % self.tape.shape[1]] = x
        span = self.history.shape[1]
        self.history[:, self.steps % span] = x
        self.level_history[:, self.steps % span] = self.level
        self.steps += 1

    @property
    def nbytes(self) -> int:
        """Memory held by the detector's state."""
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
        arrays += [h.data for h in (self.values, self.levels, *self.surprises)]
        return int(sum(a.nbytes for a in arrays))

    def expected(self, width: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """The range the last value was expected in: the forecast ± width typical errors."""
        return (
            self.last_expected - width * self.last_scale,
            self.last_expected + width * self.last_scale,
        )

    def weighted_rarity(self) -> np.ndarray:
        """1 / p of the last step's deciding surprise after its component's factor and the
        history bar: the score before the news rules is exactly min(1, log10(this) / scale)."""
        return np.asarray(1.0 / np.maximum(self.last_chance, 1e-300), dtype=float)

    def rarity(self) -> np.ndarray:
        """1 / p of the last step's deciding surprise among its own history (before the
        component's factor and the history-length bar): 'rarer than 1 in N'."""
        return np.asarray(1.0 / np.maximum(self.last_p, 1e-300), dtype=float)


def seasons_for(step_seconds: float) -> list[int]:
    """Daily and weekly seasons in steps of `step_seconds` (each used once two have passed)."""
    out = []
    for period in (86_400, 7 * 86_400):
        steps = round(period / step_seconds) if step_seconds > 0 else 0
        if 2 <= steps <= 20_000:
            out.append(steps)
    return out


def threshold_rarity(threshold: float, params: AutoParams | None = None) -> float:
    """The 'one in N' a score of `threshold` stands for, for a value-novelty surprise with
    a history of up to `base` surprises (with more history, the bar rises)."""
    scale = (params or AutoParams()).scale
    return float(math.pow(10.0, threshold * scale))
