"""Conjunction and disjunction: several analyzers' verdicts on the same series and bucket."""

from __future__ import annotations

import numpy as np

from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK, Analyzer, Evaluation
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import CompositeConfig
from vigil.timeutil import Granularity


class CompositeAnalyzer:
    """conjunction: anomaly when every member flags one; disjunction: when any does.

    A conjunction with a member that has no verdict (insufficient baseline, no data) is
    undecided unless another member already says OK; a disjunction is undecided only when no
    member decided. Members are evaluated on the same matrix, so the combination never waits
    for, or depends on the order of, the members' own stored results.
    """

    def __init__(self, config: CompositeConfig, members: list[tuple[str, Analyzer]]) -> None:
        self.config = config
        self.members = members

    def history(self, granularity: Granularity) -> int:
        """The members' longest reach."""
        return max((m.history(granularity) for _, m in self.members), default=0)

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Evaluate every member, then combine their statuses."""
        n = len(matrix.segments)
        value = matrix.values[:, target]
        if not self.members:
            status = np.full(n, INSUFFICIENT)
            return Evaluation(value, status, *(np.full(n, np.nan),) * 3, {}, lambda _: "")
        results = [(name, m.evaluate(matrix, target)) for name, m in self.members]
        codes = np.vstack([e.status for _, e in results])
        anomaly, ok = codes == ANOMALY, codes == OK
        if self.config.type == "conjunction":
            status = np.where(
                anomaly.all(axis=0), ANOMALY, np.where(ok.any(axis=0), OK, INSUFFICIENT)
            )
        else:
            decided = anomaly | ok
            status = np.where(
                anomaly.any(axis=0), ANOMALY, np.where(decided.any(axis=0), OK, INSUFFICIENT)
            )
        status[np.isnan(value)] = NO_DATA
        first = results[0][1]

        def describe(i: int) -> str:
            parts = [f"{name}: {_label(int(e.status[i]))} ({e.describe(i)})" for name, e in results]
            return f"{self.config.type} of " + "; ".join(parts)

        return Evaluation(value, status, first.lower, first.upper, first.deviation, {}, describe)


def _label(code: int) -> str:
    return {OK: "ok", ANOMALY: "anomaly", INSUFFICIENT: "insufficient", NO_DATA: "no data"}[code]
