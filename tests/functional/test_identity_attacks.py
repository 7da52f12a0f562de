"""A device publishing only on its own topic cannot act for anyone else (issue: identity comes
from the connection). Each attack goes through the local stack as an attacker would send it:
paho-mqtt, a client we did not write, with the attacker's own provisioned certificate, through
Mosquitto's ACL, the rules engine running the template's SQL, and the ingest function.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from support.alert_stack import (
    alerts_table,
    crafted_batch,
    crafted_health,
    health_topic,
    state_is,
    state_item,
    telemetry_topic,
    wait_for,
)
from support.api_http import call, start_body
from support.paho_device import PahoDevice

from chantier.s3keys import raw_key
from cloud.alerts.seen_entries import entry_key
from cloud.local.stack import LocalStack
from commands.simulator.fleet import Machine, provision_machine

pytestmark = pytest.mark.functional
RULE = "engine-overheat"
HOT = [83.0, 83.5, 84.0, 84.5]  # above the 82 °C critical level for longer than `for` (10 s)
YEAR_2099_MS = 4_070_908_800_000


@pytest.fixture(scope="module")
def attacker(stack: LocalStack) -> Machine:
    machine, _ = provision_machine(stack, "exc-66", "lyon-est", "excavator")
    return machine


@pytest.fixture(scope="module")
def victim(stack: LocalStack) -> Machine:
    machine, _ = provision_machine(stack, "exc-07", "paris-nord", "excavator")
    return machine


def send(stack: LocalStack, device: Machine, topic: str, payload: bytes) -> None:
    """Publish as `device` with paho and wait until the stack has handled the message."""
    engine = stack.engine
    assert engine is not None
    before = engine.stats.messages
    with PahoDevice(stack, device) as client:
        assert client.publish(topic, payload) == 0  # the broker accepts it: it is on its topic
    # The device's PUBACK can come before the broker hands the message to the rules engine:
    # a drain at that moment would find nothing pending.
    assert wait_for(lambda: engine.stats.messages > before, 15), "the rules engine never got it"
    assert stack.drain(15)


def kept_under_errors(stack: LocalStack, reason: str, payload: bytes) -> dict[str, Any] | None:
    """The errors/ document that keeps exactly these bytes with this reason, if any."""
    assert stack.info is not None
    s3 = stack.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.info.raw_bucket, Prefix=f"errors/reason={reason}/"
    )
    for page in pages:
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.info.raw_bucket, Key=entry["Key"])["Body"].read()
            document = json.loads(body)
            if base64.b64decode(document["payloadBase64"]) == payload:
                return dict(document)
    return None


def retarget(payload: bytes, **fields: Any) -> bytes:
    message = json.loads(payload)
    message.update(fields)
    return json.dumps(message, separators=(",", ":")).encode()


def machine_items(stack: LocalStack, thing: str) -> list[dict[str, Any]]:
    """The machine's partition (states, health) and its last-seen entry, if any."""
    table = alerts_table(stack)
    items = list(table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={
        ":p": f"THING#{thing}"})["Items"])  # fmt: skip
    seen = table.get_item(Key=entry_key(thing), ConsistentRead=True).get("Item")
    return items + ([seen] if seen else [])


def last_seen(stack: LocalStack, thing: str) -> Any:
    item = alerts_table(stack).get_item(Key=entry_key(thing), ConsistentRead=True).get("Item")
    return None if item is None else item["lastSeen"]


def test_cannot_open_alerts_on_another_sites_machine(
    stack: LocalStack, attacker: Machine, victim: Machine
) -> None:
    forged = retarget(crafted_batch(attacker, 1, HOT), thing=victim.thing, site=victim.site)
    send(stack, attacker, telemetry_topic(attacker), forged)
    kept = kept_under_errors(stack, "identity-mismatch", forged)
    assert kept is not None and kept["context"]["thing"] == attacker.thing
    assert state_item(alerts_table(stack), victim.thing, "engine", RULE) is None
    assert machine_items(stack, victim.thing) == []  # no state, no last-seen, no health


def test_cannot_silence_a_real_overheat_with_readings_from_2099(
    stack: LocalStack, attacker: Machine
) -> None:
    table = alerts_table(stack)
    # Its own machine, its own topic: readings stamped in 2099 would stand for the newest ever.
    future = crafted_batch(attacker, 2, [20.0, 20.1], end_ms=YEAR_2099_MS)
    future = retarget(future, sentAt=int(time.time() * 1000))
    send(stack, attacker, telemetry_topic(attacker), future)
    kept = kept_under_errors(stack, "future-reading", future)
    assert (
        kept is not None and "min after the message was received" in kept["rejections"][0]["detail"]
    )
    send(stack, attacker, telemetry_topic(attacker), crafted_batch(attacker, 3, HOT))
    assert wait_for(state_is(table, attacker.thing, "engine", RULE, "ACTIVE"), 10)


def test_cannot_move_an_open_alert_to_a_made_up_site(stack: LocalStack, attacker: Machine) -> None:
    table = alerts_table(stack)
    send(stack, attacker, telemetry_topic(attacker), crafted_batch(attacker, 4, HOT))
    assert wait_for(state_is(table, attacker.thing, "engine", RULE, "ACTIVE"), 10)
    forged = retarget(crafted_batch(attacker, 5, HOT), site="made-up-site")
    send(stack, attacker, telemetry_topic(attacker), forged)
    assert kept_under_errors(stack, "identity-mismatch", forged) is not None
    item = state_item(table, attacker.thing, "engine", RULE)
    assert item is not None and item["site"] == attacker.site
    assert stack.info is not None
    status, sites = call(stack.info, "GET", "/api/sites")
    assert status == 200 and "made-up-site" not in {s["site"] for s in sites["items"]}


def test_cannot_keep_a_silent_machine_from_being_reported_offline(
    stack: LocalStack, attacker: Machine, victim: Machine
) -> None:
    # The victim speaks once, then falls silent; the attacker speaks for it, both ways.
    send(stack, victim, health_topic(victim), crafted_health(victim, {"engine": "ok"}))
    before = last_seen(stack, victim.thing)
    assert before
    time.sleep(0.05)
    health = retarget(
        crafted_health(attacker, {"engine": "ok"}), thing=victim.thing, site=victim.site
    )
    send(stack, attacker, health_topic(attacker), health)
    batch = retarget(crafted_batch(attacker, 6, [60.0]), thing=victim.thing, site=victim.site)
    send(stack, attacker, telemetry_topic(attacker), batch)
    assert kept_under_errors(stack, "identity-mismatch", health) is not None
    assert kept_under_errors(stack, "identity-mismatch", batch) is not None
    assert last_seen(stack, victim.thing) == before


def test_cannot_create_phantom_machines_or_sites(stack: LocalStack, attacker: Machine) -> None:
    assert stack.info is not None
    for seq, (thing, site) in enumerate(
        [("ghost-99", attacker.site), (attacker.thing, "phantom-site"), ("ghost-98", "nowhere")],
        start=10,
    ):
        forged = retarget(crafted_batch(attacker, seq, [30.0]), thing=thing, site=site)
        send(stack, attacker, telemetry_topic(attacker), forged)
        assert kept_under_errors(stack, "identity-mismatch", forged) is not None
    assert machine_items(stack, "ghost-99") == machine_items(stack, "ghost-98") == []
    status, sites = call(stack.info, "GET", "/api/sites")
    assert status == 200
    assert not {"phantom-site", "nowhere"} & {s["site"] for s in sites["items"]}
    for thing in ("ghost-99", "ghost-98"):
        assert call(stack.info, "GET", f"/api/things/{thing}")[0] == 404
    raw = stack.client("s3").list_objects_v2(Bucket=stack.info.raw_bucket, Prefix="raw/")
    keys = [entry["Key"] for entry in raw.get("Contents", [])]
    assert not [k for k in keys if "ghost-9" in k or "phantom-site" in k or "nowhere" in k]


def test_cannot_write_into_another_users_run(
    stack: LocalStack, attacker: Machine, victim: Machine
) -> None:
    assert stack.info is not None
    status, run = call(stack.info, "POST", "/api/runs/start", start_body(things=[victim.thing]))
    assert status == 201, run
    try:
        forged = retarget(crafted_batch(attacker, 20, [40.0, 41.0]), runId=run["id"])
        send(stack, attacker, telemetry_topic(attacker), forged)
        assert kept_under_errors(stack, "run-not-member", forged) is not None
        status, page = call(stack.info, "GET", f"/api/sensors/data?runId={run['id']}")
        assert status == 200 and page["count"] == 0
        # The run's own machine writes into it.
        own = retarget(crafted_batch(victim, 21, [40.0, 41.0]), runId=run["id"])
        send(stack, victim, telemetry_topic(victim), own)
        status, page = call(stack.info, "GET", f"/api/sensors/data?runId={run['id']}")
        assert status == 200 and {i["thing"] for i in page["items"]} == {victim.thing}
    finally:
        call(stack.info, "POST", f"/api/runs/{run['id']}/finish")


def test_a_re_sent_batch_with_other_bytes_does_not_replace_the_stored_one(
    stack: LocalStack, attacker: Machine
) -> None:
    assert stack.info is not None
    end = int(time.time() * 1000)
    original = crafted_batch(attacker, 30, [50.0], end_ms=end)
    send(stack, attacker, telemetry_topic(attacker), original)
    forged = crafted_batch(attacker, 30, [51.0], end_ms=end)
    send(stack, attacker, telemetry_topic(attacker), forged)
    kept = kept_under_errors(stack, "conflicting-resend", forged)
    key = raw_key(attacker.site, attacker.thing, end, "a1b2c3d4", 30)
    assert kept is not None and kept["context"]["rawKey"] == key
    s3 = stack.client("s3")
    versions = s3.list_object_versions(Bucket=stack.info.raw_bucket, Prefix=key)["Versions"]
    assert len(versions) == 1
    assert s3.get_object(Bucket=stack.info.raw_bucket, Key=key)["Body"].read() == original


def test_health_messages_are_validated_against_their_schema(
    stack: LocalStack, attacker: Machine
) -> None:
    bad = retarget(crafted_health(attacker, {"engine": "ok"}), uptimeS=-5, extra="x")
    send(stack, attacker, health_topic(attacker), bad)
    kept = kept_under_errors(stack, "invalid-health", bad)
    assert kept is not None and kept["rejections"][0]["detail"]
