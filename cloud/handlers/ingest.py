"""Ingestion Lambda: the telemetry and health topic rules invoke it with the message as the event.

In AWS the module-level `handler` wires itself from the environment on first use; the local
stack calls `build()` with clients pointed at moto instead. The logic is cloud/ingest/service.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from cloud.bootstrap import Boto3Kwargs, CloudParts, Handler, LazyHandler


def build(
    env: Mapping[str, str],
    boto3_kwargs: Boto3Kwargs | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
) -> Handler:
    """Wire the service from environment variables; `boto3_kwargs` points clients elsewhere."""
    parts = CloudParts(env, boto3_kwargs, logger, metrics)
    service = parts.ingest

    @parts.entry_point
    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        return service.handle(event)

    return lambda_handler


handler = LazyHandler(build)
