"""When cycles are due: each dataset's bucket boundaries plus its late-data delay."""

from __future__ import annotations

from datetime import datetime, timedelta

from vigil.config.project import Project


def due_times(project: Project, start: datetime, end: datetime) -> list[datetime]:
    """Every instant in (start, end] at which some dataset has a newly complete bucket."""
    times: set[datetime] = set()
    for dataset in project.datasets:
        g, delay = dataset.granularity, dataset.delay
        boundary = g.floor(start - delay)
        while boundary + delay <= end:
            if boundary + delay > start:
                times.add(boundary + delay)
            boundary = g.next(boundary)
    return sorted(times)


def next_due(project: Project, now: datetime) -> datetime:
    """The first due time strictly after `now`."""
    horizon = max((d.granularity.step + d.delay for d in project.datasets), default=timedelta(0))
    upcoming = due_times(project, now, now + horizon + timedelta(days=8))
    return upcoming[0] if upcoming else now + timedelta(minutes=15)
