"""Helpers for alert tests and benchmarks on the local stack: crafted batches, state, SNS inbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chantier.names import topic
from chantier.telemetry import encode_message
from cloud.local.stack import LocalStack
from commands.simulator.fleet import BASIC_INGEST_PREFIX, Machine

SECOND = 1000
CHANTIER = Path(sys.executable).with_name("chantier")


def run_chantier(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The `chantier` command as a user runs it against this stack (its state folder)."""
    env = {**os.environ, "CHANTIER_STATE_DIR": stack.state_dir.as_posix()}
    argv = [str(CHANTIER), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def telemetry_topic(machine: Machine) -> str:
    """The Basic Ingest topic the agent publishes telemetry on, as in AWS."""
    return topic(machine.site, machine.thing, "telemetry", BASIC_INGEST_PREFIX)


def health_topic(machine: Machine) -> str:
    """The Basic Ingest topic the agent publishes its health messages on."""
    return topic(machine.site, machine.thing, "health", BASIC_INGEST_PREFIX)


def crafted_health(machine: Machine, sensors: dict[str, str], *, at_ms: int | None = None) -> bytes:
    """A schema-1 health message reporting each sensor's status (ok, failing, starting)."""
    return encode_message(
        {
            "schema": 1,
            "kind": "health",
            "thing": machine.thing,
            "site": machine.site,
            "equipment": machine.equipment,
            "boot": "a1b2c3d4",
            "sentAt": now_ms() if at_ms is None else at_ms,
            "agentVersion": "0.1.0",
            "uptimeS": 600,
            "clock": {"synced": True, "source": "auto"},
            "queue": {"depth": 0, "batches": 0, "oldestReadingTs": None},
            "dropped": {"sinceBoot": 0, "total": 0},
            "connectedSince": None,
            "sensors": [
                {
                    "sensorId": sensor,
                    "status": status,
                    "lastError": "OSError: [Errno 121] Remote I/O error"
                    if status == "failing"
                    else None,
                    "errors": 12 if status == "failing" else 0,
                }
                for sensor, status in sensors.items()
            ],
        }
    )


def crafted_batch(
    machine: Machine,
    seq: int,
    temperatures: Sequence[float],
    *,
    end_ms: int | None = None,
    step_ms: int = 5 * SECOND,
    sensor: str = "engine",
    boot: str = "a1b2c3d4",
) -> bytes:
    """A schema-1 batch whose readings end at `end_ms` (default now), `step_ms` apart."""
    end = now_ms() if end_ms is None else end_ms
    count = len(temperatures)
    readings = [
        {
            "sensorId": sensor,
            "ts": end - (count - 1 - index) * step_ms,
            "temperature": float(value),
            "humidity": 40.0,
            "pressure": 1010.0,
        }
        for index, value in enumerate(temperatures)
    ]
    return encode_message(
        {
            "schema": 1,
            "thing": machine.thing,
            "site": machine.site,
            "equipment": machine.equipment,
            "boot": boot,
            "seq": seq,
            "runId": None,
            "sentAt": end,
            "clockSynced": True,
            "readings": readings,
        }
    )


def alerts_table(stack: LocalStack) -> Any:
    assert stack.info is not None, "stack not started"
    return stack.resource("dynamodb").Table(stack.info.alerts_table)


def state_item(table: Any, thing: str, sensor: str, rule: str) -> dict[str, Any] | None:
    """The stored alert state of (thing, sensor, rule), read consistently."""
    response = table.get_item(
        Key={"pk": f"THING#{thing}", "sk": f"STATE#{sensor}#{rule}"}, ConsistentRead=True
    )
    item = response.get("Item")
    return None if item is None else dict(item)


def wait_for(condition: Callable[[], Any], timeout_s: float, poll_s: float = 0.05) -> Any:
    """Poll until `condition()` is truthy; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(poll_s)


def state_is(table: Any, thing: str, sensor: str, rule: str, state: str) -> Callable[[], bool]:
    def check() -> bool:
        item = state_item(table, thing, sensor, rule)
        return item is not None and item.get("state") == state

    return check


class SnsInbox:
    """An SQS queue in moto subscribed to an SNS topic: what the topic delivered, in order."""

    def __init__(self, stack: LocalStack, topic_arn: str) -> None:
        self.sqs = stack.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:12]}")[
            "QueueUrl"
        ]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        stack.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.received: list[dict[str, Any]] = []

    def poll(self, expected: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Everything received so far, waiting up to `timeout_s` for `expected` in total."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            for message in response.get("Messages", []):
                envelope = json.loads(message["Body"])
                self.received.append(
                    {"subject": envelope.get("Subject"), "body": json.loads(envelope["Message"])}
                )
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
            if len(self.received) >= expected or time.monotonic() >= deadline:
                return list(self.received)
            time.sleep(0.1)
