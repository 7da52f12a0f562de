"""A batch whose processing fails every attempt is kept with its error in the on-failure queue,
counted by `chantier stack status`, said at once in the stack's log, and its alert raised by
`chantier alerts redrive` once the cause is fixed. A scheduled run that fails is kept in the
same queue and replayed the same way."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

import pytest
from support.alert_stack import (
    alerts_table,
    crafted_batch,
    run_chantier,
    state_is,
    telemetry_topic,
    wait_for,
)
from support.localstack import DeviceConnection

from chantier.s3keys import raw_key
from cloud.local.destinations import QueueDestination
from cloud.local.resources import create_table
from cloud.local.scheduler import scheduled_event
from cloud.local.stack import LocalStack
from commands.simulator.fleet import provision_machine
from device.transport import ACKED

pytestmark = pytest.mark.functional
SITE = "kept-site"
RULE = "engine-overheat"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Schedules 1,000 times slower: no scheduled run fails on its own while a table is gone."""
    with LocalStack(tmp_path_factory.mktemp("stack"), schedule_scale=1000) as running:
        yield running


def _status_line(stack: LocalStack) -> str:
    status = run_chantier(stack, "stack", "status", "--state-dir", stack.state_dir.as_posix())
    assert status.returncode == 0, status.stderr
    return next(line for line in status.stdout.splitlines() if line.startswith("failed events"))


def test_a_batch_failing_every_attempt_is_kept_counted_and_replayed(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    assert stack.info is not None
    machine, _ = provision_machine(stack, "exc-kept", SITE, "excavator")
    dynamodb = stack.client("dynamodb")
    table_name = stack.info.alerts_table
    assert "none kept" in _status_line(stack)
    # The alerts table gone (deleted by hand, a restore under way): every attempt fails.
    dynamodb.delete_table(TableName=table_name)
    hot = crafted_batch(machine, 7, [83.5, 83.8, 84.0, 84.2])  # critical for 15 s
    queue = QueueDestination(stack.client("sqs"), stack.info.failures_queue)

    with caplog.at_level(logging.WARNING, logger="cloud.local.functions"):
        with DeviceConnection(stack, machine) as device:
            assert device.publish(telemetry_topic(machine), hot).status == ACKED

        def kept() -> list[str]:
            return [r.getMessage() for r in caplog.records if "kept in queue" in r.getMessage()]

        assert wait_for(kept, 30), "the stack's log did not say the failed batch was kept"
    assert queue.count() == 1
    assert len(kept()) == 1 and "after 3 attempt(s)" in kept()[0], kept()
    assert "ResourceNotFoundException" in kept()[0]
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == 2
    assert "1 kept in queue" in _status_line(stack)

    # Lambda's record, with the event as it was handed over.
    sqs = stack.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=queue.url, VisibilityTimeout=0)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(
        ":function:chantier-local-ingestfunction:$LATEST"
    )
    # The rule's event: the batch as published, with its topic's site and thing.
    event = record["requestPayload"]
    assert (event["thing"], event["site"], event["kind"]) == (machine.thing, SITE, "telemetry")
    assert base64.b64decode(event["payload"]) == hot
    assert record["responsePayload"]["errorType"] == "ResourceNotFoundException"
    # The function writes the raw batch after the alerts: not yet.
    batch = json.loads(hot)
    key = raw_key(SITE, machine.thing, batch["sentAt"], batch["boot"], 7)
    listed = stack.client("s3").list_objects_v2(Bucket=stack.info.raw_bucket, Prefix=key)
    assert listed.get("KeyCount", 0) == 0

    # Fixed (the table is back), the replay raises the alert the batch carried.
    create_table(dynamodb, table_name, stack.template.properties("AlertsTable"))
    replay = run_chantier(stack, "alerts", "redrive")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 replayed, 0 failed again" in replay.stdout
    assert f"{machine.thing} batch {batch['boot']}-7" in replay.stdout
    assert wait_for(state_is(alerts_table(stack), machine.thing, "engine", RULE, "ACTIVE"), 10)
    raw = stack.client("s3").get_object(Bucket=stack.info.raw_bucket, Key=key)["Body"].read()
    assert raw == hot
    assert "none kept" in _status_line(stack)


def test_a_replay_that_fails_again_leaves_the_record_in_the_queue(stack: LocalStack) -> None:
    assert stack.info is not None
    machine, _ = provision_machine(stack, "exc-again", SITE, "excavator")
    queue = QueueDestination(stack.client("sqs"), stack.info.failures_queue)
    record = {
        "requestContext": {
            "requestId": "0f0f0f0f-aaaa-bbbb-cccc-000000000000",
            "functionArn": stack.template.arn("IngestFunction") + ":$LATEST",
        },
        "requestPayload": {
            "payload": base64.b64encode(crafted_batch(machine, 3, [60.0])).decode(),
            "site": SITE,
            "thing": machine.thing,
            "kind": "telemetry",
            "receivedAt": int(time.time() * 1000),
        },
    }
    queue.keep(record)
    dynamodb = stack.client("dynamodb")
    dynamodb.delete_table(TableName=stack.info.alerts_table)
    try:
        replay = run_chantier(stack, "alerts", "redrive")
    finally:
        create_table(dynamodb, stack.info.alerts_table, stack.template.properties("AlertsTable"))
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "0 replayed, 1 failed again" in replay.stdout
    assert "ResourceNotFoundException" in replay.stdout
    assert queue.count() == 1


def test_a_failed_scheduled_run_is_kept_in_the_same_queue_and_replayed(stack: LocalStack) -> None:
    assert stack.info is not None and stack.functions is not None
    queue = QueueDestination(stack.client("sqs"), stack.info.failures_queue)
    sqs = stack.client("sqs")
    sqs.purge_queue(QueueUrl=queue.url)  # what the tests above left for a later replay
    (spec,) = [s for s in stack.template.schedules() if s.logical_id.startswith("OfflineCheck")]
    event = scheduled_event(spec, time.time())
    dynamodb = stack.client("dynamodb")
    dynamodb.delete_table(TableName=stack.info.alerts_table)
    try:
        # As EventBridge invokes it: asynchronously, with the function's InvokeConfig.
        assert stack.functions.invoke_async(spec.function_arn, event) is None
    finally:
        create_table(dynamodb, stack.info.alerts_table, stack.template.properties("AlertsTable"))
    (message,) = sqs.receive_message(QueueUrl=queue.url, VisibilityTimeout=0)["Messages"]
    record = json.loads(message["Body"])
    # Not retried: the next run a minute later does the same work.
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"].startswith(spec.function_arn)
    assert record["requestPayload"] == event
    assert "1 kept in queue" in _status_line(stack)

    replay = run_chantier(stack, "alerts", "redrive")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 replayed, 0 failed again" in replay.stdout
    assert f"scheduled run of {event['time']}" in replay.stdout
    assert "none kept" in _status_line(stack)
