"""The HTTP API routes (Powertools APIGatewayHttpResolver); services are injected, no AWS here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.metrics import MetricUnit

from cloud.api.dashboard_routes import register as register_dashboard
from cloud.api.errors import ApiError, RunNotFoundError
from cloud.api.identity import Identity, identity_from_event
from cloud.api.models import RUN_ID_PATTERN, FinishRunRequest, StartRunRequest
from cloud.api.openapi import finish_document
from cloud.api.runs import COMPLETED, FAILED, Run, RunService
from cloud.api.sensors import ReadingFilter, SensorDataService
from cloud.api.validation_text import describe_errors

_RUN_ID_RE = re.compile(RUN_ID_PATTERN)
API_TITLE = "Chantier Connecté API"
API_VERSION = "1.0.0"


def _json(status: int, body: Any) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, ensure_ascii=False),
    )


def _error(status: int, message: str) -> Response:
    return _json(status, {"message": message})


@dataclass
class Services:
    runs: RunService
    sensors: SensorDataService
    logger: Logger
    metrics: Metrics
    dashboard: Any = None  # cloud.dashboard.service.DashboardService; None: routes answer 503


def _checked_id(run_id: str) -> str:
    # Anything that is not one of our ids cannot name a run; refusing it early also keeps
    # oversized or odd strings away from the table's key.
    if not _RUN_ID_RE.match(run_id):
        raise RunNotFoundError(f"run {run_id[:80]!r} does not exist: ids are 32 hex characters")
    return run_id


def build_app(services: Services) -> APIGatewayHttpResolver:
    """The resolver with every route of the design table."""
    app = APIGatewayHttpResolver(enable_validation=True)
    runs = services.runs
    metrics = services.metrics
    logger = services.logger

    def who() -> Identity:
        return identity_from_event(app.current_event.raw_event)

    def count_closed(closed: list[Run]) -> None:
        for run in closed:
            name = {COMPLETED: "run_completed", FAILED: "run_failed"}.get(run.status)
            metrics.add_metric(name=name or "run_interrupted", unit=MetricUnit.Count, value=1)

    # ---------- errors: always JSON {"message": ...}, never a stack trace ----------
    @app.exception_handler(ApiError)
    def on_api_error(exc: ApiError) -> Response:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    def on_invalid(exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "body is not valid JSON")
        return _error(422, describe_errors(errors))

    @app.not_found
    def on_not_found(_exc: Exception) -> Response:
        event = app.current_event
        allowed = allowed_methods(app, event.path)
        if allowed:
            response = _error(
                405,
                f"{event.http_method} is not allowed on {event.path[:200]}: "
                f"expected {' or '.join(allowed)}",
            )
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return _error(404, f"no route {event.http_method} {event.path}: see /api/openapi.json")

    @app.exception_handler(RecursionError)
    def on_too_deep(_exc: RecursionError) -> Response:
        return _error(400, "body is not valid JSON: nested too deeply")

    @app.exception_handler(Exception)
    def on_unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        return _error(500, "internal error: the request was logged, please retry later")

    # ---------- runs ----------
    @app.get("/api/runs/can-start", summary="Is a new run allowed (at most 5 running)")
    def can_start():
        who()
        return _json(200, runs.can_start())

    @app.get("/api/runs/running", summary="Running runs, all users")
    def running():
        who()
        return _json(200, {"items": [r.to_dict() for r in runs.running()]})

    @app.get("/api/runs/all", summary="All runs, newest first")
    def all_runs():
        who()
        return _json(200, {"items": [r.to_dict() for r in runs.all()]})

    @app.post("/api/runs/start", summary="Start a run; 400 when 5 are running")
    def start(body: Annotated[StartRunRequest, Body()]):
        run = runs.start(who(), body)
        metrics.add_metric(name="run_started", unit=MetricUnit.Count, value=1)
        logger.info("run started", extra={"runId": run.id, "user": run.username})
        return _json(201, run.to_dict())

    @app.post("/api/runs/interrupt-all", summary="Interrupt every running run (admins)")
    def interrupt_all():
        closed = runs.interrupt_all(who())
        count_closed(closed)
        return _json(200, {"interrupted": [r.id for r in closed], "count": len(closed)})

    @app.post("/api/runs/<run_id>/finish", summary="Finish a run (owner or admin)")
    def finish(run_id: str, body: Annotated[FinishRunRequest | None, Body()] = None):
        request = body or FinishRunRequest()
        run = runs.finish(who(), _checked_id(run_id), request.status, request.note)
        count_closed([run])
        return _json(200, run.to_dict())

    @app.get("/api/runs/<run_id>", summary="One run")
    def show(run_id: str):
        who()
        return _json(200, runs.get(_checked_id(run_id)).to_dict())

    @app.get("/api/runs", summary="Runs, newest first, one page at a time")
    def page(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
    ):
        who()
        result = runs.page(limit, cursor)
        return _json(
            200,
            {"items": [r.to_dict() for r in result.runs], "nextCursor": result.next_cursor},
        )

    # ---------- sensor data ----------
    @app.post(
        "/api/sensors/data",
        summary="Ingest one simple reading or a schema-1 batch (same path as MQTT)",
    )
    def post_data():
        caller = who()
        event = app.current_event
        body = event.decoded_body or ""
        result = services.sensors.post(caller, body.encode() if isinstance(body, str) else body)
        return _json(201, result)

    @app.get(
        "/api/sensors/data",
        summary="Readings by run, thing, sensor and time range",
        description=(
            "Needs runId, or thing and sensorId; from/to are epoch ms, inclusive. Readings are "
            "kept one batch per item: a page lists the readings of successive batches (in the "
            "order of their first reading), each batch's in time order, and may end inside a "
            "batch. Follow nextCursor until it is null; a page may hold fewer than limit "
            "readings, even none, while nextCursor is not null."
        ),
    )
    def get_data(
        run_id: Annotated[str | None, Query(alias="runId", pattern=RUN_ID_PATTERN)] = None,
        thing: Annotated[str | None, Query(max_length=64)] = None,
        sensor_id: Annotated[str | None, Query(alias="sensorId", max_length=64)] = None,
        start_ms: Annotated[int | None, Query(alias="from", ge=0)] = None,
        end_ms: Annotated[int | None, Query(alias="to", ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
    ):
        who()
        where = ReadingFilter(run_id, thing, sensor_id, start_ms, end_ms)
        return _json(200, services.sensors.query(where, limit, cursor))

    # ---------- dashboard (machines, readings, alerts and operator actions) ----------
    register_dashboard(app, lambda: services.dashboard, lambda: who().username)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi():
        who()
        return _json(200, openapi_document(app))

    return app


def allowed_methods(app: APIGatewayHttpResolver, path: str) -> list[str]:
    """Methods that have a route for `path`, sorted; empty when no route matches it at all."""
    # Powertools answers every unmatched request through `not_found`; its routes are kept in
    # these two lists (the resolver has no public way to ask which methods a path takes).
    routes = [*getattr(app, "_static_routes", []), *getattr(app, "_dynamic_routes", [])]
    return sorted({route.method for route in routes if route.rule.match(path)})


def openapi_document(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The OpenAPI document of the resolver, completed with what the routes do by hand."""
    raw = json.loads(app.get_openapi_json_schema(title=API_TITLE, version=API_VERSION))
    return finish_document(raw)


def static_document() -> dict[str, Any]:
    """The OpenAPI document without any service behind it (for docs/openapi.json)."""
    placeholder: Any = None
    services = Services(placeholder, placeholder, Logger(service="openapi"), Metrics())
    return openapi_document(build_app(services))
