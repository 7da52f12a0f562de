"""Offline alerts on the local stack: the scheduled check fires them, the machine's return clears.

The stack runs with a crafted rules file (offline after 3 s instead of 10 min), last-seen
written on every batch, and the schedule scaled so rate(1 minute) runs every 0.6 s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alert_stack import (
    SnsInbox,
    alerts_table,
    crafted_batch,
    state_is,
    state_item,
    telemetry_topic,
    wait_for,
)
from support.localstack import DeviceConnection

from chantier.alerts.rules import DEFAULT_RULES_FILE
from cloud.local.stack import LocalStack
from commands.simulator.fleet import provision_machine
from device.transport import ACKED

pytestmark = pytest.mark.functional
SITE = "offline-site"
OFFLINE_S = 3.0


def _quick_offline_rules(target: Path) -> Path:
    rules = json.loads(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    for rule in rules["defaults"]:
        if rule["kind"] == "offline":
            rule["minutes"] = OFFLINE_S / 60
    target.write_text(json.dumps(rules), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def quick_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    base = tmp_path_factory.mktemp("offline")
    env = {
        "ALERT_RULES_FILE": str(_quick_offline_rules(base / "rules.json")),
        "ALERT_SEEN_REFRESH_MS": "0",
    }
    with LocalStack(base / "stack", function_env=env, schedule_scale=0.01) as running:
        yield running


def test_offline_fires_when_a_machine_goes_silent_and_clears_when_it_returns(
    quick_stack: LocalStack,
) -> None:
    stack = quick_stack
    machine, _ = provision_machine(stack, "gen-31", SITE, "generator")
    table = alerts_table(stack)
    inbox = SnsInbox(stack, stack.template.arn("AlertsTopic"))

    with DeviceConnection(stack, machine) as device:
        batch = crafted_batch(machine, 1, [40.0, 40.1], step_ms=1000)
        assert device.publish(telemetry_topic(machine), batch).status == ACKED
        assert stack.drain(5)
        assert state_item(table, machine.thing, "*", "offline") is None  # not silent yet

        # Silence: the scheduled check (every 0.6 s here) fires once 3 s have passed.
        assert wait_for(state_is(table, machine.thing, "*", "offline", "ACTIVE"), 15)
        active = state_item(table, machine.thing, "*", "offline")
        assert active is not None and active["severity"] == "warning"

        back = crafted_batch(machine, 2, [40.2], step_ms=1000)
        assert device.publish(telemetry_topic(machine), back).status == ACKED
        assert wait_for(state_is(table, machine.thing, "*", "offline", "NORMAL"), 10)

    # Two functions sent these and SNS does not keep order between publishers: the version
    # each message carries does.
    messages = sorted(inbox.poll(expected=2), key=lambda m: m["body"]["version"])
    assert [(m["body"]["rule"], m["body"]["to"]) for m in messages] == [
        ("offline", "ACTIVE"),
        ("offline", "NORMAL"),
    ]
    assert stack.scheduler is not None
    runs, failures = stack.scheduler.counts()["OfflineCheckFunction.EveryMinute"]
    assert runs >= 3 and failures == 0
