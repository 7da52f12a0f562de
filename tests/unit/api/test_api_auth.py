"""Identity from JWT claims, and refusals at the handler level with crafted events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from support.api_fakes import FakeClock, MemoryRuns

from cloud.api.app import Services, build_app
from cloud.api.errors import UnauthorizedError
from cloud.api.identity import identity_from_event
from cloud.api.runs import RunService
from cloud.local.api_server import LocalIdentity, to_event


def _event(method: str, path: str, claims: dict[str, Any] | None, body: Any = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    event = to_event(method, path, {"Content-Type": "application/json"}, raw, claims or {})
    if claims is None:
        del event["requestContext"]["authorizer"]
    return event


@pytest.mark.parametrize(
    ("claims", "user", "admin"),
    [
        ({"cognito:username": "ana", "cognito:groups": "[admins ops]"}, "ana", True),
        ({"username": "ben", "cognito:groups": ["ops"]}, "ben", False),
        ({"username": "cy", "cognito:groups": ["admins"]}, "cy", True),
        ({"username": "dee"}, "dee", False),
        (LocalIdentity("me").claims(), "me", True),
    ],
)
def test_identity_from_claims(claims: dict[str, Any], user: str, admin: bool) -> None:
    who = identity_from_event(_event("GET", "/api/runs", claims))
    assert (who.username, who.admin) == (user, admin)


@pytest.mark.parametrize("claims", [None, {}, {"sub": "x"}, {"username": ""}])
def test_no_user_no_identity(claims: dict[str, Any] | None) -> None:
    with pytest.raises(UnauthorizedError):
        identity_from_event(_event("GET", "/api/runs", claims))


@pytest.fixture
def app() -> Any:
    runs = RunService(MemoryRuns(), FakeClock(), lambda i: "")
    placeholder: Any = None
    return build_app(Services(runs, placeholder, Logger(service="test"), Metrics()))


def _resolve(app: Any, event: Any) -> tuple[int, Any]:
    result = app.resolve(event, None)
    return result["statusCode"], json.loads(result["body"])


def test_handler_refuses_an_event_without_identity(app: Any) -> None:
    for method, path in (("GET", "/api/runs"), ("POST", "/api/runs/interrupt-all")):
        status, body = _resolve(app, _event(method, path, None))
        assert status == 401 and "identity" in body["message"]


def test_non_admin_cannot_interrupt_all(app: Any) -> None:
    start = {"duration": 60, "interval": 1, "devices": 1}
    user = {"username": "worker", "cognito:groups": "[ops]"}
    assert _resolve(app, _event("POST", "/api/runs/start", user, start))[0] == 201
    status, body = _resolve(app, _event("POST", "/api/runs/interrupt-all", user))
    assert status == 403 and "admins" in body["message"]
    assert _resolve(app, _event("GET", "/api/runs/running", user))[1]["items"]
    admin = {"cognito:username": "boss", "cognito:groups": "[admins]"}
    status, body = _resolve(app, _event("POST", "/api/runs/interrupt-all", admin))
    assert status == 200 and body["count"] == 1


def test_user_comes_from_the_identity_not_the_body(app: Any) -> None:
    user = {"username": "worker"}
    body = {"duration": 60, "interval": 1, "devices": 1, "username": "someone-else"}
    status, answer = _resolve(app, _event("POST", "/api/runs/start", user, body))
    assert status == 422 and "username" in answer["message"]
    body.pop("username")
    assert _resolve(app, _event("POST", "/api/runs/start", user, body))[1]["username"] == "worker"


def test_unexpected_errors_are_500_without_trace(app: Any) -> None:
    # The sensors service is missing here, so posting data fails inside the route.
    status, body = _resolve(app, _event("POST", "/api/sensors/data", {"username": "x"}, {"a": 1}))
    assert status == 500 and body == {
        "message": "internal error: the request was logged, please retry later"
    }
