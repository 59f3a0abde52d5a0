"""Pure alerting rules: cooldown, quiet hours, and the decision for one anomaly."""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter

from vigil.config.project import matches_any, segment_selected
from vigil.config.schema import MonitorConfig, QuietHours
from vigil.model import AlertStatus, AnalysisResult, Direction, SeriesKey, Severity
from vigil.timeutil import get_zone, in_daily_window


def in_cooldown(bucket: datetime, last_notified: datetime | None, cooldown: timedelta) -> bool:
    """Whether an alert for `bucket` falls within `cooldown` after the last one sent."""
    return last_notified is not None and timedelta(0) <= bucket - last_notified < cooldown


def is_stale(bucket_end: datetime, at: datetime, max_age: timedelta | None) -> bool:
    """Whether a bucket ended longer than `max_age` before `at` (datasetTimestampOffset)."""
    return max_age is not None and at - bucket_end > max_age


def in_quiet_hours(at: datetime, quiet: QuietHours | None, tz: str) -> bool:
    """Whether `at` (local to `tz`) lies in the quiet window."""
    return quiet is not None and in_daily_window(at, quiet.start, quiet.end, tz)


def decide(
    *,
    bucket: datetime,
    at: datetime,
    last_notified: datetime | None,
    cooldown: timedelta,
    quiet: QuietHours | None,
    tz: str,
    notify: bool,
    bucket_end: datetime | None = None,
    max_age: timedelta | None = None,
    silenced: bool = False,
    mute_window: bool = False,
) -> AlertStatus:
    """What a monitor does with an anomaly: too old to matter, silenced, in a mute window,
    in cooldown, in quiet hours — else send (or mute for --no-notify)."""
    if is_stale(bucket_end or bucket, at, max_age):
        return AlertStatus.STALE
    if silenced:
        return AlertStatus.SILENCED
    if mute_window:
        return AlertStatus.MUTE_WINDOW
    if in_cooldown(bucket, last_notified, cooldown):
        return AlertStatus.COOLDOWN
    if in_quiet_hours(at, quiet, tz):
        return AlertStatus.QUIET_HOURS
    return AlertStatus.NOTIFY if notify else AlertStatus.MUTED


def handles(monitor: MonitorConfig, series: SeriesKey) -> bool:
    """Whether the monitor's metric and segment filters let this series through."""
    metric = series.metric
    if not matches_any(metric, monitor.metrics) or matches_any(metric, monitor.exclude_metrics):
        return False
    return segment_selected(monitor.segments, series.segment)


def passes_filters(monitor: MonitorConfig, result: AnalysisResult) -> bool:
    """Whether the monitor handles this anomaly at all (metric, segment and direction)."""
    if not handles(monitor, result.series):
        return False
    if monitor.direction is Direction.BOTH or result.deviation is None:
        return True
    return (result.deviation > 0) == (monitor.direction is Direction.UP)


def in_mute_window(at: datetime, monitor: MonitorConfig, tz: str) -> bool:
    """Whether `at` falls in one of the monitor's recurring mute windows or excluded ranges."""
    zone = get_zone(tz)
    for span in monitor.exclusion_ranges:
        start = span.start if span.start.tzinfo else span.start.replace(tzinfo=zone)
        end = span.end if span.end.tzinfo else span.end.replace(tzinfo=zone)
        if start <= at < end:
            return True
    local = at.astimezone(zone)
    for window in monitor.mute_windows:
        # The latest start at or before `at` (croniter's get_prev is strictly before its base).
        start = croniter(window.cron, local + timedelta(seconds=1)).get_prev(datetime)
        if local - start < window.duration:
            return True
    return False


def has_grown(deviation: float | None, notified: float | None, factor: float | None) -> bool:
    """Whether an open incident's deviation grew to `factor` × the last notified one."""
    if factor is None or deviation is None or notified is None or notified == 0:
        return False
    return abs(deviation) >= factor * abs(notified)


def alert_severity(monitor: MonitorConfig, deviation: float | None) -> Severity:
    """The monitor's severity, raised by the highest escalation the deviation reaches."""
    order = list(Severity)
    severity = monitor.severity
    for rule in monitor.escalations:
        reached = deviation is not None and abs(deviation) >= rule.min_deviation
        if reached and order.index(rule.severity) < order.index(severity):
            severity = rule.severity
    return severity


def channels_for(monitor: MonitorConfig, severity: Severity) -> list[str]:
    """Where an alert of this severity goes."""
    return monitor.routes.get(severity, monitor.channels)


def at_least(severity: Severity, minimum: Severity | None) -> bool:
    """Whether `severity` is as severe as `minimum` (always, without a minimum)."""
    order = list(Severity)
    return minimum is None or order.index(severity) <= order.index(minimum)
