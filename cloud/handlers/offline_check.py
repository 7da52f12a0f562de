"""Scheduled Lambda: fires offline alerts for silent machines and ends due snoozes.

EventBridge invokes it every minute (see the template); the event itself carries nothing we
need, the engine reads the clock. The local stack's scheduler calls `build()` the same way.
"""

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
    """Wire the offline check from the environment; `boto3_kwargs` points clients elsewhere."""
    parts = CloudParts(env, boto3_kwargs, logger, metrics)
    engine, logger, metrics = parts.alert_engine, parts.logger, parts.metrics

    @parts.entry_point
    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        transitions = engine.check_offline()
        for transition in transitions:
            logger.info("alert transition", extra={"transition": transition.as_dict()})
        # Only when something moved: a custom metric is billed for every hour it is emitted,
        # and a quiet fleet (or none) should cost nothing here (docs/cost.md).
        if transitions:
            metrics.add_metric(
                name="offline_check_transitions", unit=MetricUnit.Count, value=len(transitions)
            )
        return {"transitions": len(transitions)}

    return lambda_handler


handler = LazyHandler(build)
