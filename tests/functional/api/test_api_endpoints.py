"""Every endpoint through real HTTP on a running local stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.api_http import call, interrupt_all, start_body

from chantier.s3keys import raw_key
from cloud.local.stack import LocalStack
from cloud.local.stackinfo import StackInfo

pytestmark = pytest.mark.functional


@pytest.fixture
def info(stack: LocalStack) -> Iterator[StackInfo]:
    assert stack.info is not None
    interrupt_all(stack.info)
    yield stack.info
    interrupt_all(stack.info)


def _start(info: StackInfo, **overrides: Any) -> dict[str, Any]:
    status, run = call(info, "POST", "/api/runs/start", start_body(**overrides))
    assert status == 201, run
    return dict(run)


def test_start_show_finish(info: StackInfo) -> None:
    run = _start(info, duration=120, devices=3, params={"profile": "default"})
    assert run["status"] == "RUNNING" and run["devices"] == 3 and len(run["id"]) == 32
    assert run["username"] and run["dashboardUrl"].endswith(run["id"])
    assert run["endsAt"] - run["startedAt"] == 120_000
    assert call(info, "GET", f"/api/runs/{run['id']}") == (200, run)
    status, finished = call(info, "POST", f"/api/runs/{run['id']}/finish")
    assert status == 200 and finished["status"] == "COMPLETED" and finished["finishedAt"]
    status, again = call(info, "POST", f"/api/runs/{run['id']}/finish")
    assert status == 409 and "already COMPLETED" in again["message"]


def test_finish_as_failed_with_a_note(info: StackInfo) -> None:
    run = _start(info)
    body = {"status": "FAILED", "note": "agents lost"}
    status, finished = call(info, "POST", f"/api/runs/{run['id']}/finish", body)
    assert status == 200 and finished["status"] == "FAILED" and finished["note"] == "agents lost"


def test_can_start_running_and_the_limit(info: StackInfo) -> None:
    assert call(info, "GET", "/api/runs/can-start")[1] == {
        "canStart": True,
        "running": 0,
        "limit": 5,
    }
    ids = {_start(info)["id"] for _ in range(5)}
    status, body = call(info, "GET", "/api/runs/can-start")
    assert status == 200 and body["canStart"] is False and body["running"] == 5
    status, refused = call(info, "POST", "/api/runs/start", start_body())
    assert status == 400 and "5 runs are already running" in refused["message"]
    status, running = call(info, "GET", "/api/runs/running")
    assert status == 200 and {r["id"] for r in running["items"]} == ids
    status, result = call(info, "POST", "/api/runs/interrupt-all")
    assert status == 200 and set(result["interrupted"]) == ids
    for run_id in ids:
        assert call(info, "GET", f"/api/runs/{run_id}")[1]["status"] == "INTERRUPTED"
    assert call(info, "GET", "/api/runs/can-start")[1]["running"] == 0


def test_pagination_with_an_opaque_cursor(info: StackInfo) -> None:
    made = []
    for _ in range(3):
        run = _start(info)
        made.append(run["id"])
        call(info, "POST", f"/api/runs/{run['id']}/finish")
        time.sleep(0.005)  # distinct start times, so the order is defined
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        path = "/api/runs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = call(info, "GET", path)
        assert status == 200 and len(page["items"]) <= 2
        seen.extend(r["id"] for r in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen[:3] == list(reversed(made))  # newest first
    assert len(seen) == len(set(seen))
    status, everything = call(info, "GET", "/api/runs/all")
    assert status == 200 and [r["id"] for r in everything["items"]] == seen


@pytest.mark.parametrize("cursor", ["garbage", "eyJ2IjoxLCJrIjp7fX0", "%00", "x" * 2000])
def test_bad_cursor_is_a_400(info: StackInfo, cursor: str) -> None:
    status, body = call(info, "GET", f"/api/runs?cursor={cursor}")
    assert status in (400, 422) and body["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"duration": 0, "interval": 1, "devices": 1}, 422, "duration"),
        ({"duration": 10, "interval": 1}, 422, "devices"),
        ({"duration": "10", "interval": 1, "devices": 1}, 422, "duration"),
        ({"duration": 10, "interval": 1, "devices": 1, "user": "eve"}, 422, "user"),
        ({"duration": 10, "interval": 1, "devices": 1, "params": {"x": "y" * 5000}}, 422, "4096"),
    ],
)
def test_start_validation(
    info: StackInfo, body: dict[str, Any], status: int, fragment: str
) -> None:
    got, answer = call(info, "POST", "/api/runs/start", body)
    assert got == status and fragment in answer["message"]


def test_malformed_json_is_a_400(info: StackInfo) -> None:
    status, body = call(info, "POST", "/api/runs/start", raw=b'{"duration": ')
    assert status == 400 and "JSON" in body["message"]


def test_unknown_run_and_unknown_route(info: StackInfo) -> None:
    assert call(info, "GET", "/api/runs/" + "0" * 32)[0] == 404
    assert call(info, "POST", "/api/runs/" + "0" * 32 + "/finish")[0] == 404
    status, body = call(info, "GET", "/api/nothing-here")
    assert status == 404 and "no route" in body["message"]


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_no_or_wrong_token_is_a_401(info: StackInfo, token: str | None) -> None:
    for method, path in (("GET", "/api/runs"), ("POST", "/api/runs/start")):
        status, body = call(info, method, path, start_body(), token=token)
        assert status == 401 and "token" in body["message"]


def test_simple_reading_round_trip(stack: LocalStack, info: StackInfo) -> None:
    run = _start(info, params={"thing": "probe-01", "site": "lab"})
    reading = {"runId": run["id"], "sensorId": "bench", "temperature": 21.5, "humidity": 40.0}
    status, result = call(info, "POST", "/api/sensors/data", reading)
    assert status == 201 and result["accepted"] == 1
    assert result["thing"] == "probe-01" and result["site"] == "lab"
    assert result["rawKey"].startswith("raw/site=lab/thing=probe-01/")
    stored = stack.client("s3").get_object(Bucket=info.raw_bucket, Key=result["rawKey"])
    batch = json.loads(stored["Body"].read())
    assert batch["schema"] == 1 and batch["runId"] == run["id"]
    status, page = call(info, "GET", f"/api/sensors/data?runId={run['id']}")
    assert status == 200 and page["count"] == 1
    item = page["items"][0]
    assert item["temperature"] == 21.5 and item["humidity"] == 40.0 and item["thing"] == "probe-01"
    path = f"/api/sensors/data?thing=probe-01&sensorId=bench&from={item['ts']}&to={item['ts']}"
    assert call(info, "GET", path)[1]["count"] == 1
    path = f"/api/sensors/data?thing=probe-01&sensorId=bench&to={item['ts'] - 1}"
    assert call(info, "GET", path)[1]["count"] == 0


def test_simple_reading_refusals(info: StackInfo) -> None:
    run = _start(info)
    base = {"runId": run["id"], "sensorId": "bench", "temperature": 21.5}
    cases: list[tuple[dict[str, Any], int]] = [
        ({**base, "temperature": 400}, 422),
        ({**base, "thing": "Not_A_Name"}, 422),
        ({**base, "sensorId": ""}, 422),
        ({**base, "runId": "f" * 32}, 404),
        ({k: v for k, v in base.items() if k != "runId"}, 422),
        ({**base, "temperature": "21"}, 422),
    ]
    for body, expected in cases:
        status, answer = call(info, "POST", "/api/sensors/data", body)
        assert status == expected, (body, answer)
        assert answer["message"]
    call(info, "POST", f"/api/runs/{run['id']}/finish")
    status, answer = call(info, "POST", "/api/sensors/data", base)
    assert status == 409 and "RUNNING" in answer["message"]
    assert call(info, "POST", "/api/sensors/data", raw=b"[1, 2")[0] == 400
    assert call(info, "POST", "/api/sensors/data", raw=b"NaN")[0] == 400


def test_schema_1_batch_takes_the_mqtt_path(stack: LocalStack, info: StackInfo) -> None:
    run = _start(info)
    now = int(time.time() * 1000)
    batch = {
        "schema": 1,
        "thing": "exc-77",
        "site": "http-site",
        "equipment": "excavator",
        "boot": "0123abcd",
        "seq": 5,
        "runId": run["id"],
        "sentAt": now,
        "clockSynced": True,
        "readings": [
            {"sensorId": "engine", "ts": now - 1000, "temperature": 70.0},
            {"sensorId": "engine", "ts": now - 500, "temperature": 999.0},  # refused alone
        ],
    }
    raw = json.dumps(batch, separators=(",", ":")).encode()
    status, result = call(info, "POST", "/api/sensors/data", raw=raw)
    assert status == 201 and result["accepted"] == 1 and result["rejected"] == 1
    key = raw_key("http-site", "exc-77", now, "0123abcd", 5)
    assert result["rawKey"] == key
    body = stack.client("s3").get_object(Bucket=info.raw_bucket, Key=key)["Body"].read()
    assert body == raw  # the bytes as received, like the topic rule's S3 action
    status, page = call(info, "GET", f"/api/sensors/data?runId={run['id']}&thing=exc-77")
    assert status == 200 and [i["temperature"] for i in page["items"]] == [70.0]
    bad = {**batch, "schema": 2}
    status, answer = call(info, "POST", "/api/sensors/data", bad)
    assert status == 422 and "schema" in answer["message"]


def test_readings_query_needs_a_run_or_a_sensor(info: StackInfo) -> None:
    for query in ("", "?thing=exc-01", "?sensorId=engine", "?thing=a&sensorId=b&from=5&to=1"):
        status, body = call(info, "GET", "/api/sensors/data" + query)
        assert status == 400, query
        assert body["message"]


def test_readings_pagination(info: StackInfo) -> None:
    run = _start(info)
    base = int(time.time() * 1000) - 10_000
    for index in range(5):
        reading = {
            "runId": run["id"],
            "sensorId": "pager",
            "temperature": 20.0 + index,
            "ts": base + index,
        }
        assert call(info, "POST", "/api/sensors/data", reading)[0] == 201
    temperatures: list[float] = []
    cursor = None
    for _ in range(10):
        path = f"/api/sensors/data?runId={run['id']}&limit=2" + (
            f"&cursor={cursor}" if cursor else ""
        )
        status, page = call(info, "GET", path)
        assert status == 200
        temperatures.extend(i["temperature"] for i in page["items"])
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert temperatures == [20.0, 21.0, 22.0, 23.0, 24.0]


def test_openapi_document_is_served(info: StackInfo) -> None:
    status, doc = call(info, "GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    expected = {
        ("GET", "/api/runs/can-start"),
        ("GET", "/api/runs/running"),
        ("POST", "/api/runs/start"),
        ("POST", "/api/runs/{run_id}/finish"),
        ("POST", "/api/runs/interrupt-all"),
        ("GET", "/api/runs/{run_id}"),
        ("GET", "/api/runs"),
        ("GET", "/api/runs/all"),
        ("POST", "/api/sensors/data"),
        ("GET", "/api/sensors/data"),
        # the local dashboard's routes (docs/dashboards.md)
        ("GET", "/api/sites"),
        ("GET", "/api/sites/{site}/machines"),
        ("GET", "/api/things/{thing}"),
        ("GET", "/api/things/{thing}/readings"),
        ("GET", "/api/alerts"),
        ("GET", "/api/runs/{run_id}/activity"),
        ("POST", "/api/alerts/{thing}/{sensor}/{rule}/ack"),
        ("POST", "/api/alerts/{thing}/{sensor}/{rule}/snooze"),
    }
    assert operations == expected
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("params", [{"": 245}, {"tiny": 1e-200}, {"deep": [[[[1e-200]]]]}])
def test_odd_params_are_kept_and_every_run_endpoint_stays_up(
    info: StackInfo, params: dict[str, Any]
) -> None:
    run = _start(info, params=params)
    assert run["params"] == params
    for path in (f"/api/runs/{run['id']}", "/api/runs", "/api/runs/all", "/api/runs/running"):
        status, answer = call(info, "GET", path)
        assert status == 200, (path, answer)
    status, shown = call(info, "GET", f"/api/runs/{run['id']}")
    assert shown["params"] == params


@pytest.mark.parametrize("method", ["TRACE", "HEAD", "OPTIONS", "CONNECT", "BREW"])
def test_other_methods_get_a_json_405(info: StackInfo, method: str) -> None:
    status, answer = call(info, method, "/api/runs")
    assert status == 405
    if method != "HEAD":
        assert isinstance(answer, dict) and "not allowed" in answer["message"], answer


def test_json_nested_ten_thousand_deep_is_a_400(info: StackInfo) -> None:
    status, answer = call(info, "POST", "/api/sensors/data", raw=b"[" * 10_000 + b"]" * 10_000)
    assert status == 400 and "nested too deeply" in answer["message"], answer
    status, answer = call(info, "POST", "/api/runs/start", raw=b"[" * 10_000 + b"]" * 10_000)
    assert 400 <= status < 500 and isinstance(answer, dict), answer
