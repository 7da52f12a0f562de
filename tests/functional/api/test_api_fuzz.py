"""Every operation of the served OpenAPI document, fed generated input: never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.api_http import call, interrupt_all, start_body
from support.openapi_fuzz import operations, request_strategy

from cloud.local.stack import LocalStack

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def document(stack: LocalStack) -> dict[str, Any]:
    assert stack.info is not None
    status, doc = call(stack.info, "GET", "/api/openapi.json")
    assert status == 200
    return dict(doc)


def _operation_ids() -> list[str]:
    # The list is fixed by the design table; the test body checks it matches the document.
    return [
        "GET /api/runs",
        "GET /api/runs/all",
        "GET /api/runs/can-start",
        "POST /api/runs/interrupt-all",
        "GET /api/runs/running",
        "POST /api/runs/start",
        "GET /api/runs/{run_id}",
        "POST /api/runs/{run_id}/finish",
        "GET /api/runs/{run_id}/activity",
        "GET /api/sensors/data",
        "POST /api/sensors/data",
        # the local dashboard's routes (docs/dashboards.md)
        "GET /api/sites",
        "GET /api/sites/{site}/machines",
        "GET /api/things/{thing}",
        "GET /api/things/{thing}/readings",
        "GET /api/alerts",
        "POST /api/alerts/{thing}/{sensor}/{rule}/ack",
        "POST /api/alerts/{thing}/{sensor}/{rule}/snooze",
    ]


@pytest.mark.parametrize("operation_id", _operation_ids())
def test_no_server_error(stack: LocalStack, document: dict[str, Any], operation_id: str) -> None:
    info = stack.info
    assert info is not None
    by_id = {f"{op.method} {op.path}": op for op in operations(document)}
    assert sorted(by_id) == sorted(_operation_ids())
    operation = by_id[operation_id]
    interrupt_all(info)
    status, run = call(info, "POST", "/api/runs/start", start_body())
    assert status == 201
    run_ids = [run["id"]]

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )
    @given(request=request_strategy(document, operation, run_ids), data=st.data())
    def probe(request: tuple[str, bytes | None], data: st.DataObject) -> None:
        path, body = request
        status, answer = call(info, operation.method, path, raw=body)
        assert status < 500, (operation.method, path, body, answer)
        if status >= 400:
            assert isinstance(answer, dict) and isinstance(answer.get("message"), str), answer

    probe()
