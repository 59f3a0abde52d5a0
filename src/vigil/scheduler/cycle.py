"""One evaluation cycle: for every dataset ingest → store → analyze → route → outbox → deliver."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from croniter import croniter

from vigil.analysis.runner import analyze_dataset
from vigil.app import App
from vigil.config.project import Dataset
from vigil.errors import SourceError, VigilError
from vigil.model import Alert, AlertStatus, AnalysisResult, RunRecord
from vigil.notify.compose import compose
from vigil.notify.incidents import track_incidents
from vigil.notify.pipeline import DeliveryReport, deliver_outbox, redact, route
from vigil.scheduler.health import record_data, record_failure, record_silence, record_success
from vigil.scheduler.ingest import (
    Ingested,
    history_buckets,
    ingest,
    ingest_window,
    tells_only_present,
)
from vigil.store.base import Store
from vigil.timeutil import get_zone

if TYPE_CHECKING:
    from vigil.scheduler.replay import BulkDataset

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
    skipped: str | None = None
    # Buckets that already had their results (a past check or replay): nothing was redone.
    already_checked: list[datetime] = field(default_factory=list)
    empty: list[datetime] = field(default_factory=list)
    # Seconds spent per stage (ingest, analyze, route, persist, commit), for -v and the run log.
    timings: dict[str, float] = field(default_factory=dict)

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
    run_id: str = ""

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


@dataclass(frozen=True)
class Plan:
    """Buckets to analyse for a dataset: complete ones first, then possibly the partial one."""

    complete: list[datetime]
    partial: datetime | None = None
    ingest_from: datetime | None = None
    # The newest bucket already analysed when the plan was made, if the plan read it.
    analysed: datetime | None = None
    analysed_known: bool = False

    @property
    def last(self) -> datetime:
        """The newest bucket of the plan."""
        return self.partial or self.complete[-1]


def run_cycle(
    app: App,
    at: datetime,
    *,
    notify: bool = True,
    scheduled_only: bool = False,
    kind: str = "cycle",
    bulk: Mapping[str, BulkDataset] | None = None,
    runs: list[RunRecord] | None = None,
    datasets: Collection[str] | None = None,
) -> CycleReport:
    """Evaluate every dataset's newly complete buckets at `at`, then deliver the outbox.

    With `datasets`, only those (a worker's job is one dataset's cycle).

    With `scheduled_only`, a dataset with a cron `schedule` runs only at its fire times.
    A failing dataset is reported and skipped; the others still run. A dataset in `bulk`
    (a replay's) takes its values from that instead of its source. With `runs`, the run-log
    records are added to it for the caller to write (a replay writes several cycles' at once).
    """
    run_id = uuid.uuid4().hex[:12]
    outcomes = []
    records: list[RunRecord] = []
    with app.session():
        for dataset in app.project.datasets:
            if datasets is not None and dataset.name not in datasets:
                continue
            outcome = DatasetOutcome(dataset.name)
            if scheduled_only and not is_fire_time(dataset, at):
                outcome.skipped = "not scheduled"
            elif is_past(app, dataset, at) and tells_only_present(app, dataset):
                outcome.skipped = "a snapshot tells only the present (no history to replay)"
            else:
                held = (bulk or {}).get(dataset.name)
                plan = plan_buckets(app, dataset, at, held)
                process_dataset(
                    app,
                    dataset,
                    plan,
                    at,
                    outcome,
                    notify=notify,
                    run=(run_id, kind),
                    bulk=held,
                    runs=records,
                )
            outcomes.append(outcome)
        started = app.clock.now()
        delivery = deliver_outbox(app.store, app.channels, app.project.secrets, started)
        records.append(
            RunRecord(
                run_id,
                kind,
                "*",
                "deliver",
                started,
                app.clock.now(),
                "error" if delivery.failed else "ok",
                delivery.sent + delivery.failed,
                delivery.sent,
                "\n".join(delivery.errors or []),
            )
        )
        if runs is None:
            app.store.record_runs(records)
        else:
            runs.extend(records)
    return CycleReport(at, outcomes, delivery, run_id)


def is_past(app: App, dataset: Dataset, at: datetime) -> bool:
    """Whether a cycle at `at` is a look back (a replay, a backtest, a check of an earlier
    time) rather than the present: more than a bucket and the delay before now."""
    return at < app.clock.now() - dataset.granularity.step - dataset.delay


def is_fire_time(dataset: Dataset, at: datetime) -> bool:
    """Whether a dataset without a cron runs at `at` (always) or its cron fires at that minute."""
    schedule = dataset.config.schedule
    if schedule is None:
        return True
    local = at.astimezone(get_zone(dataset.granularity.tz)).replace(tzinfo=None)
    return bool(croniter.match(schedule, local - timedelta(seconds=local.second)))


def plan_buckets(app: App, dataset: Dataset, at: datetime, bulk: BulkDataset | None = None) -> Plan:
    """The last complete bucket at `at − delay`, plus any missed since the last analysed one
    (downtime), no further back than the grace period; and the current one if partial is on."""
    g = dataset.granularity
    ready = at - dataset.delay
    target = g.last_complete(ready)
    if bulk is not None:
        last = bulk.analysed  # a replay knows what it analysed (some results wait in memory)
    else:
        last = app.store.last_analyzed([m.name for m in dataset.metrics], g)
    if last is None or last >= target:
        complete = [target]
    else:
        oldest = g.floor(ready - dataset.grace_period)
        complete = g.range(max(g.next(last), oldest), g.next(target))
    current = g.floor(ready)
    partial = current if dataset.allow_partial and current > target else None
    return Plan(complete, partial, analysed=last, analysed_known=True)


def process_dataset(
    app: App,
    dataset: Dataset,
    plan: Plan,
    at: datetime,
    outcome: DatasetOutcome,
    *,
    notify: bool = True,
    reanalyze: bool = False,
    metrics: set[str] | None = None,
    run: tuple[str, str] = ("", "cycle"),
    bulk: BulkDataset | None = None,
    runs: list[RunRecord] | None = None,
) -> None:
    """Ingest the plan's window, then analyse, route and queue each bucket; one transaction.

    Run-log records and the pipeline's failure streak are written after the transaction, so
    a failure is logged even though its partial work is rolled back. With `runs`, the records
    are added to it for the caller to write (one statement per cycle).
    """
    records: list[RunRecord] = []
    outcome.buckets = list(plan.complete) + ([plan.partial] if plan.partial else [])
    try:
        with _bulk_transaction(bulk), app.store.transaction():
            _ingest_stage(app, dataset, plan, outcome, records, run, bulk, notify)
            _analysis_stage(
                app, dataset, plan, at, outcome, records, run, notify, reanalyze, metrics, bulk
            )
            committing = time.perf_counter()
        outcome.timings["commit"] = time.perf_counter() - committing
        records.append(_timed(app, run, dataset, "commit", outcome.timings["commit"], 0, 0))
        log.info(
            "dataset '%s': %s",
            dataset.name,
            ", ".join(f"{k} {v:.3f} s" for k, v in outcome.timings.items()),
        )
    except VigilError as e:
        outcome.error = f"dataset '{dataset.name}': {_redact(app, str(e))}"
        log.error("%s", outcome.error)
        if isinstance(e, SourceError):
            records.append(
                _record(app, run, dataset, "ingest", app.clock.now(), "error", 0, 0, outcome.error)
            )
            record_failure(app, dataset, outcome.error, plan.last, notify)
    else:
        record_success(app, dataset, plan.last, notify)
    if runs is None:
        app.store.record_runs(records)
    else:
        runs.extend(records)


@contextmanager
def _bulk_transaction(bulk: BulkDataset | None) -> Iterator[None]:
    """A replay's in-memory state follows the store's transaction: kept or rolled back."""
    if bulk is None:
        yield
        return
    bulk.begin()
    try:
        yield
    except BaseException:
        bulk.roll_back()
        raise
    bulk.commit()


def _ingest_stage(
    app: App,
    dataset: Dataset,
    plan: Plan,
    outcome: DatasetOutcome,
    records: list[RunRecord],
    run: tuple[str, str],
    bulk: BulkDataset | None = None,
    notify: bool = True,
) -> None:
    store = app.store
    history = ingest_history(app, dataset)
    began = app.clock.now()
    tick = time.perf_counter()
    if bulk is not None:
        result = Ingested(*bulk.ingest(plan, history))
    else:
        start, end = ingest_window(dataset, store, plan.complete[0], plan.last, history)
        if plan.ingest_from is not None:
            start = plan.ingest_from
        source = app.sources[dataset.config.source]
        result = _with_retries(app, lambda: ingest(dataset, source, store, start, end))
    outcome.timings["ingest"] = time.perf_counter() - tick
    outcome.rows_ingested = result.written
    outcome.empty = sorted(result.empty)
    records.append(
        _record(app, run, dataset, "ingest", began, "ok", result.fetched, result.written)
    )
    if bulk is not None:
        bulk.track_silence(plan, result.empty, notify)
    else:
        _track_silence(app, dataset, plan, result.empty, notify)


def ingest_history(app: App, dataset: Dataset) -> int:
    """Buckets of history an ingest keeps before its first target."""
    g = dataset.granularity
    minimum = int(app.project.settings.defaults.history // g.step) if not g.is_month else 0
    return history_buckets(dataset, minimum)


def _track_silence(
    app: App, dataset: Dataset, plan: Plan, empty: frozenset[datetime], notify: bool = True
) -> None:
    """A dataset whose source returns no rows for its newest bucket has gone silent."""
    newest = plan.complete[-1]
    if newest not in empty:
        record_data(app, dataset, newest, notify)
        return
    names = [m.name for m in dataset.metrics]
    since = dataset.granularity.shift(newest, -history_buckets(dataset, 0))
    if any(app.store.known_segments(names, dataset.granularity, since).values()):
        first = next(b for b in sorted(empty) if b >= plan.complete[0] and b in empty)
        record_silence(app, dataset, first, notify)


def _with_retries(app: App, attempt: Callable[[], Ingested]) -> Ingested:
    """Run the ingest, retrying a failing source with exponential backoff."""
    defaults = app.project.settings.defaults
    delay = defaults.retry_backoff.total_seconds()
    for number in range(1, defaults.retries + 1):
        try:
            return attempt()
        except SourceError as e:
            if number == defaults.retries or e.permanent:
                raise
            log.warning("source failed (attempt %d of %d): %s", number, defaults.retries, e)
            if not app.clock.sleep(delay):
                raise
            delay *= 2
    raise AssertionError("unreachable")


def _analysis_stage(
    app: App,
    dataset: Dataset,
    plan: Plan,
    at: datetime,
    outcome: DatasetOutcome,
    records: list[RunRecord],
    run: tuple[str, str],
    notify: bool,
    reanalyze: bool,
    metrics: set[str] | None,
    bulk: BulkDataset | None = None,
) -> None:
    store, project = app.store, app.project
    reader = store if bulk is None else bulk.reader
    buckets = [(b, False) for b in _settled(app, dataset, plan.complete, at)]
    if plan.partial is not None and len(buckets) == len(plan.complete):
        buckets.append((plan.partial, True))
    series = alerts_count = queued = 0
    spent = {"analyze": 0.0, "route": 0.0, "persist": 0.0}
    if reanalyze:
        last = None
    elif plan.analysed_known:
        last = plan.analysed  # nothing was analysed since the plan read it
    else:
        last = store.last_analyzed([m.name for m in dataset.metrics], dataset.granularity)
    for bucket, partial in buckets:
        tick = time.perf_counter()
        # Past the newest analysed bucket no final result exists: nothing to skip, no query.
        fresh = not reanalyze and (last is None or bucket > last)
        results = analyze_dataset(
            dataset,
            reader,
            bucket,
            reanalyze=reanalyze or fresh,
            partial=partial,
            metrics=metrics,
        )
        if not results and not partial and last is not None and bucket <= last:
            outcome.already_checked.append(bucket)
        if not partial:
            results += _coarse_results(dataset, store, bucket, reanalyze, metrics)
        tock = time.perf_counter()
        if bulk is not None and any(r.is_anomaly for r in results):
            store.save_results(bulk.release())  # the history routing and charts may read
        alerts = route(project, store, results, at, app.clock.now(), notify=notify)
        composed = compose(project, store, alerts)
        alerts = composed.alerts
        tracked = track_incidents(project, store, results, alerts)
        routed = time.perf_counter()
        if bulk is not None and not (alerts or composed.notifications or tracked.changed):
            bulk.hold(results)  # a quiet bucket: written with the next busy one (see hold)
        else:
            store.save_results((bulk.release() if bulk is not None else []) + results)
        if bulk is not None and results and not partial:
            bulk.analysed = bucket if bulk.analysed is None else max(bulk.analysed, bucket)
        store.save_alerts(alerts)
        store.enqueue(composed.notifications)
        store.enqueue(tracked.resolved)
        spent["analyze"] += tock - tick
        spent["route"] += routed - tock
        spent["persist"] += time.perf_counter() - routed
        outcome.results.extend(results)
        outcome.alerts.extend(alerts)
        outcome.charts.extend(composed.charts)
        series, alerts_count, queued = (
            series + len(results),
            alerts_count + len(alerts),
            (queued + len(composed.notifications)),
        )
    outcome.buckets = [b for b, _ in buckets]
    outcome.timings.update(spent)
    counts = {
        "analyze": (len(buckets), series),
        "route": (series, alerts_count),
        "persist": (series + alerts_count, queued),
    }
    for stage, seconds in spent.items():
        records.append(_timed(app, run, dataset, stage, seconds, *counts[stage]))


def _coarse_results(
    dataset: Dataset, store: Store, bucket: datetime, reanalyze: bool, metrics: set[str] | None
) -> list[AnalysisResult]:
    """Analyzers on coarser buckets run when the fine bucket completes their bucket."""
    fine = dataset.granularity
    out: list[AnalysisResult] = []
    for coarse in dataset.rollups:
        start = coarse.floor(bucket)
        if coarse.next(start) == fine.next(bucket):
            out += analyze_dataset(
                dataset, store, start, reanalyze=reanalyze, metrics=metrics, granularity=coarse
            )
    return out


def _settled(app: App, dataset: Dataset, buckets: list[datetime], at: datetime) -> list[datetime]:
    """The buckets, up to the first whose values changed within the batch cooldown."""
    if dataset.batch_cooldown is None:
        return buckets
    names = [m.name for m in dataset.metrics]
    out = []
    for bucket in buckets:
        changed = app.store.last_change(names, dataset.granularity, bucket)
        if changed is not None and at - changed < dataset.batch_cooldown:
            break
        out.append(bucket)
    return out


def _record(
    app: App,
    run: tuple[str, str],
    dataset: Dataset,
    stage: str,
    began: datetime,
    status: str,
    rows_in: int,
    rows_out: int,
    error: str = "",
) -> RunRecord:
    return RunRecord(
        run[0],
        run[1],
        dataset.name,
        stage,
        began,
        app.clock.now(),
        status,
        rows_in,
        rows_out,
        error,
    )


def _timed(
    app: App,
    run: tuple[str, str],
    dataset: Dataset,
    stage: str,
    seconds: float,
    rows_in: int,
    rows_out: int,
) -> RunRecord:
    """A run-log record for a stage measured with the process's own timer (the app clock may
    be a manual one): it ends now and lasted `seconds`."""
    end = app.clock.now()
    return RunRecord(
        run[0],
        run[1],
        dataset.name,
        stage,
        end - timedelta(seconds=seconds),
        end,
        "ok",
        rows_in,
        rows_out,
        "",
    )


def _redact(app: App, text: str) -> str:
    return redact(text, app.project.secrets)
