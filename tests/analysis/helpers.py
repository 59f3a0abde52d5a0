"""Build small matrices for analyzer tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from vigil.analysis import Analyzer, build_analyzer
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import AnalyzerConfig
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


def build(kind: str, **params: object) -> Analyzer:
    """An analyzer of type `kind` from config params, validated like a config file's."""
    config = TypeAdapter(AnalyzerConfig).validate_python({"id": "a", "type": kind, **params})
    return build_analyzer(config)


def with_payloads(m: SeriesMatrix, payloads: list[list[dict[str, Any] | None]]) -> SeriesMatrix:
    """The matrix with one distribution per cell (None: none)."""
    cells = np.empty((len(payloads), len(payloads[0])), dtype=object)
    for i, row in enumerate(payloads):
        for j, cell in enumerate(row):
            cells[i, j] = cell
    return replace(m, payloads=cells)
