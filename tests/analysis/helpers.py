"""Build small matrices for analyzer tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from vigil.analysis.matrix import SeriesMatrix
from vigil.model import Segment
from vigil.timeutil import Granularity

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def matrix(rows: list[list[float]], granularity: str = "1h") -> SeriesMatrix:
    """One row per series; columns are consecutive buckets starting at T0."""
    g = Granularity.parse(granularity)
    values = np.array(rows, dtype=float)
    times = [g.shift(T0, i) for i in range(values.shape[1])]
    segments = [Segment.of({"s": str(i)}) for i in range(values.shape[0])]
    return SeriesMatrix("m", g, segments, times, values)
