"""Pipeline health: count a dataset's failing cycles, alert once past a limit, and on recovery."""

from __future__ import annotations

import hashlib
import html
from dataclasses import replace
from datetime import datetime

from vigil.app import App
from vigil.config.project import Dataset
from vigil.model import Bucket, DeliveryStatus, Notification, Segment, SeriesKey


def record_failure(
    app: App, dataset: Dataset, error: str, bucket: datetime, notify: bool = True
) -> None:
    """One more failed cycle; past `failure_alert_after` in a row, queue a failure alert once
    (`notify` off: the state is kept, the message is not queued)."""
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
        title = f"Pipeline failure: {dataset.name}"
        _queue(app, dataset, "failure", since, bucket, title, text, notify)
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


def record_success(app: App, dataset: Dataset, bucket: datetime, notify: bool = True) -> None:
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
        _queue(app, dataset, "recovered", state.failing_since, bucket, title, text, notify)
    app.store.save_pipeline_state(
        replace(state, consecutive_failures=0, failing_since=None, alerted=False, last_error="")
    )


def record_silence(app: App, dataset: Dataset, bucket: datetime, notify: bool = True) -> None:
    """The source returned no rows at all for `bucket`: say so once for the whole dataset
    (in one message with every other dataset that fell silent at the same time)."""
    state = app.store.pipeline_state(dataset.name)
    if state.silence_alerted:
        return
    since = state.silent_since or bucket
    _queue(app, dataset, "no_data", since, bucket, "", "", notify)
    app.store.save_pipeline_state(replace(state, silent_since=since, silence_alerted=True))


def record_data(app: App, dataset: Dataset, bucket: datetime, notify: bool = True) -> None:
    """Rows arrived for `bucket`: end a silence, and say so if it was alerted."""
    state = app.store.pipeline_state(dataset.name)
    if state.silent_since is None or bucket < state.silent_since:
        # Rows from before the stall (a restart catching up, a past `check`) do not end it.
        return
    if state.silence_alerted:
        _queue(app, dataset, "data_back", state.silent_since, bucket, "", "", notify)
    app.store.save_pipeline_state(replace(state, silent_since=None, silence_alerted=False))


def _names(datasets: list[Dataset]) -> str:
    names = [d.name for d in datasets]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _silence_message(
    datasets: list[Dataset], kind: str, since: datetime, bucket: datetime
) -> tuple[str, str]:
    """Title and text of a no-data or data-is-back message about one or more datasets."""
    one = len(datasets) == 1
    noun = f"dataset{'' if one else 's'} {_names(datasets)}"
    if kind == "data_back":
        text = (
            f"Data is back: {noun} {'has' if one else 'have'} rows again from"
            f" {bucket:%Y-%m-%d %H:%M} UTC (silent since {since:%Y-%m-%d %H:%M})."
        )
        return f"Data is back: {_names(datasets)}", text
    sources = sorted({d.config.source for d in datasets})
    metrics = sum(len(d.metrics) for d in datasets)
    text = (
        f"No data: {noun} (source{'' if len(sources) == 1 else 's'} {', '.join(sources)})"
        f" {'has' if one else 'have'} had no rows since {since:%Y-%m-%d %H:%M} UTC."
        f" {'Its' if one else 'Their'} {metrics} metrics are not checked until rows arrive again."
    )
    return f"No data: {_names(datasets)}", text


def channels_for(app: App, dataset: Dataset) -> list[str]:
    """Channels of every monitor that routes an analyzer of the dataset's metrics."""
    analyzers = {a.id for m in dataset.metrics for a in m.analyzers}
    channels: list[str] = []
    for monitor in app.project.monitors.values():
        if "*" in monitor.analyzers or analyzers & set(monitor.analyzers):
            channels.extend(monitor.channels)
    return list(dict.fromkeys(channels))


SILENCE_KINDS = ("no_data", "data_back")


def _queue(
    app: App,
    dataset: Dataset,
    kind: str,
    since: datetime,
    bucket: datetime,
    title: str,
    text: str,
    notify: bool = True,
) -> None:
    """Queue a pipeline message per channel. A no-data or data-is-back message joins the one
    of this cycle, still pending, about other datasets silent since the same time. With
    `notify` off (`--no-notify`) nothing is queued: nothing is sent, on any path."""
    if not notify:
        return
    # About: the datasets (joined by +), silent since when (a tag, so that joins match).
    series = SeriesKey(dataset.name, Segment.of({"since": since.isoformat()}))
    monitor = f"pipeline:{kind}"
    when = Bucket(bucket, dataset.granularity)
    notifications = []
    for channel in channels_for(app, dataset):
        if kind in SILENCE_KINDS and _joined(app, dataset, kind, channel, since, when):
            continue
        if kind in SILENCE_KINDS:
            title, text = _silence_message([dataset], kind, since, bucket)
        raw = f"pipeline|{kind}|{dataset.name}|{since.isoformat()}|{channel}"
        notifications.append(
            Notification(
                key=hashlib.sha256(raw.encode()).hexdigest()[:32],
                monitor=monitor,
                channel=channel,
                series=series,
                bucket=when,
                title=title,
                text=text,
                html=_html(text),
                image=None,
                kind="pipeline",
            )
        )
    app.store.enqueue(notifications)


def _joined(
    app: App, dataset: Dataset, kind: str, channel: str, since: datetime, bucket: Bucket
) -> bool:
    """Add `dataset` to a pending message of the same kind, channel, bucket and silence."""
    for pending in app.store.outbox((DeliveryStatus.PENDING,)):
        if (
            pending.monitor != f"pipeline:{kind}"
            or pending.channel != channel
            or pending.bucket.start != bucket.start
            or pending.series.segment.as_dict() != {"since": since.isoformat()}
        ):
            continue
        names = [*pending.series.metric.split("+"), dataset.name]
        known = {d.name: d for d in app.project.datasets}
        members = [known[n] for n in dict.fromkeys(names) if n in known]
        title, text = _silence_message(members, kind, since, bucket.start)
        app.store.rewrite_pending(
            pending.key,
            SeriesKey("+".join(d.name for d in members), pending.series.segment),
            title,
            text,
            _html(text),
        )
        return True
    return False


def _html(text: str) -> str:
    first, _, rest = text.partition("\n")
    return f"⚠️ <b>{html.escape(first)}</b>" + (f"\n{html.escape(rest)}" if rest else "")
