"""Retention: drop values and results older than the store's `retention_days`."""

from __future__ import annotations

from datetime import datetime, timedelta

from vigil.app import App
from vigil.model import RunRecord

# How often `vigil run` prunes (and once when it starts leading).
PRUNE_EVERY = timedelta(days=1)


def cutoffs(app: App, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The oldest bucket kept for values and for results (None keeps everything)."""
    retention = app.project.settings.store.retention_days
    values = None if retention.values is None else now - timedelta(days=retention.values)
    results = None if retention.results is None else now - timedelta(days=retention.results)
    return values, results


def prune(app: App, now: datetime) -> dict[str, int]:
    """Delete what is past retention, log it in the run log, return rows deleted per table."""
    values_before, results_before = cutoffs(app, now)
    if values_before is None and results_before is None:
        return {}
    counts = app.store.prune(values_before, results_before)
    finished = app.clock.now()
    app.store.record_runs(
        [RunRecord("", "prune", "*", "retention", now, finished, "ok", 0, sum(counts.values()))]
    )
    return counts
