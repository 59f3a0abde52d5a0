"""Holidays are left out of baselines, and with `mute` not checked at all."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.conftest import START, STEP, VIGIL_YAML, ProjectFactory, event_rows, write_events
from tests.scheduler.helpers import app_for
from vigil.analysis.base import Status
from vigil.calendar import Calendar
from vigil.config import load_project
from vigil.errors import ConfigError
from vigil.scheduler.cycle import run_cycle

HOLIDAY = START + timedelta(days=8)  # 2024-05-09, a quiet day: half the usual traffic
NOON = timedelta(hours=12)

ONE_LAG = """\
analyzers:
  - id: day_ago
    type: same_time_comparison
    metrics: [actions]
    buckets: 1
    lags: [1d]
    min_significance: null
monitors:
  - id: main
    analyzers: ["*"]
    channels: [console]
"""


def _project(project_dir: ProjectFactory, holidays: str = "") -> None:
    quiet = {HOLIDAY + i * STEP: 0.5 for i in range(96)}
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 10, {"iOS": 20, "Android": 40}, quiet)
    )
    defaults = VIGIL_YAML + (f"  holidays: {holidays}\n" if holidays else "")
    project_dir.write({"vigil.yaml": defaults, "monitors/main.yaml": ONE_LAG})


def _total(project_dir: ProjectFactory, at_bucket: timedelta) -> list[Status]:
    app, _ = app_for(project_dir.root)
    report = run_cycle(app, HOLIDAY + at_bucket + STEP)
    return [r.status for r in report.outcomes[0].results if r.series.segment.label() == "total"]


def test_the_day_after_a_holiday_is_not_compared_with_it(project_dir: ProjectFactory) -> None:
    _project(project_dir)
    # Without a calendar, the normal day after the quiet one looks like a +100% jump.
    assert _total(project_dir, timedelta(days=1) + NOON) == [Status.ANOMALY]
    _project(project_dir, "{dates: ['2024-05-09']}")
    (project_dir.root / "vigil.duckdb").unlink()
    # Its only baseline was the holiday, left out: nothing to compare with.
    assert _total(project_dir, timedelta(days=1) + NOON) == [Status.INSUFFICIENT]


def test_a_holiday_is_checked_against_normal_days_unless_muted(
    project_dir: ProjectFactory,
) -> None:
    _project(project_dir, "{dates: ['2024-05-09']}")
    assert _total(project_dir, NOON) == [Status.ANOMALY]
    _project(project_dir, "{dates: ['2024-05-09'], mute: true}")
    (project_dir.root / "vigil.duckdb").unlink()
    assert _total(project_dir, NOON) == []  # not checked at all


def test_public_holidays_come_from_the_country_calendars(project_dir: ProjectFactory) -> None:
    _project(project_dir, "[us, RU]")  # short for {countries: [us, RU]}
    calendar = load_project(project_dir.root, env={}).datasets[0].holidays
    assert calendar == Calendar(("US", "RU"), frozenset(), False)
    assert calendar.is_holiday(date(2024, 7, 4))  # US Independence Day
    assert calendar.is_holiday(date(2024, 6, 12))  # Russia Day
    assert not calendar.is_holiday(date(2024, 7, 5))
    _project(project_dir, "{countries: [US, XX]}")
    with pytest.raises(ConfigError) as error:
        load_project(project_dir.root, env={})
    text = str(error.value)
    assert "vigil.yaml:" in text
    assert "defaults.holidays.countries" in text
    assert "unknown country 'XX'" in text
