"""Replays: every cycle the scheduler would have run over a past range, in order.

A replay's cycles are the scheduler's own (plans, exactly-once skips, routing, cooldowns,
incidents, the outbox and delivery all run per cycle, as `vigil run` would have run them), but a
dataset whose source answers any window alike is read **once** for the whole range and its
values are kept in memory as one series × time grid per metric. Each cycle then takes its
ingest window from the grid instead of the source, zero-fills as the per-cycle ingest would
have at that moment (the rule depends on what the store held then, which the grid tracks), and
its analyzers read their windows from the grid instead of the store. The store still receives
every value, fill, result, alert and notification. See docs/design.md ("Bulk replay").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from vigil.analysis.runner import _earliest
from vigil.app import App
from vigil.config.profiles import PAYLOAD_STATS
from vigil.config.project import Dataset
from vigil.config.schema import ReferenceBaseline
from vigil.errors import VigilError
from vigil.model import AnalysisResult, RunRecord
from vigil.scheduler import cycle as cycles
from vigil.scheduler.health import record_data, record_silence
from vigil.scheduler.ingest import (
    dataset_stats_for_empty,
    history_buckets,
    watermark,
    window_after,
)
from vigil.store.base import Cells, Store
from vigil.timeutil import to_naive_utc

log = logging.getLogger(__name__)

_FAR = datetime(9999, 1, 1, tzinfo=UTC)
RUN_LOG_EVERY = 96  # cycles whose run-log records are written together


def replay_cycles(
    app: App,
    times: Sequence[datetime],
    *,
    notify: bool = True,
    kind: str = "replay",
    read: dict[tuple[str, datetime, datetime], pd.DataFrame] | None = None,
) -> Iterator[cycles.CycleReport]:
    """The reports of `run_cycle(app, at, scheduled_only=True)` for every `at`, in order.

    `read` keeps what each dataset's source answered for the range, for later replays of
    the same range and queries (a backtest sweep)."""
    bulk: dict[str, BulkDataset] = {}
    runs: list[RunRecord] = []  # the run log, written a day of cycles at a time
    with app.session():
        for dataset in app.project.datasets:
            prepared = BulkDataset.prepare(app, dataset, times, read)
            if prepared is not None:
                bulk[dataset.name] = prepared
        try:
            for number, at in enumerate(times, 1):
                yield cycles.run_cycle(
                    app, at, notify=notify, scheduled_only=True, kind=kind, bulk=bulk, runs=runs
                )
                if number % RUN_LOG_EVERY == 0:
                    app.store.record_runs(runs)
                    runs.clear()
        finally:
            for prepared in bulk.values():
                prepared.finish()
            app.store.record_runs(runs)


def bulk_eligible(app: App, dataset: Dataset) -> str | None:
    """Why the dataset must be replayed cycle by cycle (None: it can be read once)."""
    source = app.sources.get(dataset.config.source)
    g = dataset.granularity
    reasons = [
        (not getattr(source, "answers_any_window_alike", False), "its source"),
        (g.is_calendar, "calendar buckets"),
        (dataset.config.schedule is not None, "a cron schedule"),
        (dataset.config.snapshot, "a snapshot"),
        (dataset.allow_partial, "partial buckets"),
        (dataset.batch_cooldown is not None, "a batch cooldown"),
        (bool(dataset.rollups), "coarser analyzers"),
        (
            any(m.stat == "seconds_since_last_upload" for m in dataset.metrics),
            "an upload-age metric",
        ),
        (
            any(
                _earliest(a, g) is not None
                or isinstance(getattr(a, "baseline", None), ReferenceBaseline)
                for m in dataset.metrics
                for a in m.analyzers
            ),
            "a fixed or reference baseline",
        ),
    ]
    return next((why for found, why in reasons if found), None)


@dataclass
class _Grid:
    """One metric's values on the replay's columns, as the store holds them now."""

    keys: list[str]  # sorted segment keys (rows)
    values: np.ndarray  # rows × columns; NaN for a stored null or no row
    present: np.ndarray  # a stored row
    before: np.ndarray  # a non-zero value stored before the replay began
    beyond: np.ndarray  # per row: a non-zero value stored before it began, after the range
    source: np.ndarray  # the source has a row
    source_nonzero: np.ndarray  # ... with a non-zero value


class BulkDataset:
    """One dataset's source rows for the whole replay, and the store's view of them per cycle."""

    def __init__(self, app: App, dataset: Dataset, lo: datetime, fetched_from: datetime) -> None:
        self.app, self.dataset = app, dataset
        g = dataset.granularity
        self.step = g.seconds * 1_000_000
        self.lo, self.lo_us = lo, _micros(lo)
        self.fetched_from = self._col(fetched_from)
        self.grids: dict[str, _Grid] = {}
        self.payloads: pd.DataFrame | None = None  # distributions
        # Per metric: its distributions in bucket order, and those buckets (to slice by time).
        self._payloads_of: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        self.empty_cols: set[int] = set()
        self.times: list[datetime] = []
        self.until = app.store.ingested_until(watermark(dataset))
        self.covered = self.fetched_from  # columns before this hold what the replay ingested
        self.readable = self.fetched_from  # reads must end here (the current cycle's window)
        self.source_rows = np.zeros(0, dtype=np.int64)  # per column, for the run log
        # The newest bucket analysed, kept here because quiet buckets' results wait in memory.
        self.analysed: datetime | None = None
        self._pending: list[AnalysisResult] = []  # committed quiet buckets, not yet written
        self._staged: list[AnalysisResult] = []  # this transaction's quiet buckets
        self._released = False  # this transaction writes the pending results
        self._analysed_before: datetime | None = None

    @classmethod
    def prepare(
        cls,
        app: App,
        dataset: Dataset,
        times: Sequence[datetime],
        read: dict[tuple[str, datetime, datetime], pd.DataFrame] | None = None,
    ) -> BulkDataset | None:
        """Read the whole range once, or None when the dataset replays cycle by cycle."""
        why = bulk_eligible(app, dataset)
        if why is not None or not times:
            if times:
                log.info("dataset '%s' replays cycle by cycle (%s)", dataset.name, why)
            return None
        store, g = app.store, dataset.granularity
        plan = cycles.plan_buckets(app, dataset, times[0])
        history = cycles.ingest_history(app, dataset)
        until = store.ingested_until(watermark(dataset))
        fetch_from, _ = window_after(dataset, until, plan.complete[0], plan.last, history)
        hi = g.next(g.last_complete(times[-1] - dataset.delay))
        if hi <= fetch_from:
            return None
        reach = history_buckets(dataset, 0) + 2
        lo = g.shift(min(fetch_from, g.shift(plan.complete[0], -history)), -reach)
        bulk = cls(app, dataset, lo, fetch_from)
        bulk.analysed = plan.analysed
        bulk.times = g.range(lo, hi)
        try:
            bulk._load(fetch_from, hi, {} if read is None else read)
        except VigilError as e:
            log.warning("dataset '%s' replays cycle by cycle: %s", dataset.name, e)
            return None
        return bulk

    def _col(self, bucket: datetime) -> int:
        return (_micros(bucket) - self.lo_us) // self.step

    def _load(
        self,
        fetch_from: datetime,
        hi: datetime,
        read: dict[tuple[str, datetime, datetime], pd.DataFrame],
    ) -> None:
        app, dataset, g = self.app, self.dataset, self.dataset.granularity
        store, names = app.store, [m.name for m in dataset.metrics]
        before = store.load_cells(names, g, self.lo, _FAR)
        key = (dataset.name, fetch_from, hi)
        if key not in read:
            read[key] = app.sources[dataset.config.source].fetch(dataset, fetch_from, hi)
        fetched = read[key]
        width = len(self.times)
        cols = self._cols_of(fetched["bucket"])
        present_cols = set(np.unique(cols).tolist())
        self.empty_cols = {c for c in range(self.fetched_from, width) if c not in present_cols}
        self.source_rows = np.bincount(cols, minlength=width).astype(np.int64)
        empty = sorted(self.times[c] for c in self.empty_cols)
        with store.transaction():
            store.upsert_values(dataset_stats_for_empty(fetched, dataset, empty), g)
        after = store.load_cells(names, g, self.lo, hi)
        for name in names:
            rows = fetched[fetched["metric"] == name]
            keys = sorted(set(before[name].segments) | set(after[name].segments))
            index = {k: i for i, k in enumerate(keys)}
            shape = (len(keys), width)
            grid = _Grid(
                keys,
                np.full(shape, np.nan),
                np.zeros(shape, dtype=bool),
                np.zeros(shape, dtype=bool),
                np.zeros(len(keys), dtype=bool),
                np.zeros(shape, dtype=bool),
                np.zeros(shape, dtype=bool),
            )
            r, c, v = self._place(before[name], index)
            nonzero = np.nan_to_num(v) != 0
            inside = c < width
            grid.before[r[inside & nonzero], c[inside & nonzero]] = True
            grid.beyond[r[~inside & nonzero]] = True
            r, c, v = self._place(after[name], index)
            grid.present[r, c] = True
            grid.values[r, c] = v
            if len(rows):
                r = np.array([index[k] for k in rows["segment"]], dtype=np.int64)
                c = self._cols_of(rows["bucket"])
                grid.source[r, c] = True
                v = rows["value"].to_numpy(dtype=float, na_value=np.nan)
                grid.source_nonzero[r, c] = np.nan_to_num(v) != 0
            self.grids[name] = grid
        payload_metrics = [m.name for m in dataset.metrics if m.stat in PAYLOAD_STATS]
        if payload_metrics:
            frame = store.load_payloads(payload_metrics, g, self.lo, hi)
            self.payloads = frame
            for metric in payload_metrics:  # by metric, then bucket
                rows = frame[frame["metric"] == metric]
                rows = rows.sort_values("bucket", kind="stable", ignore_index=True)
                times = rows["bucket"].to_numpy(dtype="datetime64[us]")
                self._payloads_of[metric] = (rows, times)

    def _cols_of(self, buckets: pd.Series) -> np.ndarray:
        micros = buckets.to_numpy(dtype="datetime64[us]").view(np.int64)
        return np.asarray((micros - self.lo_us) // self.step, dtype=np.int64)

    def _place(self, cells: Cells, index: dict[str, int]) -> tuple[Any, Any, Any]:
        """Rows, columns and values of stored cells at or after the grid's first column."""
        rows = np.array([index[k] for k in cells.segments], dtype=np.int64)[cells.rows]
        cols = (cells.buckets.view(np.int64) - self.lo_us) // self.step
        keep = cols >= 0
        return rows[keep], cols[keep], cells.values[keep]

    # --- one cycle ------------------------------------------------------------------------

    def ingest(self, plan: cycles.Plan, history: int) -> tuple[int, int, frozenset[datetime]]:
        """The cycle's ingest, from the grid: the window's zero fills go to the store.

        Returns (rows the source would have returned, rows written, empty buckets).
        """
        dataset, g = self.dataset, self.dataset.granularity
        start, end = window_after(dataset, self.until, plan.complete[0], plan.last, history)
        first, last = self._col(start), self._col(end)
        if first < self.fetched_from or last > len(self.times):
            raise AssertionError(f"replay window {start} – {end} outside what was read")
        empty = [c for c in range(first, last) if c in self.empty_cols]
        filled = [c for c in range(first, last) if c not in self.empty_cols]
        fills: list[pd.DataFrame] = []
        if filled:
            since = self._col(g.shift(self.times[filled[0]], -history_buckets(dataset, 0) - 1))
            for metric in (m for m in dataset.metrics if m.fill == "zero"):
                grid = self.grids[metric.name]
                known = self._known(grid, since, self.covered) | grid.source[:, first:last].any(1)
                for c in filled:
                    new = known & ~grid.source[:, c]
                    if not new.any():
                        continue
                    grid.values[new, c] = 0.0
                    grid.present[new, c] = True
                    keys = [k for k, n in zip(grid.keys, new, strict=True) if n]
                    fills.append(_zeros(metric.name, keys, self.times[c]))
        written = 0
        if fills:
            written = self.app.store.upsert_values(pd.concat(fills, ignore_index=True), g)
        self.covered = max(self.covered, last)
        self.readable = last
        self.until = end if self.until is None else max(self.until, end)
        fetched = int(self.source_rows[first:last].sum())
        missing = len(empty) if any(m.stat == "missing_datapoint" for m in dataset.metrics) else 0
        return fetched, fetched + written + missing, frozenset(self.times[c] for c in empty)

    def _known(self, grid: _Grid, since: int, covered: int) -> np.ndarray:
        """Rows the store would report with a non-zero value at or after column `since`, when
        it holds what the replay ingested before column `covered` and the rest as before."""
        since = max(since, 0)
        now = grid.present[:, since:covered] & (np.nan_to_num(grid.values[:, since:covered]) != 0)
        later = grid.before[:, max(since, covered) :]
        return np.asarray(grid.beyond | now.any(1) | later.any(1))

    def track_silence(
        self, plan: cycles.Plan, empty: frozenset[datetime], notify: bool = True
    ) -> None:
        """The per-cycle silence check, with the store's known series read from the grid."""
        app, dataset = self.app, self.dataset
        newest = plan.complete[-1]
        if newest not in empty:
            record_data(app, dataset, newest, notify)
            return
        since = self._col(dataset.granularity.shift(newest, -history_buckets(dataset, 0)))
        if any(self._known(grid, since, self.covered).any() for grid in self.grids.values()):
            first = next(b for b in sorted(empty) if b >= plan.complete[0])
            record_silence(app, dataset, first, notify)

    # --- results written late ---------------------------------------------------------
    #
    # A quiet bucket (no alert, no message, no incident touched) changes nothing but its
    # results, and nothing in the replay reads them back, so they wait in memory and go to the
    # store with the next busy bucket's transaction (before its routing reads history) or at
    # the end: one insert instead of one per cycle. A crash loses only such a quiet tail, which
    # a resumed replay or `vigil run` analyses again with the same outcome; a result that led
    # to an alert or a message is always committed with it.

    def begin(self) -> None:
        """A dataset-cycle's transaction starts."""
        self._staged, self._released, self._analysed_before = [], False, self.analysed

    def hold(self, results: list[AnalysisResult]) -> None:
        """Keep a quiet bucket's results for a later write."""
        self._staged.extend(results)

    def release(self) -> list[AnalysisResult]:
        """Every waiting result, to write in the current transaction."""
        out = ([] if self._released else self._pending) + self._staged
        self._released, self._staged = True, []
        return out

    def commit(self) -> None:
        """The transaction committed: what it wrote is stored, what it held waits."""
        if self._released:
            self._pending = []
        self._pending.extend(self._staged)
        self._staged, self._released = [], False

    def roll_back(self) -> None:
        """The transaction rolled back: its results and progress are forgotten."""
        self._staged, self._released, self.analysed = [], False, self._analysed_before

    def finish(self) -> None:
        """Write the waiting results; leave the store's ingest watermark where the per-cycle
        replay would have."""
        store = self.app.store
        with store.transaction():
            if self._pending:
                store.save_results(self._pending)
            if self.until is not None:
                store.set_ingested_until(watermark(self.dataset), self.until)
        self._pending = []

    @property
    def reader(self) -> Store:
        """The store as the analysis stage sees it: values and distributions from the grid."""
        return cast(Store, _Reader(self))

    def cells(
        self,
        names: list[str],
        start: datetime,
        end: datetime,
        windows: list[tuple[datetime, datetime]] | None,
    ) -> dict[str, Cells]:
        """What `Store.load_cells` returns at this point of the replay."""
        first, last = self._col(start), self._col(end)
        if first < 0 or last > self.readable:
            raise AssertionError(f"replay read {start} – {end} outside the grid")
        if windows:
            spans = [(max(self._col(a), first), min(self._col(b), last)) for a, b in windows]
            parts = [np.arange(a, b, dtype=np.int64) for a, b in spans if b > a]
            cols = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        else:
            cols = np.arange(first, last)
        cols = cols.astype(np.int64)
        out: dict[str, Cells] = {}
        for name in names:
            grid = self.grids[name]
            alive = np.flatnonzero(grid.present[:, first:last].any(1))
            present = grid.present[np.ix_(alive, cols)]
            rows, at = np.nonzero(present.T)[::-1]
            buckets = (self.lo_us + cols[at] * self.step).astype("datetime64[us]")
            values = grid.values[alive[rows], cols[at]]
            out[name] = Cells([grid.keys[i] for i in alive], rows, buckets, values)
        return out


class _Reader:
    """A store whose values come from a replay's grid; everything else is the real store."""

    def __init__(self, bulk: BulkDataset) -> None:
        self._bulk = bulk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bulk.app.store, name)

    def load_cells(
        self,
        metrics: list[str],
        granularity: Any,
        start: datetime,
        end: datetime,
        *,
        windows: list[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, Cells]:
        return self._bulk.cells(metrics, start, end, windows)

    def load_payloads(
        self, metrics: list[str], granularity: Any, start: datetime, end: datetime
    ) -> pd.DataFrame:
        bulk = self._bulk
        frame = bulk.payloads
        if frame is None:
            return bulk.app.store.load_payloads(metrics, granularity, start, end)
        span = np.array([to_naive_utc(start), to_naive_utc(end)], dtype="datetime64[us]")
        parts = []
        for name in metrics:
            if name in bulk._payloads_of:
                rows, times = bulk._payloads_of[name]
                first, last = np.searchsorted(times, span)
                parts.append(rows.iloc[first:last])
        if not parts:
            return frame.iloc[0:0]
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _zeros(metric: str, keys: list[str], bucket: datetime) -> pd.DataFrame:
    frame = pd.DataFrame({"metric": metric, "segment": keys, "value": 0.0})
    frame["bucket"] = np.datetime64(to_naive_utc(bucket), "us")
    return frame[["metric", "segment", "bucket", "value"]]


def _micros(instant: datetime) -> int:
    return int(np.datetime64(to_naive_utc(instant), "us").view(np.int64))
