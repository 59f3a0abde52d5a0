"""Ingest: read a dataset's window from its source, fill known-but-silent series, upsert."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from vigil.analysis import build_analyzer
from vigil.config.project import Dataset
from vigil.sources.base import Source
from vigil.store.base import Store
from vigil.timeutil import Granularity, to_naive_utc


def history_buckets(dataset: Dataset, minimum: int) -> int:
    """Buckets (of the dataset's granularity) of history its analyzers read before a target."""
    fine = dataset.granularity
    needs = [minimum]
    for metric in dataset.metrics:
        for analyzer in metric.analyzers:
            g = dataset.granularity_of(analyzer)
            reach = build_analyzer(analyzer, metric.analyzers).history(g)
            buckets = reach + (1 if g != fine else 0)
            needs.append(-(-buckets * g.seconds // fine.seconds))
    return max(needs)


def watermark(dataset: Dataset) -> str:
    """The key of the dataset's ingest watermark: its name and its metrics. A metric added
    to (or removed from) the dataset makes a new key, so the next cycle ingests the whole
    history again — the new metric has its baselines at once, instead of days of
    insufficient_baseline (values are upserted: the others are just written again)."""
    names = ",".join(sorted(m.name for m in dataset.metrics))
    return f"{dataset.name}@{hashlib.sha256(names.encode()).hexdigest()[:10]}"


def ingest_window(
    dataset: Dataset, store: Store, first: datetime, target: datetime, history: int
) -> tuple[datetime, datetime]:
    """[start, end) to read so that buckets first..target and their history are in the store.

    A store that already holds the history re-reads only `lookback` buckets before what is new,
    which picks up late rows; a new or long-idle store loads the whole history once.
    """
    return window_after(dataset, store.ingested_until(watermark(dataset)), first, target, history)


def window_after(
    dataset: Dataset, until: datetime | None, first: datetime, target: datetime, history: int
) -> tuple[datetime, datetime]:
    """`ingest_window` for a store whose ingest watermark is `until` (a replay keeps its own)."""
    g = dataset.granularity
    end = g.next(target)
    if dataset.config.snapshot:
        return target, end  # the present state, stamped with the newest bucket
    history_start = g.shift(first, -history)
    if until is None or until <= history_start:
        return history_start, end
    resume = min(g.floor(until), first)
    return g.shift(resume, -dataset.lookback), end


def tells_only_present(app: Any, dataset: Dataset) -> bool:
    """Whether the dataset's source can answer only for now: a snapshot, or a Python
    function that takes no window. Such a dataset has no history to backfill or replay."""
    if dataset.config.snapshot:
        return True
    check = getattr(app.sources.get(dataset.config.source), "tells_present", None)
    return bool(check(dataset)) if check is not None else False


@dataclass(frozen=True)
class Ingested:
    """What one ingest read and wrote, and which buckets came back with no rows at all."""

    fetched: int
    written: int
    empty: frozenset[datetime]


def ingest(
    dataset: Dataset, source: Source, store: Store, start: datetime, end: datetime
) -> Ingested:
    """Fetch [start, end), zero-fill silent series where the metric asks, upsert.

    A bucket for which the source returned no rows at all is not zero-filled: that is the
    whole dataset going silent (a stalled pipeline or a full outage), reported once for the
    dataset instead of as a drop in every series.
    """
    fetched = source.fetch(dataset, start, end)
    present = {pd.Timestamp(b).to_pydatetime() for b in fetched["bucket"].unique()}
    buckets = dataset.granularity.range(start, end)
    empty = frozenset(b for b in buckets if to_naive_utc(b) not in present)
    frame = fill_zeros(fetched, dataset, store, [b for b in buckets if b not in empty])
    frame = dataset_stats_for_empty(frame, dataset, sorted(empty))
    written = store.upsert_values(frame, dataset.granularity)
    written += roll_up(dataset, store, start, end)
    written += recompute_coarse(dataset, source, store, start, end)
    store.set_ingested_until(watermark(dataset), end)
    return Ingested(len(fetched), written, empty)


_AGGREGATES = {"sum": "sum", "mean": "mean", "min": "min", "max": "max", "last": "last"}


def coarse_window(
    coarse: Granularity, fine: Granularity, start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """The whole coarse buckets that the fine window [start, end) touches."""
    return coarse.floor(start), coarse.next(coarse.floor(end - fine.step))


def recompute_coarse(
    dataset: Dataset, source: Source, store: Store, start: datetime, end: datetime
) -> int:
    """Aggregate metrics that do not roll up (distinct counts, ratios, medians) at each coarser
    granularity in the source, for the coarse buckets that [start, end) touches."""
    written = 0
    chosen = tuple(m for m in dataset.metrics if m.rollup is None)
    if not chosen or not dataset.recompute_at_source:
        return 0
    for coarse in dataset.rollups:
        first, last = coarse_window(coarse, dataset.granularity, start, end)
        at_coarse = replace(dataset, granularity=coarse, metrics=chosen)
        frame = source.fetch(at_coarse, first, last)
        if not frame.empty:
            written += store.upsert_values(frame, coarse)
    return written


def roll_up(dataset: Dataset, store: Store, start: datetime, end: datetime) -> int:
    """Recompute the coarser buckets that [start, end) touches from the stored fine values."""
    written = 0
    fine = dataset.granularity
    for coarse in dataset.rollups:
        metrics = {m.name: m.rollup for m in dataset.metrics if m.rollup}
        first, last = coarse_window(coarse, fine, start, end)
        frame = store.load_values(list(metrics), fine, first, last)
        if frame.empty:
            continue
        starts = {
            b: to_naive_utc(coarse.floor(b.to_pydatetime())) for b in frame["bucket"].unique()
        }
        frame = frame.assign(bucket=frame["bucket"].map(starts))
        parts: list[pd.DataFrame] = []
        for how in sorted(set(metrics.values())):
            names = [m for m, r in metrics.items() if r == how]
            chosen = frame[frame["metric"].isin(names)].sort_values("bucket", kind="stable")
            grouped = chosen.groupby(["metric", "segment", "bucket"])["value"]
            parts.append(grouped.agg(_AGGREGATES[str(how)]).reset_index())
        rolled = pd.concat(parts, ignore_index=True)
        rolled["bucket"] = pd.to_datetime(rolled["bucket"]).astype("datetime64[us]")
        written += store.upsert_values(rolled, coarse)
    return written


def dataset_stats_for_empty(
    frame: pd.DataFrame, dataset: Dataset, empty: list[datetime]
) -> pd.DataFrame:
    """Dataset stats of buckets without rows: missing_datapoint 1, and the upload age growing.

    seconds_since_last_upload of an empty bucket is the previous bucket's age plus one bucket
    (unknown when the window starts empty).
    """
    stats = {m.stat: m.name for m in dataset.metrics if m.kind == "dataset"}
    if not stats or not empty:
        return frame
    g = dataset.granularity
    rows: list[dict[str, object]] = []
    if "missing_datapoint" in stats:
        rows += [
            {
                "metric": stats["missing_datapoint"],
                "segment": "{}",
                "bucket": to_naive_utc(b),
                "value": 1.0,
            }
            for b in empty
        ]
    name = stats.get("seconds_since_last_upload")
    if name is not None:
        known = frame[(frame["metric"] == name) & (frame["segment"] == "{}")]
        ages = {
            pd.Timestamp(b).to_pydatetime(): v
            for b, v in zip(known["bucket"], known["value"], strict=True)
        }
        for b in empty:
            previous = ages.get(to_naive_utc(g.shift(b, -1)))
            if previous is not None:
                age = previous + (g.next(b) - b).total_seconds()
                ages[to_naive_utc(b)] = age
                rows.append(
                    {"metric": name, "segment": "{}", "bucket": to_naive_utc(b), "value": age}
                )
    if not rows:
        return frame
    extra = pd.DataFrame(rows)
    extra["bucket"] = extra["bucket"].astype("datetime64[us]")
    return pd.concat([frame, extra], ignore_index=True)


def fill_zeros(
    frame: pd.DataFrame, dataset: Dataset, store: Store, buckets_to_fill: list[datetime]
) -> pd.DataFrame:
    """Add 0 for every bucket where a recently active series of a `fill: zero` metric has no row.

    No rows for a count means nothing happened — an outage — which must be seen, not skipped.
    """
    metrics = [m.name for m in dataset.metrics if m.fill == "zero"]
    buckets = np.array([to_naive_utc(b) for b in buckets_to_fill], dtype="datetime64[us]")
    if not metrics or not len(buckets):
        return frame
    since = dataset.granularity.shift(buckets_to_fill[0], -history_buckets(dataset, 0) - 1)
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
