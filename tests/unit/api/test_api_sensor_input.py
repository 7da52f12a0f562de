"""The simple reading shape: validation, defaults, and conversion to a schema-1 batch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.api_fakes import FakeClock, MemoryRuns

from cloud.api.errors import BadRequestError, RunConflictError, RunNotFoundError, UnprocessableError
from cloud.api.identity import Identity
from cloud.api.models import StartRunRequest
from cloud.api.runs import RunService
from cloud.api.sensors import ReadingFilter, SensorDataService
from cloud.ingest.validation import validate_document

ADMIN = Identity("root", admin=True)


class RawMemory:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body


class NoReadings:
    def query(self, where: ReadingFilter, limit: int, cursor: str | None) -> Any:
        return [], None


def _setup(
    params: dict[str, Any] | None = None,
) -> tuple[SensorDataService, str, list[Any], RawMemory]:
    clock = FakeClock()
    runs = RunService(MemoryRuns(), clock, lambda i: "")
    run = runs.start(
        ADMIN, StartRunRequest(duration=60, interval=1, devices=1, params=params or {})
    )
    ingested: list[Any] = []
    raw = RawMemory()

    def ingest(document: Any) -> dict[str, Any]:
        ingested.append(document)
        outcome = validate_document(document)
        accepted = len(outcome.batch["readings"]) if outcome.batch else 0
        return {"accepted": accepted, "rejected": len(outcome.rejections)}

    return SensorDataService(runs, raw, ingest, NoReadings(), clock), run.id, ingested, raw


def test_simple_reading_becomes_a_valid_batch() -> None:
    service, run_id, ingested, raw = _setup()
    body = {"runId": run_id, "sensorId": "probe", "temperature": 20.5, "pressure": 1000.0}
    result = service.post(json.dumps(body).encode())
    assert result["accepted"] == 1 and result["thing"] == "http-client" and result["site"] == "http"
    [batch] = ingested
    assert validate_document(batch).rejections == []
    assert batch["runId"] == run_id and batch["readings"][0]["pressure"] == 1000.0
    assert "humidity" not in batch["readings"][0]
    assert json.loads(raw.objects[result["rawKey"]]) == batch


def test_defaults_come_from_the_run_params_then_the_body() -> None:
    service, run_id, _, _ = _setup({"thing": "crane-09", "site": "nantes", "equipment": "crane"})
    base = {"runId": run_id, "sensorId": "probe", "temperature": 1.0}
    batch = service.batch_from_simple(base)
    assert (batch["thing"], batch["site"], batch["equipment"]) == ("crane-09", "nantes", "crane")
    batch = service.batch_from_simple({**base, "thing": "gen-02", "site": "lyon"})
    assert (batch["thing"], batch["site"]) == ("gen-02", "lyon")


def test_each_http_reading_is_its_own_batch() -> None:
    service, run_id, _, _ = _setup()
    body = {"runId": run_id, "sensorId": "probe", "temperature": 1.0}
    first, second = service.batch_from_simple(body), service.batch_from_simple(body)
    assert first["boot"] != second["boot"]


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 85.01},
        {"temperature": None},
        {"temperature": True},
        {"humidity": -1},
        {"pressure": 2000},
        {"sensorId": "Bad Name"},
        {"thing": "-bad"},
        {"site": "a" * 65},
        {"equipment": "tractor"},
        {"ts": 1},
        {"extra": 1},
        {"runId": "short"},
    ],
)
def test_invalid_simple_readings_are_422(change: dict[str, Any]) -> None:
    service, run_id, ingested, _ = _setup()
    body = {"runId": run_id, "sensorId": "probe", "temperature": 20.0, **change}
    with pytest.raises(UnprocessableError):
        service.post(json.dumps(body).encode())
    assert ingested == []


def test_unknown_or_finished_run() -> None:
    service, run_id, _, _ = _setup()
    with pytest.raises(RunNotFoundError):
        service.batch_from_simple({"runId": "a" * 32, "sensorId": "p", "temperature": 1.0})
    service._runs.finish(ADMIN, run_id)
    with pytest.raises(RunConflictError):
        service.batch_from_simple({"runId": run_id, "sensorId": "p", "temperature": 1.0})


@pytest.mark.parametrize("raw", [b"", b"{", b"NaN", b'{"a": Infinity}', b"\xff"])
def test_malformed_bodies_are_400(raw: bytes) -> None:
    service, _, _, _ = _setup()
    with pytest.raises(BadRequestError):
        service.post(raw)


def test_non_object_body_is_422() -> None:
    service, _, _, _ = _setup()
    with pytest.raises(UnprocessableError, match="JSON object"):
        service.post(b"[1, 2]")


def test_invalid_batch_is_kept_and_refused() -> None:
    service, _, ingested, raw = _setup()
    with pytest.raises(UnprocessableError, match="schema"):
        service.post(b'{"schema": 7}')
    assert ingested == [{"schema": 7}] and raw.objects == {}


@pytest.mark.parametrize(
    "where",
    [
        ReadingFilter(),
        ReadingFilter(thing="exc-01"),
        ReadingFilter(sensor_id="engine"),
        ReadingFilter(run_id="a" * 32, start_ms=10, end_ms=5),
    ],
)
def test_reading_filters_that_cannot_be_served(where: ReadingFilter) -> None:
    service, _, _, _ = _setup()
    with pytest.raises(BadRequestError):
        service.query(where, 10, None)
