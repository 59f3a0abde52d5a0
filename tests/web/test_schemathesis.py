"""The API against its own OpenAPI schema: schemathesis generates requests for every operation
of a real served project; no answer may be a server error or break the response schema."""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import Served

EXAMPLES = int(os.environ.get("VIGIL_API_FUZZ_EXAMPLES", "20"))


def test_every_operation_answers_without_a_server_error(served: Served) -> None:
    url = str(served.client.base_url).rstrip("/")
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=url,
                checks=[
                    not_a_server_error,
                    content_type_conformance,
                    status_code_conformance,
                    response_schema_conformance,
                ],
                timeout=30,
            )

        call()
