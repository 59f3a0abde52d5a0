"""Baselines: which history each series is compared with, for one target bucket.

Window baselines (trailing window, time range, lags) pick the same columns for every series
of the matrix; a reference baseline brings each series' stored snapshot instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from croniter import croniter

from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import (
    BaselineConfig,
    LaggedBaseline,
    ReferenceBaseline,
    TimeRange,
    TimeRangeBaseline,
    TrailingWindowBaseline,
)
from vigil.timeutil import Granularity, format_duration, get_zone


def history(baseline: BaselineConfig, granularity: Granularity) -> int:
    """Buckets before the target that the baseline reads (fixed ranges: see `earliest`)."""
    if isinstance(baseline, TrailingWindowBaseline):
        return baseline.size + baseline.offset
    if isinstance(baseline, LaggedBaseline):
        return max(lag_buckets(baseline, granularity))
    return 0


def reads(baseline: BaselineConfig, granularity: Granularity) -> frozenset[int] | None:
    """Offsets back from the target that a window baseline reads; None when it is not a
    fixed set of offsets (time ranges, references)."""
    if isinstance(baseline, TrailingWindowBaseline):
        return frozenset(range(baseline.offset + 1, baseline.offset + baseline.size + 1))
    if isinstance(baseline, LaggedBaseline):
        return frozenset(lag_buckets(baseline, granularity))
    return None


def earliest(baseline: BaselineConfig, tz: str) -> datetime | None:
    """The fixed start a time-range baseline needs loaded, if any."""
    if isinstance(baseline, TimeRangeBaseline):
        return _aware(baseline.start, tz)
    return None


def lag_buckets(baseline: LaggedBaseline, granularity: Granularity) -> list[int]:
    """Each lag as a number of buckets."""
    return [max(1, round(lag.total_seconds() / granularity.seconds)) for lag in baseline.lags]


def columns(baseline: BaselineConfig, matrix: SeriesMatrix, target: int) -> np.ndarray:
    """Columns of the window baseline for column `target`, oldest first (never the target)."""
    if isinstance(baseline, TrailingWindowBaseline):
        stop = target - baseline.offset
        cols = np.arange(max(0, stop - baseline.size), max(0, stop))
        if not (baseline.exclusion_ranges or baseline.exclusion_cron) or not len(cols):
            return cols
        zone = matrix.granularity.tz
        ranges, crons = baseline.exclusion_ranges, baseline.exclusion_cron
        keep = np.array([not excluded(matrix.times[c], ranges, crons, zone) for c in cols])
        return np.asarray(cols[keep], dtype=int)
    if isinstance(baseline, TimeRangeBaseline):
        tz = matrix.granularity.tz
        first, last = _aware(baseline.start, tz), _aware(baseline.end, tz)
        chosen = [i for i, t in enumerate(matrix.times[:target]) if first <= t < last]
        return np.array(chosen, dtype=int)
    if isinstance(baseline, LaggedBaseline):
        lags = sorted(lag_buckets(baseline, matrix.granularity), reverse=True)
        return np.array([target - k for k in lags if target - k >= 0], dtype=int)
    return np.array([], dtype=int)


def values(baseline: BaselineConfig, matrix: SeriesMatrix, target: int) -> np.ndarray:
    """Series × baseline values (NaN where missing)."""
    if isinstance(baseline, ReferenceBaseline):
        stored = matrix.references.get(baseline.name, {})
        rows = [stored[s.key].values if s.key in stored else () for s in matrix.segments]
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out
    return matrix.values[:, columns(baseline, matrix, target)]


def payloads(
    baseline: BaselineConfig, matrix: SeriesMatrix, target: int
) -> list[list[dict[str, Any]]]:
    """Per series, the baseline's distributions (missing ones left out)."""
    if isinstance(baseline, ReferenceBaseline):
        stored = matrix.references.get(baseline.name, {})
        return [list(stored[s.key].payloads) if s.key in stored else [] for s in matrix.segments]
    cols = columns(baseline, matrix, target)
    return [
        [p for c in cols if (p := matrix.payload_at(row, int(c))) is not None]
        for row in range(len(matrix.segments))
    ]


def describe(baseline: BaselineConfig) -> str:
    """A short phrase for result reasons."""
    if isinstance(baseline, TrailingWindowBaseline):
        gap = f", {baseline.offset} back" if baseline.offset else ""
        return f"last {baseline.size} buckets{gap}"
    if isinstance(baseline, TimeRangeBaseline):
        return f"{baseline.start:%Y-%m-%d %H:%M}–{baseline.end:%Y-%m-%d %H:%M}"
    if isinstance(baseline, ReferenceBaseline):
        return f"reference '{baseline.name}'"
    return "same bucket " + ", ".join(f"{format_duration(lag)} ago" for lag in baseline.lags)


def excluded(when: datetime, ranges: list[TimeRange], crons: list[str], tz: str) -> bool:
    """Whether a bucket start lies in one of the ranges or matches one of the crons."""
    for span in ranges:
        if _aware(span.start, tz) <= when < _aware(span.end, tz):
            return True
    if not crons:
        return False
    local = when.astimezone(get_zone(tz)).replace(tzinfo=None)
    return any(croniter.match(expr, local) for expr in crons)


def _aware(moment: datetime, tz: str) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=get_zone(tz))
