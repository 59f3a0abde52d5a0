"""Helpers shared by the scheduler tests."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from tests.conftest import START, STEP, ProjectFactory, event_rows, write_events
from vigil.app import App, build_app
from vigil.clock import ManualClock
from vigil.config import load_project

DROP = START + timedelta(days=8, hours=12)


def app_for(root: Path, env: dict[str, str] | None = None) -> tuple[App, io.StringIO]:
    out = io.StringIO()
    project = load_project(root, env=env or {})
    return build_app(project, ManualClock(DROP), out), out


def with_drop(project_dir: ProjectFactory, buckets: int = 1, factor: float = 0.2) -> None:
    drop = {DROP + i * STEP: factor for i in range(buckets)}
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}, drop)
    )
