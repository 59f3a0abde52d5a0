from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from vigil.config.schema import QuietHours
from vigil.model import AlertStatus
from vigil.notify.rules import decide, in_cooldown, in_quiet_hours

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
