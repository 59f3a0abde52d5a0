"""Incidents: an anomaly opens one per monitor and series; later ones extend it; normal
buckets resolve it (with a "resolved" message when the monitor asks for one)."""

from __future__ import annotations

import hashlib
import html
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from vigil.config.project import Project
from vigil.config.schema import MonitorConfig
from vigil.model import (
    Alert,
    AlertStatus,
    AnalysisResult,
    Bucket,
    Incident,
    Notification,
    SeriesKey,
    Status,
)
from vigil.notify.rules import handles, passes_filters
from vigil.store.base import Store
from vigil.timeutil import get_zone

# Without `resolve_after`, an incident closes silently after this many normal buckets.
DEFAULT_CLOSE_AFTER = 4


class Tracked(NamedTuple):
    """What one bucket's results did to the incidents."""

    resolved: list[Notification]  # the resolution messages to queue
    changed: bool  # an incident may have been opened, extended or counted a normal bucket


def track_incidents(
    project: Project, store: Store, results: list[AnalysisResult], alerts: list[Alert]
) -> Tracked:
    """Update every monitor's incidents with one bucket's results; return resolved messages."""
    # One read of every open incident (newest wins), not one query per monitor and series.
    open_now = {(i.monitor, i.series): i for i in reversed(store.list_incidents("open"))}
    open_series = {series for _, series in open_now}
    grouped: dict[tuple[str, SeriesKey], list[AnalysisResult]] = defaultdict(list)
    for result in results:
        # Only an anomaly or a series with an open incident changes anything.
        if not result.is_anomaly and result.series not in open_series:
            continue
        for monitor in project.monitors_for(result.analyzer):
            if handles(monitor, result.series):
                grouped[(monitor.id, result.series)].append(result)
    sent = {(a.monitor, a.result.series) for a in alerts if a.status is AlertStatus.NOTIFY}
    closed: list[Incident] = []
    for (monitor_id, series), group in grouped.items():
        monitor = project.monitors[monitor_id]
        incident = open_now.get((monitor_id, series))
        anomalies = [r for r in group if r.is_anomaly and passes_filters(monitor, r)]
        if anomalies:
            _extend(store, monitor, incident, anomalies, (monitor_id, series) in sent)
        elif incident is not None and any(r.status is Status.OK for r in group):
            closed.extend(_count_normal(store, monitor, incident, group[0].bucket))
    if not closed:
        return Tracked([], bool(grouped))
    at = closed[0].resolved_bucket or results[0].bucket.start
    return Tracked(resolutions(project, store, closed, at), True)


def _extend(
    store: Store,
    monitor: MonitorConfig,
    incident: Incident | None,
    anomalies: list[AnalysisResult],
    notified: bool,
) -> None:
    first = anomalies[0]
    bucket = first.bucket
    if incident is None:
        incident = Incident(
            monitor.id, first.series, bucket.granularity, bucket.start, bucket.start
        )
    incident = replace(incident, last_anomaly_bucket=bucket.start, normal_streak=0)
    if notified:
        deviations = [abs(r.deviation) for r in anomalies if r.deviation is not None]
        incident = replace(incident, notified_deviation=max(deviations, default=None))
    store.save_incident(incident)


def _count_normal(
    store: Store, monitor: MonitorConfig, incident: Incident, bucket: Bucket
) -> list[Incident]:
    """One more normal bucket; the incident, resolved, once there were enough in a row."""
    streak = incident.normal_streak + 1
    limit = monitor.resolve_after or DEFAULT_CLOSE_AFTER
    if streak < limit:
        store.save_incident(replace(incident, normal_streak=streak))
        return []
    resolved = replace(
        incident, normal_streak=streak, status="resolved", resolved_bucket=bucket.start
    )
    store.save_incident(resolved)
    return [resolved] if incident.notified_deviation is not None else []


Member = tuple[str, str, str]


def resolutions(
    project: Project, store: Store, closed: list[Incident], at: datetime
) -> list[Notification]:
    """For each message whose series have all resolved now: on Telegram and Slack an edit of
    that message ("✅ Resolved …") and, where a monitor asks for resolve messages
    (`resolve_after`), a reply in its thread; elsewhere that reply as a message of its own.
    One reply per channel per cycle; each resolution is keyed by its message (exactly once).
    """
    closing = {_member(i) for i in closed}
    told = [n for n in store.told(min(i.opened_bucket for i in closed)) if n.kind != "digest"]
    told = [n for n in told if closing & set(n.members)]
    if not told:
        return []
    still = {
        (i.monitor, i.series.metric, i.series.segment.key) for i in store.list_incidents("open")
    }
    normal_since = max(i.granularity.next(i.last_anomaly_bucket) for i in closed)
    granularity = closed[0].granularity
    out: list[Notification] = []
    replied: set[str] = set()
    for message in told:
        members = set(message.members)
        if members & still:
            continue
        monitors = [project.monitors[m] for m, _, _ in members if m in project.monitors]
        stateful = tracks_alerts(project, message.channel)
        reply = stateful or (
            any(m.resolve_after is not None for m in monitors) and message.channel not in replied
        )
        editable = edits_messages(project, message.channel) and bool(message.remote_ref)
        if not (editable or reply):
            continue
        if reply and not stateful:
            replied.add(message.channel)
        out.append(
            _resolution(project, message, normal_since, Bucket(at, granularity), editable, reply)
        )
    return out


def _member(incident: Incident) -> Member:
    return (incident.monitor, incident.series.metric, incident.series.segment.key)


def tracks_alerts(project: Project, channel: str) -> bool:
    """Whether the channel keeps alerts open until told they resolved (PagerDuty,
    Alertmanager): every message's resolution goes there, asked for or not."""
    config = project.settings.channels.get(channel)
    return getattr(config, "type", None) in ("pagerduty", "alertmanager")


def edits_messages(project: Project, channel: str) -> bool:
    """Whether the channel can edit a sent message and answer in its thread."""
    config = project.settings.channels.get(channel)
    kind = getattr(config, "type", None)
    bot = getattr(config, "webhook_url", 1) is None  # Slack's and Mattermost's bots edit
    return kind == "telegram" or (kind in ("slack", "mattermost") and bot)


def _resolution(
    project: Project,
    message: Notification,
    normal_since: datetime,
    bucket: Bucket,
    editable: bool,
    reply: bool,
) -> Notification:
    lasted = _duration(normal_since - message.bucket.start)
    line = f"normal again from {_local(normal_since, project.timezone)} {project.timezone}"
    line += f", after {lasted}"
    short = f"✅ Resolved: {message.title} — {line}"
    if editable:  # the edited message in full; the reply is the title
        text = f"{message.text}\n\n✅ Resolved: {line}"
        body = f"{message.html}\n\n<b>✅ Resolved</b>: {html.escape(line, quote=False)}"
    else:
        text, body = short, html.escape(short, quote=False)
    return Notification(
        key=hashlib.sha256(f"resolution|{message.key}".encode()).hexdigest()[:32],
        monitor=message.monitor,
        channel=message.channel,
        series=message.series,
        bucket=bucket,
        title=short,
        text=text,
        html=body,
        image=None,
        severity=message.severity,
        kind="resolved" if reply else "resolved-edit",
        members=message.members,
        remote_ref=message.remote_ref,
        reply_to=message.key,
    )


def _duration(span: timedelta) -> str:
    minutes = max(0, round(span.total_seconds() / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _local(instant: datetime, tz: str) -> str:
    return f"{instant.astimezone(get_zone(tz)):%Y-%m-%d %H:%M}"


def grouped_incidents(project: Project, found: list[Incident]) -> list[dict[str, Any]]:
    """Per-series incidents grouped as their messages were (monitor, dataset, opening
    bucket), newest first; open while any member is open."""
    groups: dict[tuple[str, str, datetime], list[Incident]] = {}
    for incident in found:
        try:
            dataset = project.dataset_of(incident.series.metric).name
        except KeyError:  # a metric since removed from the project
            dataset = incident.series.metric
        key = (incident.monitor, dataset, incident.opened_bucket)
        groups.setdefault(key, []).append(incident)
    out = []
    for (monitor, dataset, opened), members in groups.items():
        is_open = any(m.status == "open" for m in members)
        last = max(m.last_anomaly_bucket for m in members)
        resolved = None if is_open else max(m.resolved_bucket or last for m in members)
        end = members[0].granularity.next(last)  # anomalous until its last bucket ended
        out.append(
            {
                "monitor": monitor,
                "dataset": dataset,
                "status": "open" if is_open else "resolved",
                "opened": opened.isoformat(),
                "last_anomaly": last.isoformat(),
                "resolved": resolved.isoformat() if resolved else None,
                "minutes": round((end - opened).total_seconds() / 60),
                "members": [
                    {
                        "id": m.id,
                        "series": m.series.label(),
                        "metric": m.series.metric,
                        "segment": m.series.segment.label(),
                        "segment_key": m.series.segment.key,
                        "status": m.status,
                        "last_anomaly": m.last_anomaly_bucket.isoformat(),
                    }
                    for m in sorted(members, key=lambda m: m.series.label())
                ],
            }
        )
    return sorted(out, key=lambda g: (g["opened"], g["monitor"], g["dataset"]), reverse=True)
