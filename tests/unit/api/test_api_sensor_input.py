"""The simple reading shape: validation, defaults, and conversion to a schema-1 batch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.api_fakes import FakeClock, MemoryRuns

from cloud.api.errors import (
    BadRequestError,
    ForbiddenError,
    RunConflictError,
    RunNotFoundError,
    UnprocessableError,
)
from cloud.api.identity import Identity
from cloud.api.models import StartRunRequest
from cloud.api.runs import RunService
from cloud.api.sensors import ReadingFilter, SensorDataService
from cloud.ingest.identity import HTTP, Source, ThingInfo
from cloud.ingest.validation import validate_document

ADMIN = Identity("root", admin=True)


class Registry:
    """ThingDirectory with the machines given, everyone else unknown."""

    def __init__(self, *things: ThingInfo) -> None:
        self.things = {t.thing: t for t in things}

    def lookup(self, thing: str) -> ThingInfo | None:
        return self.things.get(thing)


class IngestMemory:
    """The ingest service's HTTP entry: records what it is handed, accepts valid batches."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, Source]] = []

    def telemetry(self, raw: bytes, source: Source) -> dict[str, Any]:
        self.calls.append((raw, source))
        outcome = validate_document(json.loads(raw))
        accepted = len(outcome.batch["readings"]) if outcome.batch else 0
        return {"accepted": accepted, "rejected": len(outcome.rejections), "rawKey": "raw/k"}


class NoReadings:
    def query(self, where: ReadingFilter, limit: int, cursor: str | None) -> Any:
        return [], None


EXC = ThingInfo("exc-01", "lyon", "excavator")


def _setup(
    params: dict[str, Any] | None = None,
    things: list[str] | None = None,
    owner: Identity = ADMIN,
) -> tuple[SensorDataService, str, IngestMemory]:
    clock = FakeClock()
    runs = RunService(MemoryRuns(), clock, lambda i: "")
    request = StartRunRequest(
        duration=60, interval=1, devices=1, params=params or {}, things=things
    )
    run = runs.start(owner, request)
    ingest = IngestMemory()
    return SensorDataService(runs, Registry(EXC), ingest, NoReadings(), clock), run.id, ingest


def _batch(thing: str, site: str, run_id: str | None, equipment: str = "excavator") -> bytes:
    now = FakeClock()()
    return json.dumps(
        {
            "schema": 1,
            "thing": thing,
            "site": site,
            "equipment": equipment,
            "boot": "0123abcd",
            "seq": 1,
            "runId": run_id,
            "sentAt": now,
            "clockSynced": True,
            "readings": [{"sensorId": "engine", "ts": now, "temperature": 20.0}],
        }
    ).encode()


def test_simple_reading_becomes_a_valid_batch() -> None:
    service, run_id, ingest = _setup()
    body = {"runId": run_id, "sensorId": "probe", "temperature": 20.5, "pressure": 1000.0}
    result = service.post(ADMIN, json.dumps(body).encode())
    assert result["accepted"] == 1 and result["thing"] == "http-client" and result["site"] == "http"
    [(raw, source)] = ingest.calls
    batch = json.loads(raw)
    assert validate_document(batch).rejections == []
    assert batch["runId"] == run_id and batch["readings"][0]["pressure"] == 1000.0
    assert "humidity" not in batch["readings"][0]
    # Not a registered machine: one of the caller's run, whose equipment the API vouches for.
    assert (source.channel, source.thing, source.site) == (HTTP, "http-client", "http")
    assert source.run_id == run_id and source.equipment == "site-cabin"


def test_defaults_come_from_the_run_params_then_the_body() -> None:
    service, run_id, _ = _setup({"thing": "crane-09", "site": "nantes", "equipment": "crane"})
    base = {"runId": run_id, "sensorId": "probe", "temperature": 1.0}
    batch = service.batch_from_simple(base)
    assert (batch["thing"], batch["site"], batch["equipment"]) == ("crane-09", "nantes", "crane")
    batch = service.batch_from_simple({**base, "thing": "gen-02", "site": "lyon"})
    assert (batch["thing"], batch["site"]) == ("gen-02", "lyon")


def test_each_http_reading_is_its_own_batch() -> None:
    service, run_id, _ = _setup()
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
    service, run_id, ingest = _setup()
    body = {"runId": run_id, "sensorId": "probe", "temperature": 20.0, **change}
    with pytest.raises(UnprocessableError):
        service.post(ADMIN, json.dumps(body).encode())
    assert ingest.calls == []


def test_unknown_or_finished_run() -> None:
    service, run_id, _ = _setup()
    with pytest.raises(RunNotFoundError):
        service.batch_from_simple({"runId": "a" * 32, "sensorId": "p", "temperature": 1.0})
    service._runs.finish(ADMIN, run_id)
    with pytest.raises(RunConflictError):
        service.batch_from_simple({"runId": run_id, "sensorId": "p", "temperature": 1.0})


@pytest.mark.parametrize("raw", [b"", b"{", b"NaN", b'{"a": Infinity}', b"\xff"])
def test_malformed_bodies_are_400(raw: bytes) -> None:
    service, _, _ = _setup()
    with pytest.raises(BadRequestError):
        service.post(ADMIN, raw)


def test_non_object_body_is_422() -> None:
    service, _, _ = _setup()
    with pytest.raises(UnprocessableError, match="JSON object"):
        service.post(ADMIN, b"[1, 2]")


def test_invalid_batch_is_refused_before_ingestion() -> None:
    service, _, ingest = _setup()
    with pytest.raises(UnprocessableError, match="schema"):
        service.post(ADMIN, b'{"schema": 7}')
    assert ingest.calls == []


def test_a_batch_stamped_far_ahead_is_refused() -> None:
    service, run_id, ingest = _setup()
    batch = json.loads(_batch("probe-01", "lab", run_id))
    batch["readings"][0]["ts"] = 4_000_000_000_000  # in 2096, inside the schema's range
    with pytest.raises(UnprocessableError, match="min after the message was received"):
        service.post(ADMIN, json.dumps(batch).encode())
    assert ingest.calls == []


def test_a_user_writes_only_into_a_run_of_their_own() -> None:
    service, run_id, ingest = _setup(owner=Identity("alice", admin=False))
    with pytest.raises(ForbiddenError, match="belongs to alice"):
        service.post(Identity("mallory", admin=False), _batch("probe-01", "lab", run_id))
    assert service.post(Identity("alice", admin=False), _batch("probe-01", "lab", run_id))
    assert [source.thing for _, source in ingest.calls] == ["probe-01"]


def test_a_registered_machine_is_not_spoken_for_over_http() -> None:
    service, run_id, ingest = _setup()
    with pytest.raises(ForbiddenError, match="registered machine"):
        service.post(ADMIN, _batch("exc-01", "lyon", run_id))
    with pytest.raises(ForbiddenError, match="without a runId"):
        service.post(Identity("alice", admin=False), _batch("exc-01", "lyon", None))
    assert ingest.calls == []


def test_an_admin_replays_a_registered_machines_batch_bound_by_the_registry() -> None:
    service, _, ingest = _setup()
    service.post(ADMIN, _batch("exc-01", "lyon", None))
    [(_, source)] = ingest.calls
    assert source.equipment is None and source.run_id is None  # the registry binds it


def test_a_run_started_with_machines_takes_only_those() -> None:
    service, run_id, ingest = _setup(things=["exc-01"])
    with pytest.raises(ForbiddenError, match="not started with thing 'probe-01'"):
        service.post(ADMIN, _batch("probe-01", "lab", run_id))
    service.post(ADMIN, _batch("exc-01", "lyon", run_id))
    [(_, source)] = ingest.calls
    assert source.run_id == run_id and source.equipment is None


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
    service, _, _ = _setup()
    with pytest.raises(BadRequestError):
        service.query(where, 10, None)
