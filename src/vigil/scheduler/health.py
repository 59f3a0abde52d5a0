"""Pipeline health: count a dataset's failing cycles, alert once past a limit, and on recovery."""

from __future__ import annotations

import hashlib
import html
from dataclasses import replace
from datetime import datetime

from vigil.app import App
from vigil.config.project import Dataset
from vigil.model import Bucket, Notification, SeriesKey


def record_failure(app: App, dataset: Dataset, error: str, bucket: datetime) -> None:
    """One more failed cycle; past `failure_alert_after` in a row, queue a failure alert once."""
    state = app.store.pipeline_state(dataset.name)
    failures = state.consecutive_failures + 1
    since = state.failing_since or app.clock.now()
    alerted = state.alerted
    limit = app.project.settings.defaults.failure_alert_after
    if failures >= limit and not alerted:
        text = (
            f"Pipeline failure: dataset {dataset.name} (source {dataset.config.source}) has failed"
            f" {failures} cycles in a row since {since:%Y-%m-%d %H:%M} UTC.\nLast error: {error}"
        )
        _queue(app, dataset, "failure", since, bucket, f"Pipeline failure: {dataset.name}", text)
        alerted = True
    app.store.save_pipeline_state(
        replace(
            state,
            consecutive_failures=failures,
            failing_since=since,
            alerted=alerted,
            last_error=error,
        )
    )


def record_success(app: App, dataset: Dataset, bucket: datetime) -> None:
    """A cycle worked: reset the streak, and say so if a failure had been alerted."""
    state = app.store.pipeline_state(dataset.name)
    if state.consecutive_failures == 0 and not state.alerted:
        return
    if state.alerted and state.failing_since is not None:
        text = (
            f"Recovered: dataset {dataset.name} works again after {state.consecutive_failures}"
            f" failed cycles since {state.failing_since:%Y-%m-%d %H:%M} UTC."
        )
        title = f"Pipeline recovered: {dataset.name}"
        _queue(app, dataset, "recovered", state.failing_since, bucket, title, text)
    app.store.save_pipeline_state(
        replace(state, consecutive_failures=0, failing_since=None, alerted=False, last_error="")
    )


def record_silence(app: App, dataset: Dataset, bucket: datetime) -> None:
    """The source returned no rows at all for `bucket`: say so once for the whole dataset."""
    state = app.store.pipeline_state(dataset.name)
    if state.silence_alerted:
        return
    since = state.silent_since or bucket
    text = (
        f"No data: dataset {dataset.name} (source {dataset.config.source}) has had no rows since"
        f" {since:%Y-%m-%d %H:%M} UTC. Its {len(dataset.metrics)} metrics are not checked until"
        " rows arrive again."
    )
    _queue(app, dataset, "no_data", since, bucket, f"No data: {dataset.name}", text)
    app.store.save_pipeline_state(replace(state, silent_since=since, silence_alerted=True))


def record_data(app: App, dataset: Dataset, bucket: datetime) -> None:
    """Rows arrived for `bucket`: end a silence, and say so if it was alerted."""
    state = app.store.pipeline_state(dataset.name)
    if state.silent_since is None or bucket < state.silent_since:
        # Rows from before the stall (a restart catching up, a past `check`) do not end it.
        return
    if state.silence_alerted:
        text = (
            f"Data is back: dataset {dataset.name} has rows again from"
            f" {bucket:%Y-%m-%d %H:%M} UTC (silent since {state.silent_since:%Y-%m-%d %H:%M})."
        )
        title = f"Data is back: {dataset.name}"
        _queue(app, dataset, "data_back", state.silent_since, bucket, title, text)
    app.store.save_pipeline_state(replace(state, silent_since=None, silence_alerted=False))


def channels_for(app: App, dataset: Dataset) -> list[str]:
    """Channels of every monitor that routes an analyzer of the dataset's metrics."""
    analyzers = {a.id for m in dataset.metrics for a in m.analyzers}
    channels: list[str] = []
    for monitor in app.project.monitors.values():
        if "*" in monitor.analyzers or analyzers & set(monitor.analyzers):
            channels.extend(monitor.channels)
    return list(dict.fromkeys(channels))


def _queue(
    app: App, dataset: Dataset, kind: str, since: datetime, bucket: datetime, title: str, text: str
) -> None:
    series = SeriesKey(dataset.name)
    notifications = []
    for channel in channels_for(app, dataset):
        raw = f"pipeline|{kind}|{dataset.name}|{since.isoformat()}|{channel}"
        notifications.append(
            Notification(
                key=hashlib.sha256(raw.encode()).hexdigest()[:32],
                monitor=f"pipeline:{kind}",
                channel=channel,
                series=series,
                bucket=Bucket(bucket, dataset.granularity),
                title=title,
                text=text,
                html=_html(text),
                image=None,
            )
        )
    app.store.enqueue(notifications)


def _html(text: str) -> str:
    first, _, rest = text.partition("\n")
    return f"⚠️ <b>{html.escape(first)}</b>" + (f"\n{html.escape(rest)}" if rest else "")
