"""Requests generated from the API's own OpenAPI (schemathesis, bounded examples) never cause a 5xx."""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings

from api.security import Role
from tests.integration.test_api import Api, api, walk

__all__ = ["api"]  # the fixture, shared with test_api.py

EXAMPLES = 6


def fuzz(operation: object, call: Callable[[str, schemathesis.Case], None]) -> Callable[[], None]:
    """A hypothesis test of one operation, calling ``call(label, case)`` for each generated case."""
    label: str = operation.label  # type: ignore[attr-defined]

    @given(case=operation.as_strategy())  # type: ignore[attr-defined]
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        call(label, case)

    return run


def test_generated_requests_never_cause_a_server_error(api: Api) -> None:
    walk(api, "YK-S-1", "HV_SINGLE", until="CompleteSiteSurvey")
    api.project()
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    callers = [api.token(Role.STAFF, "OPERATIONS"), api.token(Role.AUDITOR), api.token(Role.MANAGER)]
    server_errors: list[tuple[str, int, str]] = []
    calls = 0

    def call(label: str, case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        response = case.call(headers=callers[calls % len(callers)])
        if response.status_code >= 500:
            server_errors.append((label, response.status_code, response.text[:200]))

    for result in schema.get_all_operations():
        fuzz(result.ok(), call)()

    assert calls > 100
    assert server_errors == []
