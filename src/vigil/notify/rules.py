"""Pure alerting rules: cooldown, quiet hours, and the decision for one anomaly."""

from __future__ import annotations

from datetime import datetime, timedelta

from vigil.config.schema import QuietHours
from vigil.model import AlertStatus
from vigil.timeutil import in_daily_window


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
) -> AlertStatus:
    """What a monitor does with an anomaly: too old to matter, then cooldown, then quiet hours,
    then send (or mute)."""
    if is_stale(bucket_end or bucket, at, max_age):
        return AlertStatus.STALE
    if in_cooldown(bucket, last_notified, cooldown):
        return AlertStatus.COOLDOWN
    if in_quiet_hours(at, quiet, tz):
        return AlertStatus.QUIET_HOURS
    return AlertStatus.NOTIFY if notify else AlertStatus.MUTED
