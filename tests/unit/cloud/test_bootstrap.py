"""One wiring point per cloud function: each part built once, shared, and named when missing."""

from __future__ import annotations

import pytest

from cloud.bootstrap import CloudParts, HandlerConfigError
from cloud.dashboard.health_store import HealthStore


def nowhere(service: str, table: str = "") -> dict[str, str]:
    """Clients are created but never used: building sends no request. DynamoDB's endpoint
    differs from the others', and the runs table is served with them, as on the local stack."""
    dynamodb = service == "dynamodb" and table != "runs"
    return {
        "endpoint_url": "http://127.0.0.1:8" if dynamodb else "http://127.0.0.1:9",
        "region_name": "eu-west-3",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }


ENV = {
    "RAW_BUCKET": "raw",
    "READINGS_TABLE": "readings",
    "ALERTS_TABLE": "alerts",
    "RUNS_TABLE": "runs",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-3:123456789012:alerts",
}


def test_the_api_and_ingestion_share_one_engine_and_one_ingest_service() -> None:
    parts = CloudParts(ENV, nowhere)
    services = parts.api_services
    assert parts.ingest.alerts is parts.alert_engine
    assert services.dashboard.engine is parts.alert_engine
    assert services.runs is parts.runs
    assert services.logger is parts.ingest.logger
    assert isinstance(parts.ingest.health, HealthStore)


def test_clients_and_tables_are_shared_within_a_process() -> None:
    parts = CloudParts(ENV, nowhere)
    assert parts.client("s3") is parts.client("s3")
    assert parts.table("ALERTS_TABLE") is parts.table("ALERTS_TABLE")
    assert parts.table("ALERTS_TABLE").name == "alerts"


def test_each_service_s_clients_use_the_endpoint_given_for_that_service() -> None:
    parts = CloudParts(ENV, nowhere)
    assert parts.client("s3").meta.endpoint_url == "http://127.0.0.1:9"
    assert parts.client("sns").meta.endpoint_url == "http://127.0.0.1:9"
    assert parts.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:8"
    assert parts.table("ALERTS_TABLE").meta.client.meta.endpoint_url == "http://127.0.0.1:8"
    assert parts.emulated


def test_a_table_served_elsewhere_gets_clients_of_its_own_endpoint() -> None:
    parts = CloudParts(ENV, nowhere)
    assert parts.table("RUNS_TABLE").meta.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert parts.client("dynamodb", "runs").meta.endpoint_url == "http://127.0.0.1:9"
    assert parts.client("dynamodb", "runs") is parts.client("dynamodb", "runs")
    assert parts.table("READINGS_TABLE").meta.client.meta.endpoint_url == "http://127.0.0.1:8"
    # the tables of one endpoint share its resource
    readings, alerts = parts.table("READINGS_TABLE"), parts.table("ALERTS_TABLE")
    assert readings.meta.client is alerts.meta.client


def test_without_endpoints_clients_go_to_aws() -> None:
    parts = CloudParts(ENV)
    assert not parts.emulated


def test_given_logger_and_metrics_are_used() -> None:
    from aws_lambda_powertools import Logger, Metrics

    logger, metrics = Logger(service="given"), Metrics(namespace="Given")
    parts = CloudParts(ENV, nowhere, logger=logger, metrics=metrics)
    assert parts.ingest.logger is logger
    assert parts.ingest.metrics is metrics


@pytest.mark.parametrize("missing", ["READINGS_TABLE", "RAW_BUCKET", "ALERTS_TABLE"])
def test_a_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(HandlerConfigError, match=f"environment variable {missing}"):
        CloudParts(env, nowhere).ingest  # noqa: B018


@pytest.mark.parametrize(("raw", "expected"), [("soon", "whole number"), ("-5", "0 or more")])
def test_a_malformed_refresh_interval_is_refused(raw: str, expected: str) -> None:
    env = {**ENV, "ALERT_SEEN_REFRESH_MS": raw}
    with pytest.raises(HandlerConfigError, match=f"ALERT_SEEN_REFRESH_MS.*{expected}"):
        CloudParts(env, nowhere).alert_engine  # noqa: B018


def test_a_run_links_to_its_dashboard_when_a_template_is_set() -> None:
    parts = CloudParts({**ENV, "DASHBOARD_URL_TEMPLATE": "https://x/#/runs/{runId}"}, nowhere)
    assert parts.dashboard_url("abc") == "https://x/#/runs/abc"
    assert CloudParts(ENV, nowhere).dashboard_url("abc") == ""
