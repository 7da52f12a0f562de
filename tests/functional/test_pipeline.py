"""The walking skeleton, for real: agents → Mosquitto (mTLS, ACL) → rules engine → S3 and Lambda."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import pytest
from support.localstack import DeviceConnection, Tap

from chantier.names import parse_topic, strip_basic_ingest, topic
from chantier.s3keys import raw_key
from cloud.local.stack import LocalStack
from commands.simulator.fleet import BASIC_INGEST_PREFIX, agent_config, provision_machine
from device.bootstrap import build_agent
from device.config import FaultConfig

pytestmark = pytest.mark.functional
SITE = "test-site"
EXAMPLES = Path(__file__).resolve().parents[2] / "chantier" / "contracts" / "examples"


def _raw_objects(stack: LocalStack, prefix: str = "raw/") -> dict[str, int]:
    """Key → number of versions under a prefix."""
    info = stack.info
    assert info is not None
    versions: dict[str, int] = {}
    pages = (
        stack.client("s3")
        .get_paginator("list_object_versions")
        .paginate(Bucket=info.raw_bucket, Prefix=prefix)
    )
    for page in pages:
        for version in page.get("Versions", []):
            versions[version["Key"]] = versions.get(version["Key"], 0) + 1
    return versions


def _body(stack: LocalStack, key: str) -> bytes:
    assert stack.info is not None
    return bytes(
        stack.client("s3").get_object(Bucket=stack.info.raw_bucket, Key=key)["Body"].read()
    )


def _same_json(a: bytes, b: bytes) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except (ValueError, RecursionError):
        return False


def _wait_for(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_agents_batches_land_byte_identical_and_overheat_opens_an_alert(
    stack: LocalStack, tap: Tap
) -> None:
    exc, _ = provision_machine(stack, "exc-01", SITE, "excavator")
    crane, _ = provision_machine(stack, "crane-01", SITE, "crane")
    overheat = (FaultConfig(kind="overheat", start_s=0.0, duration_s=120.0),)
    agents = [
        build_agent(agent_config(exc, stack, seed=3, batch_age_s=2.0, faults=overheat)),
        build_agent(agent_config(crane, stack, seed=4, batch_age_s=2.0)),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop,)) for a in agents]
    for thread in threads:
        thread.start()
    assert stack.info is not None
    alerts = stack.resource("dynamodb").Table(stack.info.alerts_table)

    def overheat_item() -> dict[str, object] | None:
        items = alerts.scan(
            FilterExpression="attribute_exists(#s)", ExpressionAttributeNames={"#s": "state"}
        )["Items"]
        for item in items:
            if (item["thing"], item["sensorId"], item["rule"]) == (
                "exc-01",
                "engine",
                "engine-overheat",
            ) and item["state"] == "ACTIVE":
                return dict(item)
        return None

    try:
        # Ramp to the level, then the rule's `for` delay, then one batch.
        assert _wait_for(lambda: overheat_item() is not None, timeout_s=45), "no overheat alert"
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not any(t.is_alive() for t in threads), "an agent did not stop"
    assert stack.drain(10)

    item = overheat_item()
    assert item is not None
    assert item["site"] == SITE and item["severity"] == "critical"
    assert float(item["value"]) >= 82.0  # type: ignore[arg-type]

    for agent in agents:
        stats = agent.stats()
        assert stats["batches_published"] > 0
        assert stats["batches_refused"] == 0

    published = tap.telemetry()
    assert published, "the tap saw no telemetry"
    expected_keys = set()
    for topic_name, payload in published:
        rule, plain = strip_basic_ingest(topic_name)
        assert rule == "chantier_telemetry"
        parsed = parse_topic(plain)
        batch = json.loads(payload)
        key = raw_key(parsed.site, parsed.thing, batch["sentAt"], batch["boot"], batch["seq"])
        expected_keys.add(key)
        assert _wait_for(lambda k=key: k in _raw_objects(stack)), f"{key} never landed"
        assert _body(stack, key) == payload, f"{key} differs from the published bytes"
    landed = {k for k in _raw_objects(stack) if "/thing=exc-01/" in k or "/thing=crane-01/" in k}
    assert landed == expected_keys


def test_republished_batch_is_stored_once(stack: LocalStack, tap: Tap) -> None:
    gen, _ = provision_machine(stack, "gen-07", SITE, "generator")
    payload = (EXAMPLES / "valid" / "excavator-engine.json").read_bytes()
    batch = json.loads(payload)
    batch.update(thing="gen-07", site=SITE, equipment="generator", boot="0badcafe", seq=1)
    raw = json.dumps(batch, separators=(",", ":")).encode()
    key = raw_key(SITE, "gen-07", batch["sentAt"], "0badcafe", 1)
    with DeviceConnection(stack, gen) as device:
        for _ in range(2):
            outcome = device.publish(topic(SITE, "gen-07", "telemetry", BASIC_INGEST_PREFIX), raw)
            assert outcome.status == "acked"
    assert stack.drain(10)
    # The re-delivery is recognised (same bytes under the same key) and not written again.
    assert _raw_objects(stack, f"raw/site={SITE}/thing=gen-07/") == {key: 1}
    assert _body(stack, key) == raw
    log = (Path(stack.info.state_dir) / "logs" / "functions.log").read_text()  # type: ignore[union-attr]
    assert not [
        line for line in log.splitlines() if '"conflicting-resend"' in line and "gen-07" in line
    ]


def test_device_cannot_publish_as_another_thing(stack: LocalStack, tap: Tap) -> None:
    thief, _ = provision_machine(stack, "comp-66", SITE, "compressor")
    provision_machine(stack, "comp-67", SITE, "compressor")
    before = len(tap.messages)
    payload = json.dumps({"schema": 1, "thing": "comp-67"}).encode()
    with DeviceConnection(stack, thief) as device:
        for target in (
            topic(SITE, "comp-67", "telemetry", BASIC_INGEST_PREFIX),  # another thing
            topic("other-site", "comp-66", "telemetry", BASIC_INGEST_PREFIX),  # another site
            topic(SITE, "comp-67", "telemetry"),  # without Basic Ingest
        ):
            outcome = device.publish(target, payload)
            assert outcome.status == "refused", target
            assert outcome.code == 135  # MQTT 5 "not authorized"
    time.sleep(0.5)
    assert len(tap.messages) == before, "a refused publish reached subscribers"
    assert not _raw_objects(stack, f"raw/site={SITE}/thing=comp-67/")
    assert not _raw_objects(stack, "raw/site=other-site/")


def test_malformed_and_invalid_messages_are_kept_under_errors_and_pipeline_goes_on(
    stack: LocalStack, tap: Tap
) -> None:
    mixer, _ = provision_machine(stack, "mixer-05", SITE, "concrete-mixer")
    invalid = sorted((EXAMPLES / "invalid").glob("*.json"))
    before = _raw_objects(stack, "errors/")
    with DeviceConnection(stack, mixer) as device:
        for path in invalid:
            outcome = device.publish(
                topic(SITE, "mixer-05", "telemetry", BASIC_INGEST_PREFIX), path.read_bytes()
            )
            assert outcome.status == "acked"  # the broker takes it; the pipeline judges it
        good = json.loads((EXAMPLES / "valid" / "excavator-engine.json").read_bytes())
        good.update(thing="mixer-05", site=SITE, equipment="concrete-mixer", boot="feedf00d")
        raw = json.dumps(good).encode()
        assert (
            device.publish(topic(SITE, "mixer-05", "telemetry", BASIC_INGEST_PREFIX), raw).status
            == "acked"
        )
    assert stack.drain(10)
    kept = {k for k in _raw_objects(stack, "errors/") if k not in before}
    reasons = {k.split("/")[1] for k in kept}
    # The rule hands the function every message as its bytes, JSON or not: the function
    # judges them all and keeps each refused one, as published, with its reason.
    assert "reason=malformed-json" in reasons
    assert "reason=unknown-schema" in reasons
    assert "reason=out-of-range-reading" in reasons
    unmatched = {path.name: path.read_bytes() for path in invalid}
    for key in kept:
        document = json.loads(_body(stack, key))
        original = base64.b64decode(
            document.get("base64OriginalPayload") or document["payloadBase64"]
        )
        for name, raw_example in list(unmatched.items()):
            if original == raw_example or _same_json(original, raw_example):
                del unmatched[name]
    assert not unmatched, f"not kept under errors/: {sorted(unmatched)}"
    log = (Path(stack.info.state_dir) / "logs" / "functions.log").read_text()  # type: ignore[union-attr]
    assert '"message":"rejected"' in log and '"reason":"unknown-schema"' in log
    good_key = raw_key(SITE, "mixer-05", good["sentAt"], "feedf00d", good["seq"])
    assert _wait_for(lambda: good_key in _raw_objects(stack, f"raw/site={SITE}/thing=mixer-05/"))
