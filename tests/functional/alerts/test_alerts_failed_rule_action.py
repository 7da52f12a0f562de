"""A message whose topic rule action fails is kept under errors/reason=rule-action/ (the rule's
error action), announced in the failures queue by the raw bucket's notification (moto's S3
delivers it to SQS, as S3 does), and replayed by `chantier alerts redrive` once the cause is
fixed: the batch lands as if the rule had worked. Identity still comes from the kept topic."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

import pytest
from support.alert_stack import (
    alerts_table,
    crafted_batch,
    run_chantier,
    state_is,
    telemetry_topic,
    wait_for,
)
from support.api_http import call
from support.localstack import DeviceConnection

from chantier.s3keys import raw_key
from cloud.local.destinations import QueueDestination
from cloud.local.stack import LocalStack
from cloud.local.template import LocalTemplate, TopicRuleSpec
from commands.simulator.fleet import Machine, provision_machine
from device.transport import ACKED

pytestmark = pytest.mark.functional
SITE = "rule-site"
RULE = "engine-overheat"
FAILED = "errors/reason=rule-action/"


class FunctionGoneTemplate(LocalTemplate):
    """The deployed template, but the telemetry rule's function is gone (deleted, or its
    permission for IoT removed): Lambda refuses the rule's invocation, the action fails."""

    def topic_rules(self) -> list[TopicRuleSpec]:
        return [
            replace(
                rule, actions=[{"Lambda": {"FunctionArn": f"{self.arn('IngestFunction')}-gone"}}]
            )
            if rule.logical_id == "TelemetryRule"
            else rule
            for rule in super().topic_rules()
        ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    template = FunctionGoneTemplate()
    with LocalStack(tmp_path_factory.mktemp("stack"), template=template, schedule_scale=1000) as s:
        yield s


def _keys(stack: LocalStack, prefix: str) -> list[str]:
    assert stack.info is not None
    listed = stack.client("s3").list_objects_v2(Bucket=stack.info.raw_bucket, Prefix=prefix)
    return [entry["Key"] for entry in listed.get("Contents", [])]


def _read(stack: LocalStack, key: str) -> bytes:
    assert stack.info is not None
    body = stack.client("s3").get_object(Bucket=stack.info.raw_bucket, Key=key)["Body"]
    return bytes(body.read())


def _fail_at_the_rule(stack: LocalStack, machine: Machine, payload: bytes) -> dict[str, Any]:
    """Publish as the device; returns the error action's message kept for these bytes."""
    before = set(_keys(stack, FAILED))
    with DeviceConnection(stack, machine) as device:
        assert device.publish(telemetry_topic(machine), payload).status == ACKED
    assert wait_for(lambda: set(_keys(stack, FAILED)) - before, 15), "nothing under " + FAILED
    (key,) = set(_keys(stack, FAILED)) - before
    document = json.loads(_read(stack, key))
    assert base64.b64decode(document["base64OriginalPayload"]) == payload
    return dict(document)


def test_the_stack_starts_without_s3s_test_message_in_the_queue(stack: LocalStack) -> None:
    assert stack.info is not None
    assert QueueDestination(stack.client("sqs"), stack.info.failures_queue).count() == 0


def test_a_failed_rule_action_is_kept_queued_and_replayed_as_the_rule_would(
    stack: LocalStack,
) -> None:
    assert stack.info is not None
    machine, _ = provision_machine(stack, "exc-rule", SITE, "excavator")
    queue = QueueDestination(stack.client("sqs"), stack.info.failures_queue)
    hot = crafted_batch(machine, 5, [83.5, 83.8, 84.0, 84.2])  # critical for 15 s
    document = _fail_at_the_rule(stack, machine, hot)
    assert document["ruleName"] == stack.info.rule_name
    assert document["topic"] == telemetry_topic(machine)

    # The notification reached the failures queue (what FailuresKeptAlarm watches).
    assert wait_for(lambda: queue.count() == 1, 10), f"{queue.count()} records in the queue"
    sqs = stack.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=queue.url, VisibilityTimeout=0)["Messages"]
    (record,) = json.loads(message["Body"])["Records"]
    assert record["eventSource"] == "aws:s3" and record["eventName"].startswith("ObjectCreated")
    assert unquote_plus(record["s3"]["object"]["key"]).startswith(FAILED)  # S3 encodes keys
    batch = json.loads(hot)
    key = raw_key(SITE, machine.thing, batch["sentAt"], batch["boot"], 5)
    assert _keys(stack, key) == []  # the function never ran

    # Fixed (the template's function is back: the command reads the deployed template).
    replay = run_chantier(stack, "alerts", "redrive")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 replayed, 0 failed again" in replay.stdout
    assert f"{machine.thing} batch {batch['boot']}-5 (rule {stack.info.rule_name} failed)" in (
        replay.stdout
    )
    assert _read(stack, key) == hot
    assert wait_for(state_is(alerts_table(stack), machine.thing, "engine", RULE, "ACTIVE"), 10)
    status, page = call(
        stack.info, "GET", f"/api/sensors/data?thing={machine.thing}&sensorId=engine"
    )
    assert status == 200, page
    assert [r["temperature"] for r in page["items"]] == [83.5, 83.8, 84.0, 84.2]
    assert queue.count() == 0


def test_a_replayed_message_speaking_for_another_machine_is_refused_as_live(
    stack: LocalStack,
) -> None:
    assert stack.info is not None
    attacker, _ = provision_machine(stack, "exc-liar", SITE, "excavator")
    victim, _ = provision_machine(stack, "exc-victim", "other-site", "excavator")
    queue = QueueDestination(stack.client("sqs"), stack.info.failures_queue)
    # The attacker's own topic (the broker allows nothing else), the victim's name inside.
    claims = crafted_batch(victim, 8, [20.0, 20.5])
    _fail_at_the_rule(stack, attacker, claims)
    assert wait_for(lambda: queue.count() == 1, 10)
    refused_before = set(_keys(stack, "errors/reason=identity-mismatch/"))

    replay = run_chantier(stack, "alerts", "redrive")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 replayed, 0 failed again" in replay.stdout
    assert f"{attacker.thing} batch" in replay.stdout  # the topic's thing, not the payload's
    refused = set(_keys(stack, "errors/reason=identity-mismatch/")) - refused_before
    (kept,) = [json.loads(_read(stack, k)) for k in refused]
    assert base64.b64decode(kept["payloadBase64"]) == claims
    assert kept["context"]["thing"] == attacker.thing, kept
    batch = json.loads(claims)
    for site, thing in ((victim.site, victim.thing), (SITE, attacker.thing)):
        assert _keys(stack, raw_key(site, thing, batch["sentAt"], batch["boot"], 8)) == []
    # The refusal is kept under errors/ but is not a rule's failure: nothing new to replay.
    assert queue.count() == 0
