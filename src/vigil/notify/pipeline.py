"""Route anomalies through monitors, compose notifications, and deliver the outbox."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from vigil import secrets as registry
from vigil.config.project import Project
from vigil.errors import NotifyError
from vigil.model import (
    Alert,
    AlertStatus,
    AnalysisResult,
    Bucket,
    DeliveryStatus,
    FeedbackLabel,
    Notification,
    SeriesKey,
)
from vigil.notify.channels import Channel, Progress
from vigil.notify.chart import ChartData, render_chart
from vigil.notify.rules import (
    alert_severity,
    at_least,
    decide,
    has_grown,
    in_mute_window,
    passes_filters,
)
from vigil.store.base import Store
from vigil.timeutil import Granularity, get_zone

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10


def route(
    project: Project,
    store: Store,
    results: Iterable[AnalysisResult],
    at: datetime,
    now: datetime,
    *,
    notify: bool = True,
) -> list[Alert]:
    """Each monitor's decision for each anomaly it routes (and its filters let through)."""
    alerts: list[Alert] = []
    results = [r for r in results if r.is_anomaly]
    if not results:
        return alerts
    silences = store.list_silences(active_at=at)
    expected = expected_patterns(store, project.timezone)
    for result in results:
        if not result.is_anomaly:
            continue
        for monitor in project.monitors_for(result.analyzer):
            if not passes_filters(monitor, result):
                continue
            last = store.last_notified(
                monitor.id, result.analyzer, result.series, result.bucket.start
            )
            status = decide(
                bucket=result.bucket.start,
                at=at,
                last_notified=last,
                cooldown=project.cooldown_for(monitor),
                quiet=project.quiet_hours_for(monitor),
                tz=project.timezone,
                notify=notify,
                bucket_end=result.bucket.end,
                max_age=project.timestamp_offset_for(monitor),
                silenced=any(s.covers(monitor.id, result.series, at) for s in silences),
                mute_window=in_mute_window(at, monitor, project.timezone),
            )
            if status is AlertStatus.COOLDOWN and monitor.renotify_factor is not None:
                incident = store.open_incident(monitor.id, result.series)
                notified = incident.notified_deviation if incident else None
                if has_grown(result.deviation, notified, monitor.renotify_factor):
                    status = AlertStatus.NOTIFY if notify else AlertStatus.MUTED
            if status is AlertStatus.NOTIFY or status is AlertStatus.MUTED:
                key = pattern_key(monitor.id, result, project.timezone)
                if key in expected:
                    status = AlertStatus.EXPECTED
            severity = alert_severity(monitor, result.deviation)
            if not at_least(severity, monitor.min_severity):
                continue
            alerts.append(Alert(monitor.id, severity, result, status, now))
    return alerts


PatternKey = tuple[str, str, str, str, str]


def pattern_key(monitor: str, result: AnalysisResult, tz: str) -> PatternKey:
    """Monitor, analyzer, series and local time of day: what an `expected` verdict covers."""
    local = result.bucket.start.astimezone(get_zone(tz))
    return (
        monitor,
        result.analyzer,
        result.series.metric,
        result.series.segment.key,
        f"{local:%H:%M}",
    )


def expected_patterns(store: Store, tz: str) -> set[PatternKey]:
    """Alerts people marked `expected`: the same monitor, analyzer and series at the same
    time of day stay quiet from then on (a later, different verdict lifts it)."""
    out: set[PatternKey] = set()
    zone = get_zone(tz)
    for f in store.list_feedback():
        if f.label is FeedbackLabel.EXPECTED:
            at = f"{f.bucket.start.astimezone(zone):%H:%M}"
            out.add((f.monitor, f.analyzer, f.series.metric, f.series.segment.key, at))
    return out


@dataclass
class DeliveryReport:
    """What one pass over the outbox did."""

    sent: int = 0
    failed: int = 0
    errors: list[str] | None = None


RETRY_BASE = timedelta(seconds=30)

RETRY_MAX = timedelta(hours=1)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """The wait before the next attempt: the server's Retry-After, else exponential backoff."""
    if retry_after is not None:
        return timedelta(seconds=max(0.0, retry_after))
    backoff: timedelta = RETRY_BASE * 2 ** max(0, attempts - 1)
    return min(backoff, RETRY_MAX)


def deliver_outbox(
    store: Store,
    channels: Mapping[str, Channel],
    secrets: Iterable[str] = (),
    now: datetime | None = None,
    only: set[str] | None = None,
) -> DeliveryReport:
    """Send every pending, or failed and due, notification (of the keys in `only`, when
    given); record each outcome.

    5xx, 429 and timeouts are retried with exponential backoff (or the server's Retry-After);
    other client errors give up at once with the channel's error text.
    """
    report = DeliveryReport(errors=[])
    hidden = [s for s in secrets if s]
    due = now or datetime.now(UTC)
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SENDING)
    queued = [n for n in store.outbox(waiting) if only is None or n.key in only]
    if not queued:
        return report
    ready = {n.key for n in store.outbox(waiting, due)}
    # One channel's messages go out in order: once one of them waits for its retry (backoff or
    # the server's Retry-After), every later one of that channel waits too.
    held: set[str] = set()
    for item in queued:
        if item.channel in held:
            continue
        if item.key not in ready:
            held.add(item.channel)
            continue
        channel = channels.get(item.channel)
        attempts = item.attempts + 1
        if channel is None:
            store.update_delivery(
                item.key,
                DeliveryStatus.GAVE_UP,
                attempts,
                item.parts_sent,
                f"channel '{item.channel}' is not configured",
            )
            continue
        with store.delivery_lock(item.key) as mine:
            if mine:
                _attempt(store, channel, item, attempts, due, hidden, report, held)
    return report


def _attempt(
    store: Store,
    channel: Channel,
    item: Notification,
    attempts: int,
    due: datetime,
    hidden: list[str],
    report: DeliveryReport,
    held: set[str],
) -> None:
    """One delivery attempt of one notification, claimed first."""
    # Claimed (marked `sending`) before the request, only if still as read: of processes
    # sharing the outbox one sends it. A crash between the channel's answer and the outcome
    # below leaves it `sending`, and the next attempt knows the part may have arrived.
    if not store.claim_delivery(item.key, item.status, item.attempts):
        return
    progress = _progress(store, item.key, attempts)
    try:
        parts = channel.deliver(_resend_tagged(item, channel), progress)
    except NotifyError as e:
        text = redact(str(e), hidden)
        given_up = not e.retryable or attempts >= max_attempts(channel)
        status = DeliveryStatus.GAVE_UP if given_up else DeliveryStatus.FAILED
        retry_at = None if given_up else due + retry_delay(attempts, e.retry_after)
        parts_sent = max(item.parts_sent, e.parts_sent)
        store.update_delivery(item.key, status, attempts, parts_sent, text, retry_at)
        report.failed += 1
        report.errors.append(f"{item.channel}: {item.title}: {text}")  # type: ignore[union-attr]
        log.warning("delivery to %s failed: %s", item.channel, text)
        if not given_up:
            held.add(item.channel)
        return
    store.update_delivery(item.key, DeliveryStatus.SENT, attempts, parts, "")
    report.sent += 1


RESENT_TAG = "(resent after a restart: you may already have this message)"


def _resend_tagged(item: Notification, channel: Channel) -> Notification:
    """An item found `sending` died mid-send; unless the channel deduplicates, say so.

    Only the part that was in flight is tagged: the text when no part had gone out, else the
    title (the chart's caption).
    """
    if item.status is not DeliveryStatus.SENDING or channel.idempotent:
        return item
    if item.reply_to and item.parts_sent == 0:
        return replace(item, resent=True)  # an edit in flight: doing it again changes nothing
    if item.parts_sent >= 1:
        return replace(item, resent=True, title=f"{item.title} {RESENT_TAG}")
    return replace(
        item,
        resent=True,
        text=f"{RESENT_TAG}\n{item.text}",
        html=f"<i>{html.escape(RESENT_TAG)}</i>\n{item.html}",
    )


def _progress(store: Store, key: str, attempts: int) -> Progress:
    def record(parts: int, ref: str | None = None) -> None:
        if ref:
            store.set_remote_ref(key, ref)
        store.update_delivery(key, DeliveryStatus.SENDING, attempts, parts, "")

    return record


def max_attempts(channel: Channel) -> int:
    """The channel's `max_attempts` setting, where it has one."""
    config = getattr(channel, "config", None)
    found = getattr(config, "max_attempts", None)
    return found if isinstance(found, int) and found >= 1 else MAX_ATTEMPTS


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text` (these, and every one the project registered) with ***."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return registry.redact(text)


def sample_notification(project: Project, channel: str, now: datetime) -> Notification:
    """A clearly labelled test message with a sample chart, for `vigil notify test`."""
    granularity = Granularity.parse("15m", project.timezone)
    bucket = Bucket(granularity.last_complete(now), granularity)
    times = granularity.range(bucket.start - timedelta(hours=6), bucket.end)
    wave = 100 + 40 * np.sin(np.linspace(0, 3, len(times)))
    chart = ChartData(
        "Vigil test",
        "sample data",
        times,
        wave,
        {"yesterday": wave * 1.05},
        bucket.start,
        float(wave.min()),
        float(wave.max()),
    )
    text = (
        f"Vigil test message · {project.settings.name}\n"
        f"Channel '{channel}' is configured correctly; alerts will look like this."
    )
    return Notification(
        key=f"test-{channel}-{now.timestamp():.0f}",
        monitor="test",
        channel=channel,
        series=SeriesKey("vigil_test"),
        bucket=bucket,
        title="Vigil test message",
        text=text,
        html=f"<b>Vigil test message</b> · {html.escape(project.settings.name)}\n"
        f"Channel '{html.escape(channel)}' is configured correctly.",
        image=render_chart(chart, project.timezone),
        severity="info",
    )
