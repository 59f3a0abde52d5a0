"""The API against its own OpenAPI schema: schemathesis generates requests for every operation
of a real served project; no answer may be a server error or break the response schema."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import Served
from vigil.app import running_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.demo.project import write_project
from vigil.demo.simulate import simulate
from vigil.scheduler.backfill import run_backfill
from vigil.web.server import WebServer

EXAMPLES = int(os.environ.get("VIGIL_API_FUZZ_EXAMPLES", "20"))


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo project (its own configuration, a 2% sample of its simulated app, the last
    day backfilled), served over HTTP by the same server as `vigil serve`."""
    root = tmp_path_factory.mktemp("demo")
    end = datetime(2024, 6, 10, tzinfo=UTC)
    simulate(root / "data" / "app.duckdb", end - timedelta(days=9), end, seed=3, scale=0.02)
    write_project(root)
    project = load_project(root, env={})
    clock = ManualClock(end)
    with running_app(project, clock, io.StringIO()) as app:
        run_backfill(app, end - timedelta(days=1), end, notify=False)
    server = WebServer(load_project(root, env={}), clock, "127.0.0.1", 0)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def test_every_operation_answers_without_a_server_error(served: Served) -> None:
    fuzz_every_operation(str(served.client.base_url).rstrip("/"))


def test_every_operation_on_the_demo_project(demo_url: str) -> None:
    fuzz_every_operation(demo_url)


def fuzz_every_operation(url: str) -> None:
    """Every operation of the schema, EXAMPLES generated requests each, every check."""
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:
        # /health answers 503 on purpose when data stops arriving (documented in the schema).
        server_errors = [] if operation.path.endswith("/health") else [not_a_server_error]
        _fuzz(operation, url, [*server_errors, *CONFORMANCE])


CONFORMANCE = [content_type_conformance, status_code_conformance, response_schema_conformance]


def _fuzz(operation: Any, url: str, checks: list[Any]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=url, checks=checks, timeout=30)

    call()
