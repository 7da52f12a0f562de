"""docs/openapi.json fed to schemathesis against the local API with the stack's token: no
answer is a 5xx, every answer is JSON and every error carries a message (never HTML).

Bounded: the coverage phase (boundary and invalid values, missing parameters, other methods)
and at most MAX_EXAMPLES generated cases per operation, valid and invalid; about 35 s on the
2-core machine for the 17 operations. Path ids are half the time a real run's, so the run
routes are exercised past their 404.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import CheckContext, not_a_server_error
from support.api_http import call, interrupt_all, start_body

from cloud.api.openapi import DEFAULT_PATH
from cloud.local.stack import LocalStack
from cloud.local.stackinfo import StackInfo

pytestmark = pytest.mark.functional
MAX_EXAMPLES = 25

schema = schemathesis.openapi.from_path(
    DEFAULT_PATH,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
            "cache": {"enabled": False},  # nothing written into the checkout
        }
    ),
)
RUN_IDS: list[str] = []


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    if not isinstance(path_parameters, dict) or "run_id" not in path_parameters or not RUN_IDS:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, "run_id": RUN_IDS[0]}])


def answers_json(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool:
    """Every answer is JSON; every error carries a message."""
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered with {content_type!r}: {response.text[:200]!r}"
    )
    body = json.loads(response.content) if response.content else None
    if response.status_code >= 400:
        assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    return True


@pytest.fixture(scope="module")
def info(stack: LocalStack) -> Iterator[StackInfo]:
    assert stack.info is not None
    interrupt_all(stack.info)
    status, run = call(stack.info, "POST", "/api/runs/start", start_body())
    assert status == 201, run
    RUN_IDS[:] = [run["id"]]
    yield stack.info
    RUN_IDS.clear()


@schema.parametrize()
def test_no_server_error_and_always_json(case: schemathesis.Case, info: StackInfo) -> None:
    case.call_and_validate(
        base_url=info.api_url,
        headers={"Authorization": f"Bearer {info.api_token}"},
        checks=[not_a_server_error, answers_json],
    )


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe", b'{"duration": 60', b"null", b"[]", b"\x00" * 64, "é".encode("latin-1")],
    ids=["not-utf8", "truncated", "null", "array", "zeros", "latin-1"],
)
@pytest.mark.parametrize("path", ["/api/runs/start", "/api/sensors/data"])
def test_bodies_no_schema_describes_are_refused_in_json(
    info: StackInfo, path: str, body: bytes
) -> None:
    status, answer = call(info, "POST", path, raw=body)
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict) and isinstance(answer.get("message"), str), answer
