"""`type: auto`: the streaming detector over each series' recent history, scored at the target."""

from __future__ import annotations

import numpy as np

from vigil.analysis.base import ANOMALY, NO_DATA, OK, Evaluation, format_number, relative
from vigil.analysis.matrix import SeriesMatrix
from vigil.analysis.streaming import REASONS, AutoParams, StreamingDetector, seasons_for
from vigil.config.schema import AutoConfig
from vigil.timeutil import Granularity


def odds(rarity: float) -> str:
    """'1 in 1,400' for a surprise that rare; beyond a billion, '1 in over 1,000,000,000'."""
    if not rarity < 1e9:
        return "1 in over 1,000,000,000"
    return f"1 in {max(rarity, 1.0):,.0f}"


class AutoAnalyzer:
    """Replays `window` buckets of every series through one online detector (all series at
    once, one bucket per step) and judges the target bucket by its score."""

    def __init__(self, config: AutoConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The learning window: `window`, or 14 days of buckets (at least 60)."""
        if self.config.window is not None:
            return self.config.window
        return max(60, round(14 * 86_400 / granularity.seconds))

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Score every series' target bucket after learning from the buckets before it."""
        cfg = self.config
        start = max(0, target - self.history(matrix.granularity))
        window = matrix.values[:, start : target + 1]
        steps = window.shape[1]
        params = AutoParams(threshold=cfg.threshold, warmup=min(20, steps // 3))
        seasons = seasons_for(matrix.granularity.seconds)
        detector = StreamingDetector(len(window), seasons, params, capacity=steps)
        score = np.zeros(len(window))
        for column in range(steps):
            score = detector.step(window[:, column])
        lower, upper = detector.expected()
        reason, rarity = detector.reason.copy(), detector.rarity()
        value = window[:, -1]
        status = np.where(score >= cfg.threshold, ANOMALY, OK)
        status[np.isnan(value)] = NO_DATA
        expected = detector.last_expected
        deviation = np.where(status == ANOMALY, relative(value, expected), 0.0)

        def describe(i: int) -> str:
            return (
                f"score {score[i]:.2f} (threshold {cfg.threshold:g}),"
                f" {REASONS[int(reason[i])]} ({odds(rarity[i])}): expected"
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
