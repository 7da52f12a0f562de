"""Rollups Lambda: daily figures per machine as JSON lines under curated/daily/ for Athena.

Scheduled once a day (RollupsFunction in the template), it rolls up yesterday; an event
`{"dates": ["YYYY-MM-DD", ...]}` recomputes chosen days (backfill, late batches). Per day: one
query over the raw batches of the machines heard from since that day began (Athena in AWS, an
embedded engine on the local stack), one Scan of the alert history, the registry's thing
listing for hourly costs, and one object written whole, so any run can be repeated.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cloud.analytics.daily_sql import daily_query
from cloud.analytics.rollups import (
    RollupInputError,
    day_bounds,
    machine_rows,
    previous_day,
    to_json_lines,
)
from cloud.analytics.sources import hourly_costs, machines_seen, transitions_since, write_day
from cloud.bootstrap import Boto3Kwargs, CloudParts, Handler, LazyHandler, QueryEngine

MAX_DATES = 31


def _dates(event: Any, now_ms: int) -> list[str]:
    if isinstance(event, dict) and event.get("dates") is not None:
        dates = event["dates"]
        if not isinstance(dates, list) or not 1 <= len(dates) <= MAX_DATES:
            raise RollupInputError(f"dates: expected a list of 1 to {MAX_DATES} YYYY-MM-DD")
        for day in dates:
            day_bounds(str(day))  # refuses anything but YYYY-MM-DD
        return [str(d) for d in dates]
    return [previous_day(now_ms)]


def build(
    env: Mapping[str, str],
    boto3_kwargs: Boto3Kwargs | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    engine: QueryEngine | None = None,
) -> Handler:
    """Wire the rollups from environment variables; `boto3_kwargs` points clients elsewhere,
    `engine` replaces Athena (the local stack's embedded engine)."""
    parts = CloudParts(env, boto3_kwargs, logger, metrics)
    s3, iot, alerts = parts.client("s3"), parts.client("iot"), parts.table("ALERTS_TABLE")
    engine = engine or parts.athena
    raw_bucket = parts.setting("RAW_BUCKET")
    curated_bucket = env.get("CURATED_BUCKET") or raw_bucket
    logger, metrics = parts.logger, parts.metrics

    @parts.entry_point
    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        written = {}
        for day in _dates(event, time.time_ns() // 1_000_000):
            start, end = day_bounds(day)
            machines = machines_seen(alerts, start)
            rows = []
            if machines:
                sensor_rows = engine.rows(daily_query(day, start, end, machines))
                rows = machine_rows(
                    day, sensor_rows, transitions_since(alerts, start), hourly_costs(iot)
                )
            key = write_day(s3, curated_bucket, day, to_json_lines(rows))
            written[day] = {"key": key, "machines": len(rows)}
            if rows:  # a custom metric is billed for the hours it is emitted: none when idle
                metrics.add_metric(
                    name="rollup_rows_written", unit=MetricUnit.Count, value=len(rows)
                )
            logger.info("rollups written", extra={"date": day, "key": key, "rows": len(rows)})
        return {"written": written}

    return lambda_handler


handler = LazyHandler(build)
