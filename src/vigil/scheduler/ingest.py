"""Ingest: read a dataset's window from its source, fill known-but-silent series, upsert."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from vigil.analysis import build_analyzer
from vigil.config.project import Dataset
from vigil.sources.base import Source
from vigil.store.base import Store
from vigil.timeutil import to_naive_utc


def history_buckets(dataset: Dataset, minimum: int) -> int:
    """Buckets of history the dataset's analyzers read before a target bucket."""
    needs = [
        build_analyzer(a).history(dataset.granularity) for m in dataset.metrics for a in m.analyzers
    ]
    return max([minimum, *needs])


def ingest_window(
    dataset: Dataset, store: Store, first: datetime, target: datetime, history: int
) -> tuple[datetime, datetime]:
    """[start, end) to read so that buckets first..target and their history are in the store.

    A store that already holds the history re-reads only `lookback` buckets before what is new,
    which picks up late rows; a new or long-idle store loads the whole history once.
    """
    g = dataset.granularity
    end = g.next(target)
    history_start = g.shift(first, -history)
    until = store.ingested_until(dataset.name)
    if until is None or until <= history_start:
        return history_start, end
    resume = min(g.floor(until), first)
    return g.shift(resume, -dataset.lookback), end


def ingest(
    dataset: Dataset, source: Source, store: Store, start: datetime, end: datetime
) -> tuple[int, int]:
    """Fetch [start, end), zero-fill silent series where the metric asks, upsert.

    Returns the values fetched and the values written (fetched plus zero-filled).
    """
    fetched = source.fetch(dataset, start, end)
    frame = fill_zeros(fetched, dataset, store, start, end)
    written = store.upsert_values(frame, dataset.granularity)
    store.set_ingested_until(dataset.name, end)
    return len(fetched), written


def fill_zeros(
    frame: pd.DataFrame, dataset: Dataset, store: Store, start: datetime, end: datetime
) -> pd.DataFrame:
    """Add 0 for every bucket where a recently active series of a `fill: zero` metric has no row.

    No rows for a count means nothing happened — an outage — which must be seen, not skipped.
    """
    metrics = [m.name for m in dataset.metrics if m.fill == "zero"]
    buckets = np.array(
        [to_naive_utc(b) for b in dataset.granularity.range(start, end)], dtype="datetime64[us]"
    )
    if not metrics or not len(buckets):
        return frame
    since = dataset.granularity.shift(start, -history_buckets(dataset, 0) - 1)
    known = store.known_segments(metrics, dataset.granularity, since)
    returned = frame.loc[frame["metric"].isin(metrics), ["metric", "segment"]].drop_duplicates()
    pairs = {(m, s) for m, segments in known.items() for s in segments}
    pairs.update(zip(returned["metric"], returned["segment"], strict=True))
    if not pairs:
        return frame
    ordered = sorted(pairs)
    grid = pd.DataFrame(
        {
            "metric": np.repeat([m for m, _ in ordered], len(buckets)),
            "segment": np.repeat([s for _, s in ordered], len(buckets)),
            "bucket": np.tile(buckets, len(ordered)),
        }
    )
    merged = grid.merge(frame[["metric", "segment", "bucket"]], how="left", indicator=True)
    missing = grid[(merged["_merge"] == "left_only").to_numpy()].copy()
    if missing.empty:
        return frame
    missing["value"] = 0.0
    return pd.concat([frame, missing], ignore_index=True)
