"""A known path called with the wrong method is a 405 naming the methods it takes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from support.api_fakes import FakeClock, MemoryRuns

from cloud.api.app import Services, build_app
from cloud.api.runs import RunService
from cloud.local.api_server import to_event

USER = {"username": "ana"}


@pytest.fixture
def app() -> Any:
    runs = RunService(MemoryRuns(), FakeClock(), lambda i: "")
    placeholder: Any = None
    return build_app(Services(runs, placeholder, Logger(service="test"), Metrics()))


def _call(app: Any, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    event = to_event(method, path, {}, b"", USER)
    result = app.resolve(event, None)
    return result["statusCode"], json.loads(result["body"]), result.get("headers") or {}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/runs/" + "a" * 32, "GET"),
        ("PUT", "/api/sites", "GET"),
        ("GET", "/api/runs/" + "a" * 32 + "/finish", "POST"),
        ("DELETE", "/api/alerts/exc-01/engine/engine-overheat/ack", "POST"),
    ],
)
def test_wrong_method_is_a_405_with_allow(app: Any, method: str, path: str, allowed: str) -> None:
    status, body, headers = _call(app, method, path)
    assert status == 405
    assert headers.get("Allow") == allowed
    assert method in body["message"] and allowed in body["message"]


def test_unknown_path_stays_a_404(app: Any) -> None:
    status, body, _ = _call(app, "DELETE", "/api/nothing-here")
    assert status == 404 and "no route" in body["message"]
