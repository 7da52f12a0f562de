"""One log schema: the agent's JSON lines and the functions' carry the same keys and formats."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from typing import Any

from cloud.bootstrap import CloudParts, new_logger
from cloud.local.functions import LocalContext
from device.logs import JsonFormatter

COMMON = {"level", "location", "message", "timestamp", "service"}
RFC3339_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
LAMBDA_CONTEXT = {"function_request_id", "cold_start", "function_name"}


def _agent_line() -> dict[str, Any]:
    record = logging.LogRecord(
        "chantier.agent", logging.WARNING, "agent.py", 12, "queue %d%%", (90,), None
    )
    record.thing = "exc-01"
    return dict(json.loads(JsonFormatter().format(record)))


def _function_lines() -> list[dict[str, Any]]:
    stream = io.StringIO()
    # Powertools configures a service's logger once per process: a fresh name per call.
    service = f"chantier-test-schema-{uuid.uuid4().hex[:8]}"
    logger = new_logger(service, logging.StreamHandler(stream))
    parts = CloudParts({}, logger=logger)

    def handler(event: Any, context: Any) -> dict[str, Any]:
        logger.warning("queue %d%%", 90, extra={"thing": "exc-01"})
        return {}

    entry = parts.entry_point(handler)
    entry({}, LocalContext(function_name="ingest"))
    entry({}, LocalContext(function_name="ingest"))
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_agent_and_functions_share_keys_and_formats() -> None:
    agent = _agent_line()
    first = _function_lines()[0]
    for line in (agent, first):
        assert set(line) >= COMMON, line
        assert line["level"] == "WARNING" and line["message"] == "queue 90%"
        assert RFC3339_UTC_MS.match(line["timestamp"]), line["timestamp"]
        assert line["thing"] == "exc-01"
    assert agent["service"] == "chantier-agent"
    assert first["service"].startswith("chantier-test-schema")


def test_every_function_line_carries_the_request_id_and_cold_start() -> None:
    first, second = _function_lines()
    assert set(first) >= LAMBDA_CONTEXT and set(second) >= LAMBDA_CONTEXT
    # Cold start is per process (the first invocation anywhere in it): later ones say False.
    assert isinstance(first["cold_start"], bool) and second["cold_start"] is False
    assert first["function_request_id"] != second["function_request_id"]
