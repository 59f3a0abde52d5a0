"""Route anomalies through monitors, compose notifications, and deliver the outbox."""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from vigil import secrets as registry
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.project import Project
from vigil.config.schema import MonitorConfig
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
    Severity,
)
from vigil.notify import grouping
from vigil.notify.channels import Channel
from vigil.notify.chart import ChartData, render_chart
from vigil.notify.message import Message, MessageInputs, compose_message, render_links
from vigil.notify.rules import (
    alert_severity,
    at_least,
    channels_for,
    decide,
    has_grown,
    in_mute_window,
    passes_filters,
)
from vigil.notify.templates import TemplateError, render, template_context
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
    alerts = []
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


@dataclass(frozen=True)
class Composed:
    """Notifications ready for the outbox, and the chart files saved alongside."""

    notifications: list[Notification]
    charts: list[Path]
    # The alerts as decided: an anomaly that joins an incident already told is held.
    alerts: list[Alert] = field(default_factory=list)


def compose(project: Project, store: Store, alerts: list[Alert]) -> Composed:
    """Per channel: one notification per monitor, series and bucket, with its chart — or, for
    digest monitors, one per monitor and bucket summarising every anomaly."""
    groups: dict[tuple[str, SeriesKey, Bucket], list[Alert]] = defaultdict(list)
    for alert in alerts:
        if alert.status is AlertStatus.NOTIFY:
            groups[(alert.monitor, alert.result.series, alert.result.bucket)].append(alert)
    notifications: list[Notification] = []
    charts: list[Path] = []
    digests: dict[tuple[str, Bucket], list[list[Alert]]] = defaultdict(list)
    bundles: dict[tuple[str, str, Bucket], list[list[Alert]]] = defaultdict(list)
    for (monitor_id, _, bucket), group in groups.items():
        monitor = project.monitors[monitor_id]
        if monitor.mode == "digest":
            digests[(monitor_id, bucket)].append(group)
            continue
        name = grouping.bundle_of(project, monitor, group)
        if name is not None:
            bundles[(monitor_id, name, bucket)].append(group)
    held: set[int] = set()
    for (monitor_id, name, bucket), members in bundles.items():
        monitor = project.monitors[monitor_id]
        if _already_told(project, store, monitor, name, bucket, members):
            for group in members:
                del groups[(monitor_id, group[0].result.series, bucket)]
                held.update(id(a) for a in group)
            continue
        if len(members) < 2:
            continue  # one series: its ordinary message below
        for group in members:
            del groups[(monitor_id, group[0].result.series, bucket)]
        made, image = _incident(project, store, project.monitors[monitor_id], name, members)
        notifications.extend(made)
        if image is not None:
            charts.append(_save_chart(project, made[0].series, bucket, image))
    for (monitor_id, series, bucket), group in groups.items():
        monitor = project.monitors[monitor_id]
        if monitor.mode == "digest":
            continue
        inputs, image = _inputs_and_chart(project, store, monitor, group)
        owners = inputs.owners
        if image is not None:
            charts.append(_save_chart(project, series, bucket, image))
        severity = _severity(group)
        for channel in channels_for(monitor, Severity(severity)):
            mapping = _mention_map(project, channel)
            channel_inputs = replace(inputs, mentions=[mapping.get(o, o) for o in owners])
            message = compose_message(channel_inputs)
            context = template_context(channel_inputs, message)
            templated = _templated(monitor, channel, context, message)
            notifications.extend(
                _per_channel(
                    monitor,
                    series,
                    bucket,
                    templated,
                    image,
                    owners,
                    _severity(group),
                    channels=[channel],
                )
            )
    for (monitor_id, bucket), members in digests.items():
        monitor = project.monitors[monitor_id]
        message, image, owners, top = _digest(project, store, monitor, members)
        if image is not None:
            charts.append(_save_chart(project, top, bucket, image))
        severity = _severity([a for group in members for a in group])
        routed = channels_for(monitor, Severity(severity))
        notifications.extend(
            _per_channel(monitor, top, bucket, message, image, owners, severity, "digest", routed)
        )
    decided = [replace(a, status=AlertStatus.COOLDOWN) if id(a) in held else a for a in alerts]
    return Composed(notifications, charts, decided)


def _already_told(
    project: Project,
    store: Store,
    monitor: MonitorConfig,
    name: str,
    bucket: Bucket,
    members: list[list[Alert]],
) -> bool:
    """Whether the bundle joins an incident whose message went out within the cooldown, and
    is no more severe than it: then it updates that incident instead of sending again."""
    cooldown = project.cooldown_for(monitor)
    if not cooldown:
        return False
    told = store.recent_messages(monitor.id, bucket.start - cooldown, bucket.start)
    order = list(Severity)
    known = {s.value for s in Severity}
    before = [
        order.index(Severity(s)) if s in known else len(order)
        for metric, s in told
        if _bundle_name(project, monitor, metric) == name
    ]
    if not before:
        return False
    now = min(order.index(a.severity) for g in members for a in g)
    return now >= min(before)  # not more severe than what was already said


def _bundle_name(project: Project, monitor: MonitorConfig, metric: str) -> str | None:
    if monitor.group == "monitor":
        return monitor.id
    try:
        return project.dataset_of(metric).name
    except KeyError:
        return None


def _incident(
    project: Project,
    store: Store,
    monitor: MonitorConfig,
    name: str,
    members: list[list[Alert]],
) -> tuple[list[Notification], bytes | None]:
    """One message per channel for a bundle of series: the lead member's chart, every
    member's owners (once each)."""
    order = grouping.ranked(members)
    lead = order[0]
    inputs, image = _inputs_and_chart(project, store, monitor, lead)
    owners: list[str] = []
    for group in order:
        owners.extend(
            o for o in _owners(project, monitor, group[0].result.series) if o not in owners
        )
    alerts = [a for group in order for a in group]
    severity = _severity(alerts)
    series = lead[0].result.series
    bucket = lead[0].result.bucket
    out: list[Notification] = []
    for channel in channels_for(monitor, Severity(severity)):
        mapping = _mention_map(project, channel)
        message = grouping.incident_message(
            project, monitor, name, order, [mapping.get(o, o) for o in owners], inputs.links
        )
        made = _per_channel(
            monitor, series, bucket, message, image, owners, severity, "incident", [channel]
        )
        key = notification_key(monitor.id, channel, SeriesKey(f"incident:{name}"), bucket)
        out.extend(replace(n, key=key) for n in made)
    return out, image


def _severity(alerts: list[Alert]) -> str:
    return min((a.severity for a in alerts), key=list(Severity).index).value


def _per_channel(
    monitor: MonitorConfig,
    series: SeriesKey,
    bucket: Bucket,
    message: Message,
    image: bytes | None,
    owners: list[str],
    severity: str,
    kind: str = "alert",
    channels: list[str] | None = None,
) -> list[Notification]:
    keyed = series if kind == "alert" else SeriesKey(f"{kind}:{monitor.id}")
    return [
        Notification(
            key=notification_key(monitor.id, channel, keyed, bucket),
            monitor=monitor.id,
            channel=channel,
            series=series,
            bucket=bucket,
            title=message.title,
            text=message.text,
            html=message.html,
            image=image,
            recipients=" ".join(owners),
            severity=severity,
            kind=kind,
        )
        for channel in (monitor.channels if channels is None else channels)
    ]


def _mention_map(project: Project, channel: str) -> dict[str, str]:
    config = project.settings.channels.get(channel)
    return dict(getattr(config, "mentions", {}) or {})


def _templated(
    monitor: MonitorConfig, channel: str, context: dict[str, Any], default: Message
) -> Message:
    """The channel's (or the monitor's) template applied, or the default message."""
    template = monitor.channel_templates.get(channel) or monitor.template
    if template is None:
        return default
    try:
        return render(template, context, default)
    except TemplateError as e:
        log.error("template of monitor %s failed (%s); sending the default message", monitor.id, e)
        return default


def _digest(
    project: Project, store: Store, monitor: MonitorConfig, members: list[list[Alert]]
) -> tuple[Message, bytes | None, list[str], SeriesKey]:
    """The top anomalies (by |deviation|) in full, the rest listed by metric and segment."""

    def strength(group: list[Alert]) -> float:
        return max(abs(a.result.deviation or 0.0) for a in group)

    ranked = sorted(members, key=strength, reverse=True)
    detailed = [
        _message_and_chart(project, store, monitor, g) for g in ranked[: monitor.digest_top]
    ]
    image = detailed[0][1]
    metrics = {g[0].result.series.metric for g in ranked}
    title = (
        f"{project.settings.name}: {len(ranked)} anomal{'y' if len(ranked) == 1 else 'ies'}"
        f" in {len(metrics)} metric{'s' if len(metrics) != 1 else ''} · {monitor.id}"
    )
    rest: dict[str, list[str]] = defaultdict(list)
    for group in ranked[monitor.digest_top :]:
        series = group[0].result.series
        rest[project.metric(series.metric).title].append(series.segment.label())
    tail = [f"{name}: {', '.join(labels)}" for name, labels in sorted(rest.items())]
    text = "\n\n".join([f"📋 {title}", *(m.text for m, _, _ in detailed)])
    body = "\n\n".join([f"📋 <b>{html.escape(title)}</b>", *(m.html for m, _, _ in detailed)])
    if tail:
        text += "\n\nAlso anomalous:\n" + "\n".join(tail)
        body += "\n\n<b>Also anomalous:</b>\n" + html.escape("\n".join(tail))
    owners = list(dict.fromkeys(o for _, _, group_owners in detailed for o in group_owners))
    return Message(title, text, body), image, owners, ranked[0][0].result.series


def _message_and_chart(
    project: Project, store: Store, monitor: MonitorConfig, group: list[Alert]
) -> tuple[Message, bytes | None, list[str]]:
    inputs, image = _inputs_and_chart(project, store, monitor, group)
    return compose_message(inputs), image, inputs.owners


def _owners(project: Project, monitor: MonitorConfig, series: SeriesKey) -> list[str]:
    """The handles a monitor @mentions for a series (none when it mentions no owners)."""
    if not monitor.mention_owners:
        return []
    metric = project.metric(series.metric)
    return list(project.dataset_of(metric.name).owners_for(metric, series.segment))


def _inputs_and_chart(
    project: Project, store: Store, monitor: MonitorConfig, group: list[Alert]
) -> tuple[MessageInputs, bytes | None]:
    """What the message is made from (owners, links), and the chart."""
    first = group[0].result
    metric = project.metric(first.series.metric)
    dataset = project.dataset_of(metric.name)
    owners = _owners(project, monitor, first.series)
    templates = dict(metric.links)
    if project.settings.public_url:
        templates.setdefault(
            "chart",
            project.settings.public_url.rstrip("/")
            + "/metrics/{metric}?segment={segment}&at={bucket}",
        )
    links = render_links(templates, first.series, first.bucket, dataset.name)
    inputs = MessageInputs(project.settings.name, metric, group, owners, links, project.timezone)
    image = None
    if monitor.chart:
        data = chart_data(store, metric.title, first)
        image = render_chart(data, project.timezone)
    return inputs, image


def chart_data(store: Store, title: str, result: AnalysisResult) -> ChartData:
    """Today up to the alert, yesterday and a week ago over the same times (sub-daily data);
    the last four weeks with the week-ago line for daily and weekly data."""
    granularity = result.bucket.granularity
    end = result.bucket.end
    if granularity.is_calendar:
        start, after = granularity.shift(result.bucket.start, -27), end
        lags = {"week ago": max(1, 7 * 86400 // granularity.seconds)}
        label = "last 4 weeks"
    else:
        per_day = 86400 // granularity.seconds
        start = end - timedelta(days=1)
        after = end + min(timedelta(hours=3), timedelta(days=1) / 8)
        lags = {"yesterday": per_day, "week ago": 7 * per_day}
        label = "last 24 h"
    deepest = max(lags.values())
    times = granularity.range(start, after)
    load_from = granularity.shift(times[0], -deepest)
    key = result.series.segment.key
    frame = store.load_series(result.series.metric, key, granularity, load_from, after)
    frame = frame.assign(segment=key)
    matrix = SeriesMatrix.from_frame(frame, result.series.metric, granularity, load_from, after)
    row = matrix.values[0] if len(matrix.segments) else np.full(len(matrix.times), np.nan)
    offset = deepest
    current = row[offset : offset + len(times)].copy()
    current[[t >= end for t in times]] = np.nan
    overlays = {label: row[offset - lag : offset - lag + len(times)] for label, lag in lags.items()}
    return ChartData(
        title=title,
        subtitle=f"{result.series.metric} · {result.series.segment.label()}",
        times=times,
        current=current,
        overlays=overlays,
        anomaly_at=result.bucket.start,
        lower=result.expected_lower,
        upper=result.expected_upper,
        current_label=label,
    )


def notification_key(monitor: str, channel: str, series: SeriesKey, bucket: Bucket) -> str:
    """Idempotency key: one notification per monitor, channel, series and bucket, ever."""
    raw = "|".join(
        [
            monitor,
            channel,
            series.metric,
            series.segment.key,
            bucket.granularity.name,
            bucket.start.isoformat(),
        ]
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _save_chart(project: Project, series: SeriesKey, bucket: Bucket, image: bytes) -> Path:
    folder = project.resolve_path(project.settings.charts_dir or "charts")
    folder.mkdir(parents=True, exist_ok=True)
    segment = re.sub(r"[^A-Za-z0-9_.=-]+", "_", series.segment.label())
    path = folder / f"{bucket.start:%Y%m%dT%H%M}_{series.metric}_{segment}.png"
    if project.settings.charts_dir is not None:
        path.write_bytes(image)
    return path


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
) -> DeliveryReport:
    """Send every pending, or failed and due, notification; record each outcome.

    5xx, 429 and timeouts are retried with exponential backoff (or the server's Retry-After);
    other client errors give up at once with the channel's error text.
    """
    report = DeliveryReport(errors=[])
    hidden = [s for s in secrets if s]
    due = now or datetime.now(UTC)
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SENDING)
    ready = {n.key for n in store.outbox(waiting, due)}
    # One channel's messages go out in order: once one of them waits for its retry (backoff or
    # the server's Retry-After), every later one of that channel waits too.
    held: set[str] = set()
    for item in list(store.outbox(waiting)):
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
        # Marked before the request: a crash between the channel's answer and the outcome
        # below leaves it `sending`, and the next attempt knows the part may have arrived.
        store.update_delivery(item.key, DeliveryStatus.SENDING, item.attempts, item.parts_sent, "")
        progress = _progress(store, item.key, item.attempts)
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
            continue
        store.update_delivery(item.key, DeliveryStatus.SENT, attempts, parts, "")
        report.sent += 1
    return report


RESENT_TAG = "(resent after a restart: you may already have this message)"


def _resend_tagged(item: Notification, channel: Channel) -> Notification:
    """An item found `sending` died mid-send; unless the channel deduplicates, say so.

    Only the part that was in flight is tagged: the text when no part had gone out, else the
    title (the chart's caption).
    """
    if item.status is not DeliveryStatus.SENDING or getattr(channel, "idempotent", False):
        return item
    if item.parts_sent >= 1:
        return replace(item, resent=True, title=f"{item.title} {RESENT_TAG}")
    return replace(
        item,
        resent=True,
        text=f"{RESENT_TAG}\n{item.text}",
        html=f"<i>{html.escape(RESENT_TAG)}</i>\n{item.html}",
    )


def _progress(store: Store, key: str, attempts: int) -> Callable[[int], None]:
    def record(parts: int) -> None:
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
