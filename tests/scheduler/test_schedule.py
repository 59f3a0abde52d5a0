"""Due times: bucket boundaries plus delay, local midnights across DST, months, and crons."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import METRICS_YAML, VIGIL_YAML, ProjectFactory
from vigil.config import load_project
from vigil.config.project import Project
from vigil.errors import ConfigError
from vigil.scheduler.schedule import due_times, next_due


def project_with(
    project_dir: ProjectFactory, tz: str, dataset_extra: str, delay: str = "0m"
) -> Project:
    vigil = VIGIL_YAML.replace("timezone: UTC", f"timezone: {tz}").replace(
        "delay: 0m", f"delay: {delay}"
    )
    metrics = METRICS_YAML.replace("    slices: [os]\n", f"    slices: [os]\n{dataset_extra}")
    root: Path = project_dir.write({"vigil.yaml": vigil, "metrics/events.yaml": metrics})
    return load_project(root, env={})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_fifteen_minute_cycles_run_at_boundaries_plus_delay(project_dir: ProjectFactory) -> None:
    project = project_with(project_dir, "UTC", "", delay="2m")
    times = due_times(project, utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 11, 0))
    assert times == [
        utc(2024, 5, 1, 10, 2),
        utc(2024, 5, 1, 10, 17),
        utc(2024, 5, 1, 10, 32),
        utc(2024, 5, 1, 10, 47),
    ]
    assert next_due(project, utc(2024, 5, 1, 10, 47)) == utc(2024, 5, 1, 11, 2)


def test_daily_cycles_follow_local_midnight_across_dst(project_dir: ProjectFactory) -> None:
    project = project_with(project_dir, "Europe/Berlin", "    granularity: 1d\n", delay="30m")
    times = due_times(project, utc(2024, 3, 29, 12), utc(2024, 4, 2, 12))
    # Midnight in Berlin is 23:00 UTC in winter and 22:00 UTC from 31 March (summer time).
    assert times == [
        utc(2024, 3, 29, 23, 30),
        utc(2024, 3, 30, 23, 30),
        utc(2024, 3, 31, 22, 30),
        utc(2024, 4, 1, 22, 30),
    ]


def test_autumn_dst_day_is_25_hours(project_dir: ProjectFactory) -> None:
    project = project_with(project_dir, "Europe/Berlin", "    granularity: 1d\n")
    g = project.datasets[0].granularity
    start = g.floor(utc(2024, 10, 27, 12))
    assert start == utc(2024, 10, 26, 22)
    assert g.next(start) == utc(2024, 10, 27, 23)
    assert (g.next(start) - start).total_seconds() == 25 * 3600


def test_monthly_cycles_at_month_starts(project_dir: ProjectFactory) -> None:
    project = project_with(project_dir, "Europe/Moscow", "    granularity: monthly\n")
    g = project.datasets[0].granularity
    assert g.name == "1mo"
    times = due_times(project, utc(2024, 1, 15), utc(2024, 4, 15))
    assert times == [utc(2024, 1, 31, 21), utc(2024, 2, 29, 21), utc(2024, 3, 31, 21)]
    assert g.last_complete(utc(2024, 3, 1, 12)) == utc(2024, 1, 31, 21)  # February (local)


def test_cron_schedule_fires_in_the_project_zone(project_dir: ProjectFactory) -> None:
    project = project_with(project_dir, "Asia/Kolkata", "    schedule: '0 9 * * 1-5'\n")
    times = due_times(project, utc(2024, 5, 3, 0), utc(2024, 5, 7, 0))  # Fri → Tue
    # 09:00 IST is 03:30 UTC; no runs on Saturday and Sunday.
    assert times == [utc(2024, 5, 3, 3, 30), utc(2024, 5, 6, 3, 30)]


def test_invalid_cron_is_a_config_error(project_dir: ProjectFactory) -> None:
    with pytest.raises(ConfigError, match="is not a cron expression"):
        project_with(project_dir, "UTC", "    schedule: 'every hour'\n")
