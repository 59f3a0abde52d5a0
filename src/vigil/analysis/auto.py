"""`type: auto`: the streaming detector over each series' recent history, scored at the target."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from vigil.analysis.base import ANOMALY, NO_DATA, OK, Evaluation, format_number, relative
from vigil.analysis.matrix import SeriesMatrix
from vigil.analysis.streaming import REASONS, AutoParams, StreamingDetector, seasons_for
from vigil.config.project import config_hash
from vigil.config.schema import AutoConfig
from vigil.timeutil import Granularity


def odds(rarity: float) -> str:
    """'1 in 1,400' for a surprise that rare (two significant digits from 100 on); beyond a
    billion, '1 in over 1,000,000,000'."""
    if not rarity < 1e9:
        return "1 in over 1,000,000,000"
    rarity = max(rarity, 1.0)
    if rarity >= 100:  # two significant digits: 1 in 1,700,000, not 1 in 1,692,469
        rarity = round(rarity, 1 - math.floor(math.log10(rarity)))
    return f"1 in {rarity:,.0f}"


@dataclass
class _Replay:
    """A detector part-way through a window: the columns it has consumed and its last score."""

    detector: StreamingDetector
    consumed: np.ndarray
    score: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.detector.nbytes + self.consumed.nbytes


class _Replays:
    """Replays kept between evaluations (least recently used first out, within a byte budget).

    A pure memo: an entry is resumed only when the window's start, series and parameters are
    the same and the columns it consumed are unchanged in the new window (late or revised
    values force a fresh replay), so a result never depends on what was evaluated before."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.entries: OrderedDict[tuple[object, ...], tuple[_Replay, int]] = OrderedDict()
        self.total = 0  # bytes held by the entries
        self.lock = threading.Lock()

    def take(self, key: tuple[object, ...]) -> _Replay | None:
        with self.lock:
            found = self.entries.pop(key, None)
            if found is None:
                return None
            self.total -= found[1]
            return found[0]

    def put(self, key: tuple[object, ...], replay: _Replay) -> None:
        size = replay.nbytes
        if size > self.budget:
            return
        with self.lock:
            if (old := self.entries.pop(key, None)) is not None:
                self.total -= old[1]
            self.entries[key] = (replay, size)
            self.total += size
            while self.total > self.budget:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.total -= dropped

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.total = 0


REPLAYS = _Replays(budget=512 * 2**20)


class AutoAnalyzer:
    """Replays the learning window of every series through one online detector (all series
    at once, one bucket per step) and judges the target bucket by its score.

    For sub-daily buckets the window starts on a day boundary (in buckets since the epoch),
    `window` to `window` + a day before the target, so the evaluations of one day share a
    start: each resumes the previous one's replay instead of starting over."""

    def __init__(self, config: AutoConfig) -> None:
        self.config = config

    def learning(self, granularity: Granularity) -> int:
        """The learning window: `window`, or 14 days of buckets (at least 60)."""
        if self.config.window is not None:
            return self.config.window
        return max(60, round(14 * 86_400 / granularity.seconds))

    def chunk(self, granularity: Granularity) -> int:
        """Buckets between window starts: a day's worth for sub-daily buckets, else 1."""
        if granularity.is_calendar:
            return 1
        return max(1, 86_400 // granularity.seconds)

    def history(self, granularity: Granularity) -> int:
        """Buckets read before the target: the learning window and up to a day more."""
        return self.learning(granularity) + self.chunk(granularity) - 1

    def _start(self, matrix: SeriesMatrix, target: int) -> int:
        learning, chunk = self.learning(matrix.granularity), self.chunk(matrix.granularity)
        if chunk == 1:
            return max(0, target - learning)
        at = int(matrix.times[target].timestamp()) // matrix.granularity.seconds
        first = (at - learning) // chunk * chunk
        return max(0, target - (at - first))

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Score every series' target bucket after learning from the buckets before it."""
        cfg = self.config
        start = self._start(matrix, target)
        window = matrix.values[:, start : target + 1]
        steps = window.shape[1]
        capacity = self.history(matrix.granularity) + 1
        key = (
            config_hash(cfg),
            matrix.metric,
            matrix.granularity.name,
            tuple(s.key for s in matrix.segments),
            matrix.times[start],
        )
        # Short windows (a young series, a small `window`) learn faster and replay cheaply.
        resumable = self.chunk(matrix.granularity) > 1 and steps >= 60
        replay = REPLAYS.take(key) if resumable else None
        if replay is not None:
            done = replay.consumed.shape[1]
            if done > steps or not np.array_equal(
                replay.consumed, window[:, :done], equal_nan=True
            ):
                replay = None
        if replay is None:
            params = AutoParams(threshold=cfg.threshold, warmup=min(20, steps // 3))
            seasons = seasons_for(matrix.granularity.seconds)
            detector = StreamingDetector(len(window), seasons, params, capacity=capacity)
            replay = _Replay(detector, window[:, :0].copy(), np.zeros(len(window)))
        detector, score = replay.detector, replay.score
        for column in range(replay.consumed.shape[1], steps):
            score = detector.step(window[:, column])
        if resumable:
            REPLAYS.put(key, _Replay(detector, window.copy(), score))
        lower, upper = detector.expected()
        reason, rarity = detector.reason.copy(), detector.rarity()
        weighted = detector.weighted_rarity()
        damped, held = detector.damped.copy(), detector.held.copy()
        quiet, hold, damping = detector.p.quiet, detector.p.hold, detector.p.damping
        value = window[:, -1]
        status = np.where(score >= cfg.threshold, ANOMALY, OK)
        status[np.isnan(value)] = NO_DATA
        expected = detector.last_expected
        deviation = np.where(status == ANOMALY, relative(value, expected), 0.0)

        def describe(i: int) -> str:
            # Shown rounded down, so a score below the threshold never reads as reaching it.
            head = f"score {math.floor(score[i] * 100) / 100:.2f} (threshold {cfg.threshold:g})"
            if weighted[i] < 10:
                what = "nothing unusual"
            else:
                what = f"{REASONS[int(reason[i])]} ({odds(weighted[i])}"
                if abs(math.log10(max(rarity[i], 1.0)) - math.log10(weighted[i])) >= math.log10(2):
                    what += f"; {odds(rarity[i])} of its own history"
                what += ")"
            # Name a news rule only where it decided the status.
            if held[i]:
                what += f"; held below the threshold within {hold} buckets of the last anomaly"
            elif damped[i] and score[i] < cfg.threshold <= score[i] / damping:
                what += f"; damped: no higher than the last {quiet} buckets' peak"
            return (
                f"{head}, {what}: expected"
                f" {format_number(lower[i])}–{format_number(upper[i])}, got"
                f" {format_number(value[i])}"
            )

        return Evaluation(
            value=value,
            status=status,
            lower=lower,
            upper=upper,
            deviation=deviation,
            baselines={"expected": expected, "score": score},
            describe=describe,
        )
