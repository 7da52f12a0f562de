"""Sensor data over HTTP: the simple shape becomes a schema-1 batch, then follows the MQTT path."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from chantier.telemetry import MAX_MESSAGE_BYTES, encode_message
from cloud.api.errors import (
    BadRequestError,
    ForbiddenError,
    RunConflictError,
    UnprocessableError,
)
from cloud.api.identity import Identity
from cloud.api.models import (
    HTTP_DEFAULT_EQUIPMENT,
    HTTP_DEFAULT_SITE,
    HTTP_DEFAULT_THING,
    SimpleReading,
)
from cloud.api.runs import RUNNING, Run, RunService
from cloud.api.validation_text import describe
from cloud.ingest.identity import HTTP, Source, ThingDirectory
from cloud.ingest.validation import decode, validate_document

MAX_PAGE = 1000


class Ingest(Protocol):
    """The ingest service's entry for a batch received over HTTP (cloud/ingest/service.py)."""

    def telemetry(self, raw: bytes, source: Source) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ReadingFilter:
    """What GET /api/sensors/data asks for; at least a run, or a thing and a sensor."""

    run_id: str | None = None
    thing: str | None = None
    sensor_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None

    def check(self) -> ReadingFilter:
        if self.run_id is None and (self.thing is None or self.sensor_id is None):
            raise BadRequestError(
                "readings need a runId, or a thing and a sensorId: expected ?runId=… or "
                "?thing=…&sensorId=…"
            )
        if self.start_ms is not None and self.end_ms is not None and self.start_ms > self.end_ms:
            raise BadRequestError(
                f"from ({self.start_ms}) is after to ({self.end_ms}): expected from <= to"
            )
        return self


class ReadingsQuery(Protocol):
    def query(
        self, where: ReadingFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...


def _param(run: Run, name: str, default: str) -> str:
    value = run.params.get(name)
    return value if isinstance(value, str) and value else default


class SensorDataService:
    """Ingestion and queries of readings for the API."""

    def __init__(
        self,
        runs: RunService,
        things: ThingDirectory,
        ingest: Ingest,
        readings: ReadingsQuery,
        clock: Callable[[], int],
    ) -> None:
        self._runs = runs
        self._things = things
        self._ingest = ingest
        self._readings = readings
        self._clock = clock

    def post(self, who: Identity, body: bytes) -> dict[str, Any]:
        """Ingest a simple reading or a schema-1 batch; returns what was accepted."""
        if len(body) > MAX_MESSAGE_BYTES:
            raise UnprocessableError(
                f"body is {len(body)} bytes: expected at most {MAX_MESSAGE_BYTES}"
            )
        try:
            document = decode(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise UnprocessableError(
                "body must be a JSON object: a simple reading or a schema-1 batch"
            )
        if "schema" in document:
            return self._batch(who, document, body)
        batch = self.batch_from_simple(document)
        return self._batch(who, batch, encode_message(batch))

    def batch_from_simple(self, document: dict[str, Any]) -> dict[str, Any]:
        """The schema-1 batch of one simple reading, with the run's defaults applied."""
        try:
            reading = SimpleReading.model_validate(document)
        except ValidationError as exc:
            raise UnprocessableError(describe(exc)) from None
        run = self._runs.get(reading.runId)
        if run.status != RUNNING:
            raise RunConflictError(
                f"run {run.id} is {run.status}: readings in the simple shape need a RUNNING run"
            )
        now = self._clock()
        values = {
            k: v
            for k, v in (
                ("temperature", reading.temperature),
                ("humidity", reading.humidity),
                ("pressure", reading.pressure),
            )
            if v is not None
        }
        return {
            "schema": 1,
            "thing": reading.thing or _param(run, "thing", HTTP_DEFAULT_THING),
            "site": reading.site or _param(run, "site", HTTP_DEFAULT_SITE),
            "equipment": reading.equipment or _param(run, "equipment", HTTP_DEFAULT_EQUIPMENT),
            # A fresh boot id per request makes each HTTP reading its own batch and raw object.
            "boot": secrets.token_hex(8),
            "seq": 0,
            "runId": run.id,
            "sentAt": now,
            "clockSynced": True,
            "readings": [{"sensorId": reading.sensorId, "ts": reading.ts or now, **values}],
        }

    def _batch(self, who: Identity, document: dict[str, Any], raw: bytes) -> dict[str, Any]:
        received = self._clock()
        outcome = validate_document(document, received)
        batch = outcome.batch
        if batch is None:
            details = "; ".join(r.detail for r in outcome.rejections[:3])
            raise UnprocessableError(f"batch refused: {details}")
        source = self.source(who, batch, received)
        result = self._ingest.telemetry(raw, source)
        if result.get("refused"):
            details = "; ".join(result.get("rejections", [])[:3])
            error = RunConflictError if result["refused"] == "conflicting-resend" else None
            raise (error or UnprocessableError)(f"batch refused ({result['refused']}): {details}")
        return {
            "accepted": int(result.get("accepted", 0)),
            "rejected": int(result.get("rejected", 0)),
            "rejections": list(result.get("rejections", [])),
            "rawKey": result.get("rawKey"),
            "thing": batch["thing"],
            "site": batch["site"],
            "runId": batch.get("runId"),
        }

    def source(self, who: Identity, batch: dict[str, Any], received_ms: int) -> Source:
        """Whom a batch posted by `who` speaks for, or ForbiddenError (docs/api.md).

        The caller is a user, not a device: a registered machine speaks only through its
        certificate, unless it is one of the caller's run (or an admin replays its batch); a
        name the registry does not know is a machine of the caller's run, never of no run.
        """
        thing, run_id = batch["thing"], batch.get("runId")
        registered = self._things.lookup(thing) is not None
        if run_id is None:
            if registered and who.admin:
                return Source(batch["site"], thing, received_ms, HTTP)  # replay: registry binds
            raise ForbiddenError(
                f"a batch for {thing!r} without a runId: over HTTP a user writes into a run "
                "of theirs (only an admin may replay a registered machine's batch)"
            )
        run = self._runs.get(run_id)  # 404 for an unknown run
        if run.username != who.username and not who.admin:
            raise ForbiddenError(
                f"run {run_id} belongs to {run.username}: only its owner may write into it"
            )
        members = self._runs.members(run_id)
        if members and thing not in members:
            raise ForbiddenError(f"run {run_id} was not started with thing {thing!r}")
        if registered and thing not in members:
            raise ForbiddenError(
                f"thing {thing!r} is a registered machine: only its certificate speaks for it, "
                "unless the run was started with it"
            )
        equipment = None if registered else batch["equipment"]
        return Source(batch["site"], thing, received_ms, HTTP, equipment=equipment, run_id=run_id)

    def query(self, where: ReadingFilter, limit: int, cursor: str | None) -> dict[str, Any]:
        where.check()
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequestError(f"limit {limit} is out of range: expected 1 to {MAX_PAGE}")
        items, next_cursor = self._readings.query(where, limit, cursor)
        return {"items": items, "count": len(items), "nextCursor": next_cursor}


def json_safe(value: Any) -> Any:
    """Round-trip through JSON so Decimals from DynamoDB become plain numbers."""
    return json.loads(json.dumps(value, default=_number))


def _number(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
