"""When cycles are due: each dataset's bucket boundaries plus its delay, or its cron."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter

from vigil.config.project import Dataset, Project
from vigil.timeutil import get_zone


def due_times(project: Project, start: datetime, end: datetime) -> list[datetime]:
    """Every instant in (start, end] at which some dataset is due."""
    times: set[datetime] = set()
    for dataset in project.datasets:
        times.update(_dataset_due(dataset, start, end))
    return sorted(times)


def _dataset_due(dataset: Dataset, start: datetime, end: datetime) -> list[datetime]:
    if dataset.config.schedule is not None:
        return _cron_times(dataset.config.schedule, dataset.granularity.tz, start, end)
    g, delay = dataset.granularity, dataset.delay
    out = []
    boundary = g.floor(start - delay)
    while boundary + delay <= end:
        if boundary + delay > start:
            out.append(boundary + delay)
        boundary = g.next(boundary)
    return out


def _cron_times(expression: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Fire times of a cron (local to `tz`, DST-aware) in (start, end]."""
    zone = get_zone(tz)
    it = croniter(expression, start.astimezone(zone))
    out: list[datetime] = []
    while True:
        fire = it.get_next(datetime).astimezone(UTC)
        if fire > end:
            return out
        out.append(fire)


def next_due(project: Project, now: datetime) -> datetime:
    """The first due time strictly after `now`."""
    for horizon in (timedelta(days=1), timedelta(days=40), timedelta(days=400)):
        upcoming = due_times(project, now, now + horizon)
        if upcoming:
            return upcoming[0]
    return now + timedelta(minutes=15)
