"""A served project: steady events with a drop at DROP, backfilled, so there are alerts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import START, ProjectFactory, event_rows, write_events
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.config.project import Project
from vigil.scheduler.backfill import run_backfill
from vigil.web.server import WebServer

NOW = DROP + timedelta(hours=1)  # the drop's four buckets are done; its incidents open


@dataclass
class Served:
    """The project, its clock, its server on a free port, and an HTTP client of it."""

    project: Project
    clock: ManualClock
    server: WebServer
    client: httpx.Client


def backfilled(project_dir: ProjectFactory) -> Project:
    """The test project with a drop at DROP, its last day backfilled."""
    with_drop(project_dir, buckets=4)
    app, _ = app_for(project_dir.root)
    app.clock.set(NOW)  # type: ignore[attr-defined]
    run_backfill(app, NOW - timedelta(days=1), NOW)
    app.close()
    return load_project(project_dir.root, env={})


@pytest.fixture(scope="session")
def backfilled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One backfilled project for the session; each test serves a copy of it."""
    root = tmp_path_factory.mktemp("served")
    write_events(root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}))
    factory = ProjectFactory(root)
    factory.write()
    backfilled(factory)
    return root


@pytest.fixture
def served(backfilled_dir: Path, tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "project"
    shutil.copytree(backfilled_dir, root)
    project = load_project(root, env={})
    clock = ManualClock(NOW)
    server = WebServer(project, clock, "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield Served(project, clock, server, client)
    finally:
        server.stop()
