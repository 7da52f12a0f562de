"""HTTP API Lambda: the Powertools resolver wired to DynamoDB and S3.

In AWS the module-level `handler` wires itself from the environment on first use; the local
API server calls `build()` with clients pointed at moto instead.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from cloud.api.app import Services, build_app
from cloud.api.runs import RunService
from cloud.api.sensors import SensorDataService
from cloud.handlers.powertools_defaults import Handler, LazyHandler, powertools

# Most requests (reads) add no metric; that is expected, not worth a warning per request.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def now_ms() -> int:
    return int(time.time() * 1000)


def refuse_undecodable(event: Any) -> dict[str, Any] | None:
    """A 400 response for a body that is not UTF-8 text (JSON cannot be), else None."""
    if not isinstance(event, dict) or not event.get("body") or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(str(event["body"])).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return {
            "statusCode": 400,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": "body is not UTF-8 text: expected JSON"}),
            "isBase64Encoded": False,
        }
    return None


def json_only(event: Any) -> Any:
    """The API speaks JSON only: read every body as JSON, whatever type the client declared.

    `curl -d` declares form data by default; without this the validation would parse the
    body as a form and report every field missing, which misleads more than it helps.
    """
    if isinstance(event, dict) and event.get("body"):
        headers = {
            k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"
        }
        return {**event, "headers": {**headers, "content-type": "application/json"}}
    return event


def dashboard_url(env: Mapping[str, str]) -> Callable[[str], str]:
    """Link of a run's dashboard, from DASHBOARD_URL_TEMPLATE with a `{runId}` placeholder."""
    template = env.get("DASHBOARD_URL_TEMPLATE", "")
    return lambda run_id: template.replace("{runId}", run_id) if template else ""


def run_service(env: Mapping[str, str], boto3_kwargs: Mapping[str, str]) -> RunService:
    import boto3

    from cloud.api.runs_dynamodb import DynamoRunRepository

    kwargs = dict(boto3_kwargs)
    table = boto3.resource("dynamodb", **kwargs).Table(env["RUNS_TABLE"])
    repository = DynamoRunRepository(
        boto3.client("dynamodb", **kwargs), table, emulated=bool(kwargs.get("endpoint_url"))
    )
    return RunService(repository, now_ms, dashboard_url(env))


def services(
    env: Mapping[str, str], boto3_kwargs: Mapping[str, str], logger: Logger, metrics: Metrics
) -> Services:
    """Every collaborator of the routes, built once per container."""
    import boto3

    from cloud.api.raw_s3 import S3RawStore
    from cloud.api.readings_dynamodb import DynamoReadingsQuery
    from cloud.dashboard.dynamodb import DynamoDashboardReader
    from cloud.dashboard.service import DashboardService
    from cloud.handlers.alerting import alert_engine
    from cloud.handlers.ingest import IngestService
    from cloud.ingest.error_archive import ErrorArchive
    from cloud.ingest.readings_store import ReadingsStore

    kwargs = dict(boto3_kwargs)
    s3 = boto3.client("s3", **kwargs)
    dynamodb = boto3.resource("dynamodb", **kwargs)
    readings_table = dynamodb.Table(env["READINGS_TABLE"])
    engine = alert_engine(env, kwargs, dynamodb)
    ingest = IngestService(
        readings=ReadingsStore(readings_table),
        errors=ErrorArchive(s3, env["RAW_BUCKET"]),
        alerts=engine,
        logger=logger,
        metrics=metrics,
    )
    runs = run_service(env, kwargs)
    sensors = SensorDataService(
        runs,
        S3RawStore(s3, env["RAW_BUCKET"]),
        ingest.handle,
        DynamoReadingsQuery(readings_table),
        now_ms,
    )
    dashboard = DashboardService(
        DynamoDashboardReader(dynamodb.Table(env["ALERTS_TABLE"]), readings_table),
        engine.store,
        engine.rules,
        engine=engine,
    )
    return Services(runs=runs, sensors=sensors, logger=logger, metrics=metrics, dashboard=dashboard)


def build(
    env: Mapping[str, str],
    boto3_kwargs: Mapping[str, str] | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
) -> Handler:
    """Wire the API from environment variables; `boto3_kwargs` points clients elsewhere."""
    logger, metrics = powertools(env, logger, metrics)
    app = build_app(services(env, boto3_kwargs or {}, logger, metrics))

    @metrics.log_metrics
    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        refused = refuse_undecodable(event)
        return refused or app.resolve(json_only(event), context)

    return lambda_handler


handler = LazyHandler(build)
