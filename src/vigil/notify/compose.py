"""From alerts to notifications: one message per incident and channel, with its chart."""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from vigil.analysis.matrix import SeriesMatrix
from vigil.config.project import Project
from vigil.config.schema import MonitorConfig
from vigil.model import (
    Alert,
    AlertStatus,
    AnalysisResult,
    Bucket,
    Notification,
    SeriesKey,
    Severity,
)
from vigil.notify import grouping
from vigil.notify.chart import MULTIPLES, ChartData, render_chart
from vigil.notify.llm import second_opinions
from vigil.notify.message import Message, MessageInputs, compose_message, render_links
from vigil.notify.rules import (
    channels_for,
)
from vigil.notify.templates import TemplateError, render, template_context
from vigil.notify.told import already_told, earlier_in_bucket
from vigil.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Composed:
    """Notifications ready for the outbox, and the chart files saved alongside."""

    notifications: list[Notification]
    charts: list[Path]
    # The alerts as decided: an anomaly that joins an incident already told is held.
    alerts: list[Alert] = field(default_factory=list)


GroupKey = tuple[str, SeriesKey, Bucket]


@dataclass
class _Bundle:
    """What one channel is told about one incident in one bucket: series from any monitor."""

    name: str
    members: dict[SeriesKey, list[GroupKey]] = field(default_factory=dict)


def compose(project: Project, store: Store, alerts: list[Alert]) -> Composed:
    """Per channel: one notification per incident (the anomalies of one bucket that belong
    together, from every monitor that routes them there), one per series for `group: none`,
    or, for digest monitors, one per monitor and bucket summarising every anomaly."""
    groups: dict[GroupKey, list[Alert]] = defaultdict(list)
    for alert in alerts:
        if alert.status is AlertStatus.NOTIFY:
            groups[(alert.monitor, alert.result.series, alert.result.bucket)].append(alert)
    digests: dict[tuple[str, Bucket], list[list[Alert]]] = defaultdict(list)
    singles: dict[GroupKey, list[str]] = defaultdict(list)  # group → its channels
    bundles: dict[tuple[str, str, Bucket], _Bundle] = {}
    for key, group in groups.items():
        monitor_id, series, bucket = key
        monitor = project.monitors[monitor_id]
        if monitor.mode == "digest":
            digests[(monitor_id, bucket)].append(group)
            continue
        name = grouping.bundle_of(project, monitor, group)
        for channel in channels_for(monitor, Severity(_severity(group))):
            if name is None:
                singles[key].append(channel)
                continue
            scope = f"{monitor.group}:{name}"
            bundle = bundles.setdefault((channel, scope, bucket), _Bundle(name))
            bundle.members.setdefault(series, []).append(key)
    made = _Made(project, store)
    held: dict[int, int] = defaultdict(int)  # alert → channels it was held on
    routed: dict[int, int] = defaultdict(int)  # alert → channels it went to
    for (channel, _, bucket), bundle in bundles.items():
        members = [[a for k in keys for a in groups[k]] for keys in bundle.members.values()]
        for group in members:
            for a in group:
                routed[id(a)] += 1
        keys = [k for ks in bundle.members.values() for k in ks]
        monitors = sorted({k[0] for k in keys})
        earlier = earlier_in_bucket(project, store, channel, bundle.name, bucket, members, monitors)
        if earlier is not None and earlier.members:  # joins this bucket's pending message
            store.supersede(earlier.keys)
            made.incident(
                sorted({*monitors, *earlier.monitors}),
                " + ".join([*earlier.names, bundle.name]),
                earlier.members + members,
                channel,
                update=earlier.growing,
                joined=True,
            )
            continue
        told = already_told(project, store, channel, monitors, bundle.name, bucket, members)
        if told == "held":
            for group in members:
                for a in group:
                    held[id(a)] += 1
            continue
        if told == "grown" and len(members) > 1:
            made.incident(monitors, bundle.name, members, channel, update=True)
            continue
        if len(members) == 1:  # one series (maybe from several monitors): its own message
            lead_key = max(keys, key=lambda k: grouping.strength(groups[k]))
            made.single(lead_key, members[0], channel)
            continue
        made.incident(monitors, bundle.name, members, channel)
    for key, channels in singles.items():
        for channel in channels:
            made.single(key, groups[key], channel)
    for (monitor_id, bucket), members in digests.items():
        monitor = project.monitors[monitor_id]
        message, image, owners, top = _digest(project, store, monitor, members)
        if image is not None:
            made.charts.append(_save_chart(project, top, bucket, image))
        severity = _severity([a for group in members for a in group])
        targets = channels_for(monitor, Severity(severity))
        made.notifications.extend(
            _per_channel(monitor, top, bucket, message, image, owners, severity, "digest", targets)
        )
    decided = [
        replace(a, status=AlertStatus.COOLDOWN)
        if routed[id(a)] and held[id(a)] == routed[id(a)]
        else a
        for a in alerts
    ]
    notifications, refused = second_opinions(project, store, made.notifications)
    decided = [
        replace(a, status=AlertStatus.LLM_REJECTED)
        if a.status is AlertStatus.NOTIFY
        and (a.monitor, a.result.series.metric, a.result.series.segment.key) in refused
        else a
        for a in decided
    ]
    return Composed(notifications, made.charts, decided)


@dataclass
class _Made:
    """Notifications and charts made so far; a chart is rendered once per lead series."""

    project: Project
    store: Store
    notifications: list[Notification] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    rendered: dict[GroupKey, tuple[MessageInputs, bytes | None]] = field(default_factory=dict)

    def inputs(
        self, key: GroupKey, group: list[Alert], others: Sequence[AnalysisResult] = ()
    ) -> tuple[MessageInputs, bytes | None]:
        if key not in self.rendered:
            monitor = self.project.monitors[key[0]]
            inputs, image = _inputs_and_chart(self.project, self.store, monitor, group, others)
            self.rendered[key] = inputs, image
            if image is not None:
                self.charts.append(_save_chart(self.project, key[1], key[2], image))
        return self.rendered[key]

    def single(self, key: GroupKey, group: list[Alert], channel: str) -> None:
        """The ordinary per-series message, from the monitor of `key`."""
        monitor_id, series, bucket = key
        monitor = self.project.monitors[monitor_id]
        inputs, image = self.inputs(key, [a for a in group if a.monitor == monitor_id])
        if len({a.monitor for a in group}) > 1:
            inputs = replace(inputs, alerts=group)  # every analyzer that agrees, once
        mapping = _mention_map(self.project, channel)
        channel_inputs = replace(inputs, mentions=[mapping.get(o, o) for o in inputs.owners])
        message = compose_message(channel_inputs)
        context = template_context(channel_inputs, message)
        templated = _templated(monitor, channel, context, message)
        told = tuple(sorted({(a.monitor, series.metric, series.segment.key) for a in group}))
        made = _per_channel(
            monitor,
            series,
            bucket,
            templated,
            image,
            inputs.owners,
            _severity(group),
            channels=[channel],
        )
        self.notifications.extend(replace(n, members=told) for n in made)

    def incident(
        self,
        monitors: list[str],
        name: str,
        members: list[list[Alert]],
        channel: str,
        update: bool = False,
        joined: bool = False,
    ) -> None:
        """One message for a bundle of series: the lead member's chart and monitor, every
        member's owners (once each). A `joined` message replaces pending ones of the same
        bucket, so its key names its members (never the key of one it replaces)."""
        project = self.project
        order = grouping.ranked(members)
        lead = order[0]
        lead_monitor = min(
            (project.monitors[a.monitor] for a in lead),
            key=lambda m: list(Severity).index(m.severity),
        )
        lead_alerts = [a for a in lead if a.monitor == lead_monitor.id]
        lead_key = (lead_monitor.id, lead[0].result.series, lead[0].result.bucket)
        # A few other members are drawn small under the lead's chart (more would not read).
        others = [g[0].result for g in order[1:]] if len(order) <= 1 + MULTIPLES else []
        inputs, image = self.inputs(lead_key, lead_alerts, others)
        owners: list[str] = []
        for group in order:
            for monitor_id in dict.fromkeys(a.monitor for a in group):
                series = group[0].result.series
                found = _owners(project, project.monitors[monitor_id], series)
                owners.extend(o for o in found if o not in owners)
        severity = _severity([a for group in order for a in group])
        series, bucket = lead_key[1], lead_key[2]
        mapping = _mention_map(project, channel)
        message = grouping.incident_message(
            project,
            lead_monitor,
            name,
            order,
            [mapping.get(o, o) for o in owners],
            inputs.links,
        )
        if update:  # a follow-up: the incident told earlier has at least doubled
            escaped = html.escape(message.title)
            message = replace(
                message,
                title=f"Growing: {message.title}",
                text=message.text.replace(message.title, f"Growing: {message.title}", 1),
                html=message.html.replace(escaped, f"Growing: {escaped}", 1),
            )
        made = _per_channel(
            lead_monitor, series, bucket, message, image, owners, severity, "incident", [channel]
        )
        told = tuple(
            sorted(
                {
                    (a.monitor, g[0].result.series.metric, g[0].result.series.segment.key)
                    for g in order
                    for a in g
                }
            )
        )
        keyed = f"incident:{name}"
        if joined:  # the members decide the key: the same incident told again is the same key
            keyed += "#" + hashlib.sha256(repr(told).encode()).hexdigest()[:12]
        key = notification_key("+".join(monitors), channel, SeriesKey(keyed), bucket)
        self.notifications.extend(replace(n, key=key, members=told) for n in made)


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
    project: Project,
    store: Store,
    monitor: MonitorConfig,
    group: list[Alert],
    others: Sequence[AnalysisResult] = (),
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
        data = chart_data(store, metric.title, first, metric.format)
        small = []
        for other in others:
            of = project.metric(other.series.metric)
            small.append(chart_data(store, of.title, other, of.format))
        image = render_chart(data, project.timezone, small)
    return inputs, image


def chart_data(
    store: Store, title: str, result: AnalysisResult, number_format: str = "number"
) -> ChartData:
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
        deviation=result.deviation,
        number_format=number_format,
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
