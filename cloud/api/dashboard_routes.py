"""Dashboard routes on the API resolver: machines, readings, alerts, and operator actions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field

from chantier.names import NAME_PATTERN
from cloud.alerts.engine import UnknownRuleError
from cloud.alerts.records import AlertKey, InvalidTransitionError
from cloud.api.errors import ApiError, UnprocessableError
from cloud.api.models import RUN_ID_PATTERN
from cloud.dashboard.service import SEVERITIES, DashboardService, UnknownMachineError

_NAME = re.compile(NAME_PATTERN)
_RUN_ID = re.compile(RUN_ID_PATTERN)
# Machine-wide alerts (offline, data loss) use the sensor id `*`.
_SENSOR = re.compile(rf"^\*$|{NAME_PATTERN}")
MAX_SNOOZE_MIN = 7 * 24 * 60
# Readings are keyed by 13-digit times; a longer number would sort wrongly against them.
MAX_EPOCH_MS = 9_999_999_999_999


class DashboardNotFoundError(ApiError):
    """The machine or alert named in the path does not exist."""

    status = 404


class AlertActionConflictError(ApiError):
    """The alert's state does not allow the action (e.g. acknowledging a NORMAL alert)."""

    status = 409


class DashboardUnavailableError(ApiError):
    """The API was built without the dashboard's collaborators."""

    status = 503


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=500)


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: float = Field(gt=0, le=MAX_SNOOZE_MIN)
    note: str = Field(default="", max_length=500)


def _json(body: Any) -> Response:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, ensure_ascii=False),
    )


def _name(value: str, what: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not pattern.match(value):
        raise UnprocessableError(
            f"{what} {value[:80]!r}: expected lowercase letters, digits and dashes"
        )
    return value


def _severities(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = wanted - set(SEVERITIES)
    if unknown:
        raise UnprocessableError(
            f"severity {sorted(unknown)[0]!r}: expected one or more of {', '.join(SEVERITIES)}"
        )
    return wanted


def register(
    app: APIGatewayHttpResolver,
    dashboard: Callable[[], DashboardService | None],
    username: Callable[[], str],
) -> None:
    """Add the dashboard routes; `username` checks the identity and returns the user."""

    def service() -> DashboardService:
        username()  # never anonymous, even for reads
        current = dashboard()
        if current is None:
            raise DashboardUnavailableError("the dashboard is not configured on this API")
        return current

    def key(thing: str, sensor: str, rule: str) -> AlertKey:
        return AlertKey(
            _name(thing, "thing"), _name(sensor, "sensor", _SENSOR), _name(rule, "rule")
        )

    def act(action: Callable[[], dict[str, Any]]) -> Response:
        try:
            return _json(action())
        except UnknownRuleError as exc:
            raise DashboardNotFoundError(str(exc)) from None
        except InvalidTransitionError as exc:
            raise AlertActionConflictError(str(exc)) from None

    @app.get("/api/sites", summary="Sites with their machine count, open alerts and status")
    def sites():
        return _json({"items": service().sites()})

    @app.get("/api/sites/<site>/machines", summary="Machines of a site: status, last readings")
    def site_machines(site: str):
        return _json(service().site_machines(_name(site, "site")))

    @app.get("/api/things/<thing>", summary="One machine: status, health, alerts and history")
    def machine(thing: str):
        current = service()
        try:
            return _json(current.machine(_name(thing, "thing")))
        except UnknownMachineError as exc:
            raise DashboardNotFoundError(str(exc)) from None

    @app.get("/api/things/<thing>/readings", summary="A machine's readings per sensor over time")
    def readings(
        thing: str,
        start_ms: Annotated[int | None, Query(alias="from", ge=0, le=MAX_EPOCH_MS)] = None,
        end_ms: Annotated[int | None, Query(alias="to", ge=0, le=MAX_EPOCH_MS)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 2000,
    ):
        current = service()
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise UnprocessableError(f"from {start_ms} is after to {end_ms}: expected from <= to")
        return _json(current.readings(_name(thing, "thing"), start_ms, end_ms, limit))

    @app.get(
        "/api/runs/<run_id>/activity",
        summary="A run's machines, batch latency (sentAt to stored) and alert transitions",
    )
    def run_activity(
        run_id: str,
        start_ms: Annotated[int, Query(alias="from", ge=0, le=MAX_EPOCH_MS)] = 0,
        end_ms: Annotated[int | None, Query(alias="to", ge=0, le=MAX_EPOCH_MS)] = None,
    ):
        current = service()
        if not _RUN_ID.match(run_id):
            raise DashboardNotFoundError(
                f"run {run_id[:80]!r} does not exist: ids are 32 characters"
            )
        return _json(current.run(run_id, start_ms, end_ms))

    @app.get("/api/alerts", summary="Open alerts, filtered by site and severity")
    def alerts(
        site: Annotated[str | None, Query(max_length=64)] = None,
        severity: Annotated[str | None, Query(max_length=64)] = None,
    ):
        current = service()
        where = _name(site, "site") if site else None
        return _json({"items": current.open_alerts(where, _severities(severity))})

    @app.post("/api/alerts/<thing>/<sensor>/<rule>/ack", summary="Acknowledge an alert")
    def acknowledge(
        thing: str, sensor: str, rule: str, body: Annotated[AckRequest | None, Body()] = None
    ):
        current, who = service(), username()
        request = body or AckRequest()
        return act(lambda: current.acknowledge(key(thing, sensor, rule), who, request.note))

    @app.post("/api/alerts/<thing>/<sensor>/<rule>/snooze", summary="Snooze an alert for minutes")
    def snooze(thing: str, sensor: str, rule: str, body: Annotated[SnoozeRequest, Body()]):
        current, who = service(), username()
        return act(lambda: current.snooze(key(thing, sensor, rule), who, body.minutes, body.note))
