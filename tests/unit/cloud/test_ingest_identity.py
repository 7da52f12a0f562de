"""The ingest service takes a message for what its channel proves, never for what it says."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from support.ingest_fakes import IngestKit, make_ingest, rule_event

from chantier.s3keys import raw_key
from cloud.ingest.identity import (
    CachedRuns,
    CachedThings,
    RuleEventError,
    ThingInfo,
    TtlCache,
    source_from_rule,
)

T0 = 1_763_733_600_000
EXC = ThingInfo("exc-01", "lyon", "excavator")
CRANE = ThingInfo("crane-01", "paris", "crane")
RUN = "a" * 32


def telemetry(
    thing: str = "exc-01",
    site: str = "lyon",
    equipment: str = "excavator",
    *,
    seq: int = 1,
    temps: tuple[float, ...] = (70.0, 71.0),
    start: int = T0,
    run_id: str | None = None,
) -> bytes:
    readings = [
        {"sensorId": "engine", "ts": start + i * 1000, "temperature": t}
        for i, t in enumerate(temps)
    ]
    return json.dumps(
        {
            "schema": 1,
            "thing": thing,
            "site": site,
            "equipment": equipment,
            "boot": "9c1e0f7a",
            "seq": seq,
            "runId": run_id,
            "sentAt": start + len(temps) * 1000,
            "clockSynced": True,
            "readings": readings,
        },
        separators=(",", ":"),
    ).encode()


def health(thing: str = "exc-01", site: str = "lyon", **changes: Any) -> bytes:
    message = {
        "schema": 1,
        "kind": "health",
        "thing": thing,
        "site": site,
        "equipment": "excavator",
        "boot": "9c1e0f7a",
        "runId": None,
        "sentAt": T0,
        "agentVersion": "1.0.0",
        "uptimeS": 12.5,
        "clock": {"synced": True, "source": "systemd"},
        "queue": {"depth": 0, "batches": 0, "oldestReadingTs": None, "setAside": None},
        "dropped": {"sinceBoot": 0, "total": 0},
        "connectedSince": T0 - 1000,
        "sensors": [
            {"sensorId": "engine", "status": "failing", "lastError": "I2C", "errors": 3},
        ],
        **changes,
    }
    return json.dumps(message).encode()


def kit(**runs: set[str]) -> IngestKit:
    return make_ingest(EXC, CRANE, runs=dict(runs), now_ms=T0 + 10_000)


def publish(k: IngestKit, payload: bytes, topic_thing: str = "exc-01", topic_site: str = "lyon",
            kind: str = "telemetry") -> dict[str, Any]:  # fmt: skip
    return k.service.handle(rule_event(topic_site, topic_thing, kind, payload, k.clock["now"]))


def refusal(k: IngestKit) -> dict[str, Any]:
    [document] = k.s3.errors()
    return document


def test_a_batch_on_its_own_topic_lands_as_its_exact_bytes() -> None:
    k = kit()
    payload = telemetry()
    result = publish(k, payload)
    assert result["accepted"] == 2 and result["raw"] == "stored"
    key = raw_key("lyon", "exc-01", T0 + 2000, "9c1e0f7a", 1)
    assert result["rawKey"] == key and k.s3.objects[key] == payload
    assert [pk for pk, _ in k.readings.items] == ["B#exc-01"]
    assert k.s3.errors() == []


@pytest.mark.parametrize(
    ("said", "reason", "detail"),
    [
        (
            {"thing": "crane-01", "site": "paris", "equipment": "crane"},
            "identity-mismatch",
            "thing",
        ),
        ({"site": "made-up"}, "identity-mismatch", "site 'made-up'"),
        ({"equipment": "generator"}, "identity-mismatch", "is a 'excavator' in the registry"),
    ],
)
def test_a_payload_that_disagrees_with_its_topic_or_registry_is_refused_and_kept(
    said: dict[str, str], reason: str, detail: str
) -> None:
    k = kit()
    payload = telemetry(**said, temps=(84.0, 84.5))
    result = publish(k, payload)
    assert result["accepted"] == 0 and result["refused"] == reason
    kept = refusal(k)
    assert kept["reason"] == reason and detail in kept["rejections"][0]["detail"]
    assert kept["context"]["thing"] == "exc-01"  # the topic's, not the payload's
    assert k.s3.under("raw/") == {} and k.readings.items == {}
    assert k.alerts.states == {} and k.alerts.seen == {}  # no alert, no last-seen, no machine


def test_a_thing_the_registry_does_not_know_is_refused() -> None:
    k = kit()
    result = publish(k, telemetry("ghost-01", "lyon"), topic_thing="ghost-01")
    assert result["refused"] == "unknown-thing" and k.alerts.seen == {}


def test_readings_stamped_beyond_the_tolerance_are_refused_one_by_one() -> None:
    k = kit()
    k.clock["now"] = T0 + 3000
    ahead = T0 + 3000 + 5 * 60_000 + 1
    payload = json.loads(telemetry(temps=(70.0,)))
    payload["readings"].append({"sensorId": "engine", "ts": ahead, "temperature": 20.0})
    result = publish(k, json.dumps(payload).encode())
    assert result["accepted"] == 1 and result["rejected"] == 1
    assert refusal(k)["rejections"][0]["reason"] == "future-reading"


def test_a_batch_sent_from_the_future_is_refused_whole() -> None:
    k = kit()
    result = publish(k, telemetry(start=4_070_908_800_000))  # 2099, inside the schema's range
    assert result["refused"] == "future-timestamp" and k.s3.under("raw/") == {}


def test_a_reading_from_2099_cannot_silence_a_real_overheat() -> None:
    k = kit()
    publish(k, telemetry(seq=1, start=4_070_908_800_000, temps=(20.0,)))
    k.clock["now"] = T0 + 60_000
    publish(k, telemetry(seq=2, temps=(84.0, 84.5, 84.6, 84.8), start=T0 + 40_000))
    k.clock["now"] = T0 + 120_000
    publish(k, telemetry(seq=3, temps=(84.9, 85.0), start=T0 + 100_000))
    states = {key.rule: state.state.value for key, state in k.alerts.states.items()}
    assert states.get("engine-overheat") == "ACTIVE"


def test_run_id_is_honoured_only_for_a_machine_of_that_run() -> None:
    k = kit(**{RUN: {"exc-01"}})
    assert publish(k, telemetry(run_id=RUN))["accepted"] == 2
    [item] = k.readings.items.values()
    assert item["runId"] == RUN
    result = publish(k, telemetry("crane-01", "paris", "crane", run_id=RUN), "crane-01", "paris")
    assert result["refused"] == "run-not-member"
    assert "run" in refusal(k)["rejections"][0]["detail"]
    assert len(k.readings.items) == 1


def test_a_re_delivered_batch_is_processed_again_but_stored_once() -> None:
    k = kit()
    payload = telemetry()
    publish(k, payload)
    again = publish(k, payload)
    assert again["raw"] == "duplicate" and again["accepted"] == 2
    assert k.s3.versions == {again["rawKey"]: 1}


def test_a_re_sent_batch_with_other_bytes_does_not_replace_the_stored_one() -> None:
    k = kit()
    original = telemetry(temps=(70.0, 71.0))
    publish(k, original)
    items_before = dict(k.readings.items)
    forged = telemetry(temps=(64.0, 65.0))  # same boot, seq and sentAt: the same key
    result = publish(k, forged)
    assert result["refused"] == "conflicting-resend"
    key = raw_key("lyon", "exc-01", T0 + 2000, "9c1e0f7a", 1)
    assert k.s3.objects[key] == original and k.s3.versions[key] == 1
    kept = refusal(k)
    assert kept["reason"] == "conflicting-resend" and kept["context"]["rawKey"] == key
    assert k.readings.items == items_before  # the hot store keeps the stored batch's readings


def test_health_is_validated_and_bound_to_its_topic() -> None:
    k = kit()
    assert publish(k, health(), kind="health")["health"] is True
    assert k.health.messages[0]["thing"] == "exc-01"
    sensor_states = {key.rule: s.state.value for key, s in k.alerts.states.items()}
    assert sensor_states  # the failing sensor opened its alert

    other = kit()
    result = publish(other, health("crane-01", "paris"), kind="health")
    assert result["refused"] == "identity-mismatch" and other.health.messages == []
    bad = publish(other, health(uptimeS=-1), kind="health")
    assert bad["refused"] == "invalid-health" and other.health.messages == []


def test_an_event_that_is_not_a_rules_is_kept_as_such() -> None:
    k = kit()
    result = k.service.handle({"thing": "exc-01", "readings": []})
    assert result["refused"] == "invalid-event" and refusal(k)["reason"] == "invalid-event"


@pytest.mark.parametrize(
    "event",
    [
        [],
        {"kind": "telemetry", "site": "lyon", "thing": "exc-01"},
        {"kind": "telemetry", "site": "lyon", "thing": "Exc 01", "payload": ""},
        {"kind": "other", "site": "lyon", "thing": "exc-01", "payload": ""},
        {"kind": "health", "site": "lyon", "thing": "exc-01", "payload": "not base64!"},
    ],
)
def test_rule_events_are_read_strictly(event: Any) -> None:
    with pytest.raises(RuleEventError):
        source_from_rule(event, T0)


def test_rule_event_takes_the_rules_receive_time() -> None:
    _, raw, source = source_from_rule(rule_event("lyon", "exc-01", "health", b"{}", T0), T0 + 5)
    assert (raw, source.received_ms, source.site, source.thing) == (b"{}", T0, "lyon", "exc-01")


def test_the_cache_keeps_answers_and_empty_ones_for_less() -> None:
    now = {"t": 0.0}
    loads: list[str] = []

    def load(key: str) -> str:
        loads.append(key)
        return "" if key == "none" else key.upper()

    cache = TtlCache(load, ttl_s=60, empty_ttl_s=5, clock=lambda: now["t"])
    assert not cache.has("a")
    assert [cache.get("a"), cache.get("a"), cache.get("none"), cache.get("none")] == [
        "A",
        "A",
        "",
        "",
    ]
    now["t"] = 10
    assert cache.has("a") and not cache.has("none")
    cache.get("a"), cache.get("none")
    now["t"] = 61
    assert not cache.has("a")
    cache.get("a")
    assert loads == ["a", "none", "none", "a"]


def test_registry_and_run_lists_are_read_once_per_ttl() -> None:
    k = kit(**{RUN: {"exc-01"}})
    things = CachedThings(k.registry, ttl_s=3600)
    for _ in range(5):
        assert things.lookup("exc-01") == EXC
    assert k.registry.lookups == 1
    runs = CachedRuns(k.runs, ttl_s=3600)
    assert "exc-01" in runs.members(RUN) and runs.members("b" * 32) == frozenset()


def test_a_machine_new_to_the_instance_has_its_states_read_while_the_registry_answers() -> None:
    k = kit()
    reading = threading.Event()
    overlapped: list[bool] = []
    load_states = k.alerts.load_states

    def noting_load_states(thing: str) -> Any:
        reading.set()
        return load_states(thing)

    def slow_lookup(thing: str) -> ThingInfo | None:
        overlapped.append(reading.wait(5))  # the states read has started meanwhile
        return k.registry.things.get(thing)

    k.alerts.load_states = noting_load_states  # type: ignore[method-assign]
    k.registry.lookup = slow_lookup  # type: ignore[method-assign]
    k.service.things = CachedThings(k.registry, ttl_s=60)
    assert publish(k, telemetry(temps=(84.0,) * 12))["transitions"] == 1
    assert overlapped == [True]
    # Known now: no lookup, so nothing to overlap; the alert states are read as usual.
    reading.clear()
    assert publish(k, telemetry(seq=5, start=T0 + 20_000))["accepted"] == 2
    assert overlapped == [True]
