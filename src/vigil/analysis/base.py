"""The analyzer interface and the vectorised evaluation record it returns."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import StaticLimits
from vigil.model import Direction, Status
from vigil.numbers import format_number as format_number  # re-exported for the analyzers
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


def reads(analyzer: Analyzer, granularity: Granularity) -> frozenset[int] | None:
    """The columns an analyzer reads, as offsets back from the target (0 = the target), when
    it declares them with a `reads` method; None means every column of its `history`.

    The store then loads only those buckets (a week-ago comparison needs a few buckets of a
    week ago, not the whole week)."""
    declared = getattr(analyzer, "reads", None)
    found = None if declared is None else declared(granularity)
    return None if found is None else frozenset(found)


def relative(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(value − reference) / |reference|, NaN where the reference is 0 or missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray((value - reference) / np.abs(reference), dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


def outside(
    value: np.ndarray, lower: np.ndarray, upper: np.ndarray, direction: Direction
) -> tuple[np.ndarray, np.ndarray]:
    """(above, below) masks of the value against the band, kept to `direction`."""
    with np.errstate(invalid="ignore"):
        above = value > upper
        below = value < lower
    if direction == Direction.UP:
        below = np.zeros_like(below)
    elif direction == Direction.DOWN:
        above = np.zeros_like(above)
    return above, below


def apply_limits(
    value: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    limits: StaticLimits,
    direction: Direction,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Combine a computed band with the static thresholds; return lower, upper, above, below.

    `or`: the static thresholds cap the band (upper = min(upper, max_upper_threshold), lower =
    max(lower, min_lower_threshold)). `and`: an anomaly must be beyond both bounds, so the
    effective bound is the farther of the two.
    """
    ceiling = limits.max_upper_threshold
    floor = limits.min_lower_threshold
    if limits.limit_type == "or":
        if ceiling is not None:
            upper = np.fmin(upper, ceiling)
        if floor is not None:
            lower = np.fmax(lower, floor)
    else:
        if ceiling is not None:
            upper = np.fmax(upper, ceiling)
        if floor is not None:
            lower = np.fmin(lower, floor)
    above, below = outside(value, lower, upper, direction)
    return lower, upper, above, below


def statuses(flagged: np.ndarray, enough: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Status codes: anomaly where flagged, insufficient without enough baseline, no data."""
    status = np.where(flagged & enough, ANOMALY, OK)
    status[~enough] = INSUFFICIENT
    status[np.isnan(value)] = NO_DATA
    return status


def nan_stats(baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and sample stddev (n − 1) per row, missing values skipped."""
    rows = baseline.shape[0]
    count = (~np.isnan(baseline)).sum(axis=1) if baseline.size else np.zeros(rows, dtype=int)
    if not baseline.size:
        return count, np.full(rows, np.nan), np.full(rows, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(baseline, axis=1)
        std = np.nanstd(baseline, axis=1, ddof=1)
    return count, mean, std


def band_evaluation(
    value: np.ndarray,
    status: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    center: np.ndarray,
    enough: np.ndarray,
    baselines: dict[str, np.ndarray],
    describe: Callable[[int], str],
) -> Evaluation:
    """An evaluation around `center`; band and deviation are blank without enough baseline."""
    return Evaluation(
        value,
        status,
        np.where(enough, lower, np.nan),
        np.where(enough, upper, np.nan),
        np.where(enough, relative(value, center), np.nan),
        baselines,
        describe,
    )


@dataclass(frozen=True)
class Verdict:
    """One series' outcome from an analyzer that judges series one at a time."""

    status: int
    reason: str
    number: float = float("nan")


def judge_rows(
    count: int, judge: Callable[[int], Verdict]
) -> tuple[np.ndarray, Callable[[int], str], np.ndarray]:
    """Status codes, reasons and each verdict's number for rows 0..count−1."""
    verdicts = [judge(i) for i in range(count)]
    status = np.array([v.status for v in verdicts], dtype=int)
    numbers = np.array([v.number for v in verdicts], dtype=float)
    return status, lambda i: verdicts[i].reason, numbers
