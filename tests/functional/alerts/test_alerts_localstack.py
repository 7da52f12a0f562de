"""Alerts on the running local stack: crafted batches over MQTT, state in DynamoDB, SNS out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.alert_stack import (
    SnsInbox,
    alerts_table,
    crafted_batch,
    crafted_health,
    health_topic,
    state_is,
    state_item,
    telemetry_topic,
    wait_for,
)
from support.localstack import DeviceConnection

from cloud.local.stack import LocalStack
from commands.simulator.fleet import provision_machine
from device.transport import ACKED

pytestmark = pytest.mark.functional
SITE = "alert-site"
RULE = "engine-overheat"
CHANTIER = Path(sys.executable).with_name("chantier")


def _ack_with_cli(stack: LocalStack, thing: str) -> subprocess.CompletedProcess[str]:
    """`chantier alerts ack` as an operator runs it, against this stack's state directory."""
    env = {**os.environ, "CHANTIER_STATE_DIR": stack.state_dir.as_posix()}
    argv = [str(CHANTIER), "alerts", "ack", thing, "engine", RULE]
    argv += ["--who", "chef-de-chantier", "--note", "engine stopped, fan belt checked"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_overheat_active_acknowledged_cleared_normal_with_one_sns_message_each(
    stack: LocalStack,
) -> None:
    machine, _ = provision_machine(stack, "exc-41", SITE, "excavator")
    table = alerts_table(stack)
    inbox = SnsInbox(stack, stack.template.arn("AlertsTopic"))
    hot = crafted_batch(machine, 1, [83.5, 83.8, 84.0, 84.2])  # 15 s above 82 °C, `for` is 10 s

    with DeviceConnection(stack, machine) as device:
        assert device.publish(telemetry_topic(machine), hot).status == ACKED
        assert wait_for(state_is(table, machine.thing, "engine", RULE, "ACTIVE"), 10)
        active = state_item(table, machine.thing, "engine", RULE)
        assert active is not None and active["severity"] == "critical"
        assert active["site"] == SITE

        messages = inbox.poll(expected=1)
        assert [m["body"]["to"] for m in messages] == ["ACTIVE"]
        assert messages[0]["body"]["thing"] == machine.thing
        assert "[critical]" in messages[0]["subject"]

        # The same batch again (a retry after a lost PUBACK): no second alert, no second message.
        assert device.publish(telemetry_topic(machine), hot).status == ACKED
        assert stack.drain(5)
        assert len(inbox.poll(expected=2, timeout_s=1.5)) == 1

        done = _ack_with_cli(stack, machine.thing)
        assert done.returncode == 0, done.stderr
        acknowledged = state_item(table, machine.thing, "engine", RULE)
        assert acknowledged is not None and acknowledged["state"] == "ACKNOWLEDGED"
        # The operator's acknowledgement is notified like any other transition, with who did it.
        messages = inbox.poll(expected=2)
        assert [m["body"]["to"] for m in messages] == ["ACTIVE", "ACKNOWLEDGED"]
        assert messages[1]["body"]["who"] == "chef-de-chantier"

        cool = crafted_batch(machine, 2, [70.0, 65.0, 60.0])  # below the 72 °C clear level
        assert device.publish(telemetry_topic(machine), cool).status == ACKED
        assert wait_for(state_is(table, machine.thing, "engine", RULE, "NORMAL"), 10)

    # One message per transition, whoever made it.
    messages = inbox.poll(expected=3)
    assert [m["body"]["to"] for m in messages] == ["ACTIVE", "ACKNOWLEDGED", "NORMAL"]
    history = table.query(
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": f"HIST#{machine.thing}#engine#{RULE}"},
        ConsistentRead=True,
    )["Items"]
    moves = [(h["from"], h["to"]) for h in sorted(history, key=lambda h: h["sk"])]
    assert moves == [("NORMAL", "ACTIVE"), ("ACTIVE", "ACKNOWLEDGED"), ("ACKNOWLEDGED", "NORMAL")]
    who = [h.get("who") for h in sorted(history, key=lambda h: h["sk"])]
    assert who[1] == "chef-de-chantier"


def test_below_the_for_delay_nothing_fires_and_nothing_is_sent(stack: LocalStack) -> None:
    machine, _ = provision_machine(stack, "exc-42", SITE, "excavator")
    table = alerts_table(stack)
    inbox = SnsInbox(stack, stack.template.arn("AlertsTopic"))
    brief = crafted_batch(machine, 1, [60.0, 84.0, 60.0])  # one hot reading: shorter than `for`
    with DeviceConnection(stack, machine) as device:
        assert device.publish(telemetry_topic(machine), brief).status == ACKED
    assert stack.drain(5)
    item = state_item(table, machine.thing, "engine", RULE)
    assert item is None or item["state"] == "NORMAL"
    assert inbox.poll(expected=1, timeout_s=1.0) == []


def test_a_sensor_the_agent_reports_failing_raises_an_alert_until_it_recovers(
    stack: LocalStack,
) -> None:
    machine, _ = provision_machine(stack, "cab-43", SITE, "site-cabin")
    table = alerts_table(stack)
    inbox = SnsInbox(stack, stack.template.arn("AlertsTopic"))
    rule = "sensor-fault-reported"
    with DeviceConnection(stack, machine) as device:
        failing = crafted_health(machine, {"indoor": "failing", "outdoor": "ok"})
        assert device.publish(health_topic(machine), failing).status == ACKED
        assert wait_for(state_is(table, machine.thing, "indoor", rule, "ACTIVE"), 10)
        assert state_item(table, machine.thing, "outdoor", rule) is None
        recovered = crafted_health(machine, {"indoor": "ok", "outdoor": "ok"})
        assert device.publish(health_topic(machine), recovered).status == ACKED
        assert wait_for(state_is(table, machine.thing, "indoor", rule, "NORMAL"), 10)
    messages = sorted(inbox.poll(expected=2), key=lambda m: m["body"]["version"])
    assert [(m["body"]["sensorId"], m["body"]["to"]) for m in messages] == [
        ("indoor", "ACTIVE"),
        ("indoor", "NORMAL"),
    ]
    assert "[warning]" in messages[0]["subject"]
