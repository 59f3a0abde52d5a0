"""A metric's series as one matrix: rows are segments, columns are consecutive buckets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from vigil.model import Segment
from vigil.store.base import Cells, cells_from_frame
from vigil.timeutil import Granularity, to_naive_utc


@dataclass(frozen=True)
class Reference:
    """A stored snapshot of one series: its values and distributions."""

    values: tuple[float, ...] = ()
    payloads: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SeriesMatrix:
    """Values of every segment of one metric on a regular bucket grid (NaN = no value)."""

    metric: str
    granularity: Granularity
    segments: list[Segment]
    times: list[datetime]
    values: np.ndarray
    payloads: np.ndarray | None = None
    references: dict[str, dict[str, Reference]] = field(default_factory=dict)
    # For a ratio metric: its numerator and denominator counts on the same rows and columns.
    parts: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        metric: str,
        granularity: Granularity,
        start: datetime,
        end: datetime,
    ) -> SeriesMatrix:
        """Pivot long (segment, bucket, value) rows of one metric onto the grid [start, end)."""
        rows = frame if "metric" in frame else frame.assign(metric=metric)
        cells = cells_from_frame(rows, [metric])[metric]
        return cls.from_cells(cells, metric, granularity, start, end)

    @classmethod
    def from_cells(
        cls, cells: Cells, metric: str, granularity: Granularity, start: datetime, end: datetime
    ) -> SeriesMatrix:
        """Place one metric's stored cells on the grid [start, end)."""
        times = granularity.range(start, end)
        values = np.full((len(times), len(cells.segments)), np.nan).T
        if cells.segments and times:
            width = len(times)
            if granularity.is_calendar:
                grid = _grid(times, granularity)
                cols = np.searchsorted(grid, cells.buckets)
                inside = cols < width
                inside[inside] = grid[cols[inside]] == cells.buckets[inside]
            else:
                # Fixed steps: integer microseconds, so the column is one division.
                step = granularity.seconds * 1_000_000
                offset = cells.buckets.view(np.int64) - _micros(times[0])
                cols, rest = np.divmod(offset, step)
                inside = (rest == 0) & (cols >= 0) & (cols < width)
            # Stores return cells bucket by bucket, so fill a time × series block (writes land
            # near each other) and hand the analyzers its transpose, a view.
            flat = cols * len(cells.segments) + cells.rows
            block = values.T
            if inside.all():
                block.reshape(-1)[flat] = cells.values
            else:
                block.reshape(-1)[flat[inside]] = cells.values[inside]
        segments = [Segment.from_key(k) for k in cells.segments]
        return cls(metric, granularity, segments, times, values)

    def select(self, mask: np.ndarray) -> SeriesMatrix:
        """Only the rows where `mask` is true."""
        segments = [s for s, keep in zip(self.segments, mask, strict=True) if keep]
        payloads = None if self.payloads is None else self.payloads[mask]
        parts = None if self.parts is None else (self.parts[0][mask], self.parts[1][mask])
        return SeriesMatrix(
            self.metric,
            self.granularity,
            segments,
            self.times,
            self.values[mask],
            payloads,
            self.references,
            parts,
        )

    def aligned(self, other: SeriesMatrix) -> np.ndarray:
        """`other`'s values on this matrix's rows (NaN for a segment it lacks)."""
        rows = {s.key: i for i, s in enumerate(other.segments)}
        out = np.full(self.values.shape, np.nan)
        for i, segment in enumerate(self.segments):
            j = rows.get(segment.key)
            if j is not None:
                out[i] = other.values[j]
        return out

    def with_payloads(self, frame: pd.DataFrame) -> SeriesMatrix:
        """A copy carrying the distributions of long (segment, bucket, payload) rows."""
        payloads = np.full(self.values.shape, None, dtype=object)
        if len(frame) and self.times:
            grid = _grid(self.times, self.granularity)
            rows = pd.Index([s.key for s in self.segments]).get_indexer(pd.Index(frame["segment"]))
            buckets = frame["bucket"].to_numpy(dtype="datetime64[us]")
            cols = np.minimum(np.searchsorted(grid, buckets), len(grid) - 1)
            keep = (rows >= 0) & (grid[cols] == buckets)
            payloads[rows[keep], cols[keep]] = frame["payload"].to_numpy(dtype=object)[keep]
        return replace(self, payloads=payloads)

    def payload_at(self, row: int, col: int) -> dict[str, Any] | None:
        """The distribution stored for one cell, if any."""
        if self.payloads is None:
            return None
        found = self.payloads[row, col]
        return found if isinstance(found, dict) else None

    def index_of(self, start: datetime) -> int:
        """Column of the bucket starting at `start`."""
        return self.times.index(start)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch of a naive-UTC datetime64[us] for `moment`."""
    return int(np.datetime64(to_naive_utc(moment), "us").view(np.int64))


def _grid(times: list[datetime], granularity: Granularity) -> np.ndarray:
    """Bucket starts as naive-UTC datetime64, computed arithmetically where the step is fixed."""
    if granularity.is_calendar:
        return np.array([to_naive_utc(t) for t in times], dtype="datetime64[us]")
    first = np.datetime64(to_naive_utc(times[0]), "us")
    return first + np.arange(len(times)) * np.timedelta64(granularity.seconds, "s")
