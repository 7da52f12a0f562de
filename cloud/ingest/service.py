"""Ingestion: validates batches and health messages, keeps readings, drives alert state.

The same service serves the telemetry and health topic rules and the HTTP API's sensor input;
its collaborators are injected (cloud/bootstrap.py wires them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chantier.telemetry import encode_message
from cloud.ingest.error_archive import ErrorArchive
from cloud.ingest.readings_store import ReadingsStore
from cloud.ingest.validation import validate_document

if TYPE_CHECKING:
    from cloud.alerts.engine import AlertEngine


class HealthSink(Protocol):
    """Where the last health message of each machine is kept."""

    def put(self, message: dict[str, Any]) -> None: ...


@dataclass
class IngestService:
    """The ingestion logic with its collaborators injected."""

    readings: ReadingsStore
    errors: ErrorArchive
    alerts: AlertEngine
    logger: Logger
    metrics: Metrics
    # Keeps the last health message per machine for the dashboard (cloud/dashboard/health_store.py).
    health: HealthSink

    def handle(self, event: Any) -> dict[str, Any]:
        if isinstance(event, dict) and event.get("kind") == "health":
            return self._health(event)
        return self._telemetry(event)

    def _telemetry(self, event: Any) -> dict[str, Any]:
        keys = (
            {k: event.get(k) for k in ("thing", "boot", "seq")} if isinstance(event, dict) else {}
        )
        self.logger.thread_safe_append_keys(**keys)
        try:
            outcome = validate_document(event)
            for rejection in outcome.rejections:
                self.logger.warning(
                    "rejected", extra={"reason": rejection.reason, "detail": rejection.detail}
                )
                self.metrics.add_metric(name="readings_rejected", unit=MetricUnit.Count, value=1)
            if outcome.rejections:
                raw = encode_message(event) if _jsonable(event) else repr(event).encode()
                key = self.errors.keep(raw, outcome.rejections, keys)
                self.logger.info("kept refused input", extra={"key": key})
            batch = outcome.batch
            if batch is None:
                return {"accepted": 0, "rejected": len(outcome.rejections), "transitions": 0}
            # Alerts first: they are the latency that matters (reading -> ACTIVE). A failure
            # after them is safe to retry, since the engine drops a batch it already applied and
            # the hot-store item is keyed by the batch's name.
            transitions = self.alerts.process_batch(batch)
            stored = self.readings.put_batch(batch)
            for transition in transitions:
                self.logger.info("alert transition", extra={"transition": transition.as_dict()})
            temperatures = [r["temperature"] for r in batch["readings"]]
            self.metrics.add_metric(
                name="sensor_data_ingested", unit=MetricUnit.Count, value=stored
            )
            self.metrics.add_metric(
                name="temperature_avg",
                unit=MetricUnit.Count,
                value=sum(temperatures) / len(temperatures),
            )
            self.metrics.add_metric(
                name="processing_lag_ms",
                unit=MetricUnit.Milliseconds,
                value=max(0, int(time.time() * 1000) - batch["sentAt"]),
            )
            return {
                "accepted": stored,
                "rejected": len(outcome.rejections),
                "transitions": len(transitions),
            }
        finally:
            self.logger.thread_safe_remove_keys(list(keys))

    def _health(self, event: dict[str, Any]) -> dict[str, Any]:
        transitions = self.alerts.process_health(event)
        self.health.put(event)
        self.metrics.add_metric(name="health_received", unit=MetricUnit.Count, value=1)
        self.logger.info(
            "health", extra={"thing": event.get("thing"), "transitions": len(transitions)}
        )
        return {"health": True, "transitions": len(transitions)}


def _jsonable(value: Any) -> bool:
    try:
        encode_message(value)
    except (TypeError, ValueError):
        return False
    return True
