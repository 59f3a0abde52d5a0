"""Drift: how far the target bucket's distribution moved from the baseline's."""

from __future__ import annotations

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import (
    ANOMALY,
    INSUFFICIENT,
    NO_DATA,
    OK,
    Evaluation,
    Verdict,
    judge_rows,
)
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import DriftConfig
from vigil.sketches import distance, distributions
from vigil.timeutil import Granularity


class DriftAnalyzer:
    """Histogram (numeric columns) or frequent-items (discrete columns) distance to the baseline.

    Numeric columns are binned on the pooled baseline's quantiles (`bins` equal-mass bins);
    discrete ones on the union of items plus one bin for everything else. One series at a
    time: profile columns are few, and each distance is a handful of numpy operations.
    """

    def __init__(self, config: DriftConfig) -> None:
        self.config = config

    def history(self, granularity: Granularity) -> int:
        """The baseline's reach."""
        return baselines.history(self.config.baseline, granularity)

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Distance per series, anomaly above the threshold."""
        cfg = self.config
        threshold = cfg.effective_threshold
        history = baselines.payloads(cfg.baseline, matrix, target)

        def judge(i: int) -> Verdict:
            now = matrix.payload_at(i, target)
            if now is None:
                return Verdict(NO_DATA, "no distribution in the target bucket")
            past = [p for p in history[i] if p.get("kind") == now.get("kind")]
            if not past or len(past) < cfg.min_batch_size:
                need = cfg.min_batch_size
                return Verdict(
                    INSUFFICIENT, f"only {len(past)} baseline distributions; need {need}"
                )
            base, now_p, labels = distributions(past, now, cfg.bins)
            dist = distance(cfg.algorithm, base, now_p)
            moved = int(np.argmax(np.abs(now_p - base)))
            reason = (
                f"{cfg.algorithm} distance {dist:.3f} (threshold {threshold:g}) vs"
                f" {baselines.describe(cfg.baseline)}; biggest change: {labels[moved]}"
                f" {base[moved]:.1%} → {now_p[moved]:.1%}"
            )
            return Verdict(ANOMALY if dist > threshold else OK, reason, dist)

        status, describe, dist = judge_rows(len(matrix.segments), judge)
        lower = np.full(len(status), np.nan)
        upper = np.where(np.isnan(dist), np.nan, threshold)
        value = matrix.values[:, target]
        return Evaluation(value, status, lower, upper, dist, {"distance": dist}, describe)
