"""Incidents: an anomaly opens one per monitor and series; later ones extend it; normal
buckets resolve it (with a "resolved" message when the monitor asks for one)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from typing import Any

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


def track_incidents(
    project: Project, store: Store, results: list[AnalysisResult], alerts: list[Alert]
) -> list[Notification]:
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
    out: list[Notification] = []
    for (monitor_id, series), group in grouped.items():
        monitor = project.monitors[monitor_id]
        incident = open_now.get((monitor_id, series))
        anomalies = [r for r in group if r.is_anomaly and passes_filters(monitor, r)]
        if anomalies:
            _extend(store, monitor, incident, anomalies, (monitor_id, series) in sent)
        elif incident is not None and any(r.status is Status.OK for r in group):
            out.extend(_count_normal(project, store, monitor, incident, group[0].bucket))
    return out


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
    project: Project, store: Store, monitor: MonitorConfig, incident: Incident, bucket: Bucket
) -> list[Notification]:
    streak = incident.normal_streak + 1
    limit = monitor.resolve_after or DEFAULT_CLOSE_AFTER
    if streak < limit:
        store.save_incident(replace(incident, normal_streak=streak))
        return []
    resolved = replace(
        incident, normal_streak=streak, status="resolved", resolved_bucket=bucket.start
    )
    store.save_incident(resolved)
    if monitor.resolve_after is None or incident.notified_deviation is None:
        return []
    return resolved_notifications(project, monitor, resolved, bucket)


def resolved_notifications(
    project: Project, monitor: MonitorConfig, incident: Incident, bucket: Bucket
) -> list[Notification]:
    """One "resolved" message per channel of the monitor."""
    metric = project.metric(incident.series.metric)
    label = incident.series.segment.label()
    title = f"Resolved: {metric.title} · {label}"
    opened = _local(incident.opened_bucket, project.timezone)
    text = (
        f"✅ {title}\nNormal again for {incident.normal_streak} buckets"
        f" (incident opened at {opened}, last anomaly at"
        f" {_local(incident.last_anomaly_bucket, project.timezone)})."
    )
    html = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = []
    for channel in monitor.channels:
        raw = f"resolved|{incident.id}|{channel}"
        out.append(
            Notification(
                key=hashlib.sha256(raw.encode()).hexdigest()[:32],
                monitor=monitor.id,
                channel=channel,
                series=incident.series,
                bucket=bucket,
                title=title,
                text=text,
                html=html,
                image=None,
                severity=monitor.severity.value,
                kind="resolved",
            )
        )
    return out


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
                        "status": m.status,
                        "last_anomaly": m.last_anomaly_bucket.isoformat(),
                    }
                    for m in sorted(members, key=lambda m: m.series.label())
                ],
            }
        )
    return sorted(out, key=lambda g: (g["opened"], g["monitor"], g["dataset"]), reverse=True)
