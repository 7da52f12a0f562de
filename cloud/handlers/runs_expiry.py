"""Scheduled Lambda: closes runs past their duration, so a forgotten run frees its slot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cloud.bootstrap import Boto3Kwargs, CloudParts, Handler, LazyHandler


def build(
    env: Mapping[str, str],
    boto3_kwargs: Boto3Kwargs | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
) -> Handler:
    """Wire the expiry from the environment; `boto3_kwargs` points clients elsewhere."""
    parts = CloudParts(env, boto3_kwargs, logger, metrics)
    runs, logger, metrics = parts.runs, parts.logger, parts.metrics

    @parts.entry_point
    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        closed = runs.expire_overdue()
        for run in closed:
            logger.info("run closed after its duration", extra={"runId": run.id})
        if closed:
            metrics.add_metric(name="run_completed", unit=MetricUnit.Count, value=len(closed))
        return {"closed": [run.id for run in closed]}

    return lambda_handler


handler = LazyHandler(build)
