"""The analyzer interface and the vectorised evaluation record it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vigil.analysis.matrix import SeriesMatrix
from vigil.model import Status
from vigil.timeutil import Granularity

STATUS_CODES = (Status.OK, Status.ANOMALY, Status.INSUFFICIENT, Status.NO_DATA)
OK, ANOMALY, INSUFFICIENT, NO_DATA = range(4)


@dataclass
class Evaluation:
    """Per-series arrays for one target bucket; `status` holds codes into STATUS_CODES."""

    value: np.ndarray
    status: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    deviation: np.ndarray
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    describe: Callable[[int], str] = lambda _: ""


class Analyzer(Protocol):
    """Turns a matrix of series into one result per series for a target bucket."""

    def history(self, granularity: Granularity) -> int:
        """Buckets before the target that the analyzer reads."""
        ...

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Evaluate column `target` of every row at once."""
        ...


def relative(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(value − reference) / |reference|, NaN where the reference is 0 or missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray((value - reference) / np.abs(reference), dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


def format_number(value: float | None) -> str:
    """Readable number: thousands separators, at most 4 significant decimals."""
    if value is None or value != value:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"
