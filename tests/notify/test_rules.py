from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from vigil.config.schema import MonitorConfig, QuietHours
from vigil.model import AlertStatus, AnalysisResult, Bucket, Segment, SeriesKey, Silence, Status
from vigil.notify.rules import (
    decide,
    in_cooldown,
    in_mute_window,
    in_quiet_hours,
    passes_filters,
)
from vigil.timeutil import Granularity

T = datetime(2024, 5, 1, 12, tzinfo=UTC)
QUIET = QuietHours(start=time(0), end=time(1))


def test_cooldown_suppresses_repeat_alert_within_window() -> None:
    assert in_cooldown(T, T - timedelta(hours=2, minutes=45), timedelta(hours=3))
    assert not in_cooldown(T, T - timedelta(hours=3), timedelta(hours=3))
    assert not in_cooldown(T, None, timedelta(hours=3))


def test_quiet_hours_are_local_to_the_project_zone() -> None:
    # 00:30 in Moscow is 21:30 UTC the day before.
    assert in_quiet_hours(datetime(2024, 5, 1, 21, 30, tzinfo=UTC), QUIET, "Europe/Moscow")
    assert not in_quiet_hours(datetime(2024, 5, 1, 0, 30, tzinfo=UTC), QUIET, "Europe/Moscow")
    assert not in_quiet_hours(T, None, "UTC")


def test_decision_order_is_cooldown_then_quiet_hours_then_send_or_mute() -> None:
    common = {"bucket": T, "cooldown": timedelta(hours=3), "tz": "UTC"}
    recent = T - timedelta(hours=1)
    night = datetime(2024, 5, 1, 0, 15, tzinfo=UTC)
    assert decide(at=T, last_notified=recent, quiet=None, notify=True, **common) is (
        AlertStatus.COOLDOWN
    )
    assert decide(at=night, last_notified=None, quiet=QUIET, notify=True, **common) is (
        AlertStatus.QUIET_HOURS
    )
    assert decide(at=T, last_notified=None, quiet=QUIET, notify=True, **common) is (
        AlertStatus.NOTIFY
    )
    assert decide(at=T, last_notified=None, quiet=QUIET, notify=False, **common) is (
        AlertStatus.MUTED
    )


def monitor(**params: object) -> MonitorConfig:
    return MonitorConfig.model_validate({"id": "m", "analyzers": ["*"], **params})


def anomaly(metric: str = "likes", os: str = "iOS", deviation: float = -0.5) -> AnalysisResult:
    return AnalysisResult(
        analyzer="a",
        analyzer_type="fixed",
        series=SeriesKey(metric, Segment.of({"os": os})),
        bucket=Bucket(T, Granularity.parse("15m")),
        value=1.0,
        status=Status.ANOMALY,
        deviation=deviation,
    )


def test_monitor_filters_select_metrics_segments_and_direction() -> None:
    assert passes_filters(monitor(), anomaly())
    assert not passes_filters(monitor(metrics=["views*"]), anomaly())
    assert not passes_filters(monitor(exclude_metrics=["lik*"]), anomaly())
    assert passes_filters(monitor(segments=[{"os": "iOS"}]), anomaly())
    assert not passes_filters(monitor(segments="total"), anomaly())
    assert passes_filters(monitor(direction="down"), anomaly(deviation=-0.5))
    assert not passes_filters(monitor(direction="down"), anomaly(deviation=0.5))


def test_recurring_mute_windows_and_holidays() -> None:
    weekly = monitor(mute_windows=[{"cron": "0 2 * * 0", "duration": "2h"}])  # Sundays 02-04
    sunday = datetime(2024, 5, 5, 2, 0, tzinfo=UTC)
    assert in_mute_window(sunday, weekly, "UTC")
    assert in_mute_window(sunday + timedelta(hours=1, minutes=59), weekly, "UTC")
    assert not in_mute_window(sunday + timedelta(hours=2), weekly, "UTC")
    assert not in_mute_window(sunday - timedelta(minutes=1), weekly, "UTC")
    holiday = monitor(exclusion_ranges=[{"start": "2024-05-01T00:00", "end": "2024-05-02T00:00"}])
    assert in_mute_window(T, holiday, "UTC")
    assert not in_mute_window(datetime(2024, 5, 2, 1, tzinfo=UTC), holiday, "UTC")


def test_silence_and_mute_window_come_before_cooldown() -> None:
    common = {
        "bucket": T,
        "at": T,
        "last_notified": None,
        "cooldown": timedelta(hours=3),
        "quiet": None,
        "tz": "UTC",
        "notify": True,
    }
    assert decide(silenced=True, **common) is AlertStatus.SILENCED  # type: ignore[arg-type]
    assert decide(mute_window=True, **common) is AlertStatus.MUTE_WINDOW  # type: ignore[arg-type]


def test_silence_covers_metric_glob_segment_and_monitor() -> None:
    silence = Silence("lik*", {"os": "iOS"}, T, T + timedelta(hours=2), "release", "m")
    series = SeriesKey("likes", Segment.of({"os": "iOS", "country": "RU"}))
    assert silence.covers("m", series, T + timedelta(hours=1))
    assert not silence.covers("other", series, T)
    assert not silence.covers("m", series, T + timedelta(hours=2))
    assert not silence.covers("m", SeriesKey("likes", Segment.of({"os": "Android"})), T)
    assert not silence.covers("m", SeriesKey("views", Segment.of({"os": "iOS"})), T)


def test_escalation_and_minimum_severity() -> None:
    from vigil.model import Severity
    from vigil.notify.rules import alert_severity, at_least, channels_for

    m = monitor(
        severity="medium",
        escalations=[{"min_deviation": 0.5, "severity": "critical"}],
        routes={"critical": ["pager"]},
        channels=["chat"],
    )
    assert alert_severity(m, -0.3) is Severity.MEDIUM
    assert alert_severity(m, -0.6) is Severity.CRITICAL
    assert channels_for(m, Severity.CRITICAL) == ["pager"]
    assert channels_for(m, Severity.MEDIUM) == ["chat"]
    assert at_least(Severity.CRITICAL, Severity.HIGH)
    assert not at_least(Severity.MEDIUM, Severity.HIGH)
    assert at_least(Severity.INFO, None)
