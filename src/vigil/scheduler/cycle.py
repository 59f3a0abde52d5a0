"""One evaluation cycle: for every dataset ingest → store → analyze → route → outbox → deliver."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vigil.analysis.runner import analyze_dataset
from vigil.app import App
from vigil.config.project import Dataset
from vigil.errors import VigilError
from vigil.model import Alert, AlertStatus, AnalysisResult
from vigil.notify.pipeline import DeliveryReport, compose, deliver_outbox, route
from vigil.scheduler.ingest import history_buckets, ingest, ingest_window

log = logging.getLogger(__name__)


@dataclass
class DatasetOutcome:
    """What a cycle did for one dataset."""

    dataset: str
    buckets: list[datetime] = field(default_factory=list)
    rows_ingested: int = 0
    results: list[AnalysisResult] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    error: str | None = None

    @property
    def anomalies(self) -> list[AnalysisResult]:
        """The results that flagged an anomaly."""
        return [r for r in self.results if r.is_anomaly]


@dataclass
class CycleReport:
    """What one cycle did, for the CLI and the run log."""

    at: datetime
    outcomes: list[DatasetOutcome]
    delivery: DeliveryReport

    @property
    def alerts(self) -> list[Alert]:
        """Every monitor decision of the cycle."""
        return [a for o in self.outcomes for a in o.alerts]

    @property
    def sent_alerts(self) -> list[Alert]:
        """The alerts that were notified (or would have been, when muted)."""
        return [a for a in self.alerts if a.status in (AlertStatus.NOTIFY, AlertStatus.MUTED)]

    @property
    def errors(self) -> list[str]:
        """Dataset and delivery errors."""
        return [o.error for o in self.outcomes if o.error] + list(self.delivery.errors or [])


def run_cycle(app: App, at: datetime, *, notify: bool = True) -> CycleReport:
    """Evaluate the last complete bucket of every dataset at `at`, then deliver the outbox.

    A failing dataset is reported and skipped; the others still run.
    """
    outcomes = []
    with app.session():
        for dataset in app.project.datasets:
            outcome = DatasetOutcome(dataset.name)
            try:
                # Ingest, results, decisions and the outbox commit together: a crash
                # (or an error) leaves all of a dataset's cycle or none of it.
                with app.store.transaction():
                    _process(app, dataset, at, notify, outcome)
            except VigilError as e:
                outcome.error = f"dataset '{dataset.name}': {_redact(app, str(e))}"
                log.error("%s", outcome.error)
            outcomes.append(outcome)
        delivery = deliver_outbox(app.store, app.channels, app.project.secrets)
    return CycleReport(at, outcomes, delivery)


def buckets_due(app: App, dataset: Dataset, at: datetime) -> list[datetime]:
    """Buckets to analyse at `at`: the last complete one, plus any missed since the last run."""
    g = dataset.granularity
    target = g.last_complete(at - dataset.delay)
    last = app.store.last_analyzed([m.name for m in dataset.metrics], g)
    if last is None or last >= target:
        return [target]
    oldest = g.last_complete(at - dataset.delay - app.project.settings.defaults.catch_up)
    return g.range(max(g.next(last), oldest), g.next(target))


def _process(
    app: App, dataset: Dataset, at: datetime, notify: bool, outcome: DatasetOutcome
) -> None:
    store, project = app.store, app.project
    buckets = buckets_due(app, dataset, at)
    outcome.buckets = buckets
    minimum = project.settings.defaults.history // dataset.granularity.step
    history = history_buckets(dataset, int(minimum))
    start, end = ingest_window(dataset, store, buckets[0], buckets[-1], history)
    source = app.sources[dataset.config.source]
    outcome.rows_ingested = ingest(dataset, source, store, start, end)
    for bucket in buckets:
        results = analyze_dataset(dataset, store, bucket)
        alerts = route(project, store, results, at, app.clock.now(), notify=notify)
        composed = compose(project, store, alerts)
        store.save_results(results)
        store.save_alerts(alerts)
        store.enqueue(composed.notifications)
        outcome.results.extend(results)
        outcome.alerts.extend(alerts)
        outcome.charts.extend(composed.charts)


def _redact(app: App, text: str) -> str:
    for secret in app.project.secrets:
        text = text.replace(secret, "***")
    return text
