"""`vigil backfill`: ingest and analyse history a day at a time, resumable and quiet by default."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from vigil.app import App
from vigil.config.project import Dataset
from vigil.scheduler.cycle import DatasetOutcome, Plan, process_dataset
from vigil.scheduler.ingest import history_buckets, tells_only_present


@dataclass
class BackfillReport:
    """What a backfill did."""

    buckets: int = 0
    skipped: int = 0
    results: int = 0
    anomalies: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def backfill_buckets(app: App, dataset: Dataset, start: datetime, end: datetime) -> list[datetime]:
    """Complete buckets of the dataset that start in [start, end)."""
    g = dataset.granularity
    ready = app.clock.now() - dataset.delay
    return [b for b in g.range(start, end) if g.next(b) <= ready]


def run_backfill(
    app: App,
    start: datetime,
    end: datetime,
    *,
    metrics: set[str] | None = None,
    notify: bool = False,
    reanalyze: bool = False,
    on_progress: Callable[[int], None] = lambda _: None,
) -> BackfillReport:
    """Process every complete bucket in [start, end), oldest first, one day-chunk per transaction.

    A chunk whose buckets all have results is skipped (unless `reanalyze`), so an interrupted
    backfill resumes where it stopped. Notifications obey each monitor's
    dataset_timestamp_offset, so old anomalies are logged but not sent.
    """
    report = BackfillReport()
    run_id = uuid.uuid4().hex[:12]
    with app.session():
        for dataset in app.project.datasets:
            names = [m.name for m in dataset.metrics if metrics is None or m.name in metrics]
            if not names:
                continue
            if tells_only_present(app, dataset):
                what = "its query" if dataset.config.snapshot else "its ingest function"
                report.notes.append(
                    f"dataset '{dataset.name}' is a snapshot: {what} tells the present"
                    " state, so it has no history to backfill (it is checked from now on)"
                )
                continue
            _backfill_dataset(
                app, dataset, start, end, names, notify, reanalyze, run_id, report, on_progress
            )
    return report


def _backfill_dataset(
    app: App,
    dataset: Dataset,
    start: datetime,
    end: datetime,
    names: list[str],
    notify: bool,
    reanalyze: bool,
    run_id: str,
    report: BackfillReport,
    on_progress: Callable[[int], None],
) -> None:
    g = dataset.granularity
    buckets = backfill_buckets(app, dataset, start, end)
    per_chunk = max(1, 86400 // g.seconds) if not g.is_calendar else 31
    history = history_buckets(dataset, 0)
    first = True
    for i in range(0, len(buckets), per_chunk):
        chunk = buckets[i : i + per_chunk]
        done = app.store.analyzed_buckets(names, g, chunk[0], g.next(chunk[-1]))
        if not reanalyze and done.issuperset(chunk):
            report.skipped += len(chunk)
            on_progress(len(chunk))
            continue
        ingest_from = g.shift(chunk[0], -(history if first else dataset.lookback))
        first = False
        outcome = DatasetOutcome(dataset.name)
        process_dataset(
            app,
            dataset,
            Plan(chunk, ingest_from=ingest_from),
            app.clock.now(),
            outcome,
            notify=notify,
            reanalyze=reanalyze,
            metrics=set(names),
            run=(run_id, "backfill"),
        )
        if outcome.error:
            report.errors.append(outcome.error)
            return
        report.buckets += len(chunk)
        report.results += len(outcome.results)
        report.anomalies += len(outcome.anomalies)
        on_progress(len(chunk))
