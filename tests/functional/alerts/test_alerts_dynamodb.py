"""The alert engine on DynamoDB and SNS served by moto on 127.0.0.1 (a free port)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from support.alert_testkit import silence_detected_after_ms

from chantier.alerts.rules import load_rules
from cloud.alerts.dynamodb_store import DynamoAlertStore
from cloud.alerts.engine import AlertEngine
from cloud.alerts.notifier import SnsNotifier
from cloud.alerts.records import AlertKey, AlertState, State, ThingSeen, Transition
from cloud.alerts.seen_entries import list_entries, move_legacy
from cloud.alerts.store import ConflictError
from cloud.analytics.sources import machines_seen
from cloud.dashboard.dynamodb import DynamoDashboardReader

pytestmark = pytest.mark.functional

T0 = 1_763_733_600_000
SECOND = 1000
MINUTE = 60 * SECOND
RULES = load_rules()
OVERHEAT = AlertKey("exc-01", "engine", "engine-overheat")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def endpoint() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {
            "endpoint_url": f"http://{host}:{port}",
            "region_name": "eu-west-3",
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
    finally:
        server.stop()


def create_alerts_table(resource: Any, name: str) -> Any:
    """The table exactly as the template defines it: pk/sk, gsi1, TTL on expiresAt."""
    table = resource.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": attr, "AttributeType": "S"}
            for attr in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    resource.meta.client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
    )
    return table


@pytest.fixture
def table(endpoint: dict[str, str]) -> Any:
    resource = boto3.resource("dynamodb", **endpoint)
    return create_alerts_table(resource, f"alerts-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(table: Any, clock: Clock) -> AlertEngine:
    return AlertEngine(RULES, DynamoAlertStore(table), clock=clock, seen_refresh_ms=0)


def batch(
    seq: int,
    values: list[float],
    start: int,
    *,
    thing: str = "exc-01",
    equipment: str = "excavator",
    sensor: str = "engine",
    field: str = "temperature",
    step: int = SECOND,
) -> dict[str, Any]:
    readings = []
    for index, value in enumerate(values):
        reading: dict[str, Any] = {"sensorId": sensor, "ts": start + index * step, field: value}
        if field != "temperature":
            reading["temperature"] = 15.0 + index * 0.01
            reading["humidity"] = 50.0
        readings.append(reading)
    return {
        "schema": 1,
        "thing": thing,
        "site": "lyon-part-dieu",
        "equipment": equipment,
        "boot": "b00t",
        "seq": seq,
        "runId": None,
        "sentAt": start + len(values) * step,
        "clockSynced": True,
        "readings": readings,
    }


def state_item(table: Any, key: AlertKey) -> dict[str, Any]:
    return table.get_item(
        Key={"pk": f"THING#{key.thing}", "sk": f"STATE#{key.sensor}#{key.rule}"},
        ConsistentRead=True,
    )["Item"]


def test_overheat_active_acknowledged_cleared_normal(
    engine: AlertEngine, table: Any, clock: Clock
) -> None:
    clock.now = T0 + 30 * SECOND
    fired = engine.process_batch(batch(1, [70] * 5 + [79.5] * 20, T0))
    assert [(t.from_state, t.to_state) for t in fired] == [(State.NORMAL, State.ACTIVE)]
    item = state_item(table, OVERHEAT)
    assert {k: item[k] for k in ("thing", "site", "sensorId", "rule", "severity", "state")} == {
        "thing": "exc-01",
        "site": "lyon-part-dieu",
        "sensorId": "engine",
        "rule": "engine-overheat",
        "severity": "warning",
        "state": "ACTIVE",
    }
    assert float(item["value"]) == 79.5 and int(item["since"]) == T0 + 15 * SECOND
    assert item["gsi1pk"] == "OPEN#lyon-part-dieu"

    clock.now = T0 + 40 * SECOND
    engine.acknowledge("exc-01", "engine", "engine-overheat", "marie", "driver told")
    assert state_item(table, OVERHEAT)["state"] == "ACKNOWLEDGED"

    clock.now = T0 + 70 * SECOND
    cleared = engine.process_batch(batch(2, [71.0], T0 + 60 * SECOND))
    assert [t.to_state for t in cleared] == [State.NORMAL]
    item = state_item(table, OVERHEAT)
    assert item["state"] == "NORMAL" and item["severity"] is None and "gsi1pk" not in item
    history = engine.store.history(OVERHEAT)
    assert [(t.reason, t.who, t.note) for t in history] == [
        ("fired", "system", ""),
        ("acknowledged", "marie", "driver told"),
        ("cleared", "system", ""),
    ]


def test_latched_rule_waits_for_acknowledgement(
    engine: AlertEngine, table: Any, clock: Clock
) -> None:
    key = AlertKey("gen-01", "engine", "engine-overheat")
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [81] * 12, T0, thing="gen-01", equipment="generator"))
    engine.process_batch(
        batch(2, [60] * 5, T0 + 20 * SECOND, thing="gen-01", equipment="generator")
    )
    assert state_item(table, key)["state"] == "LATCHED"
    assert [s.key for s in engine.store.list_states(site="lyon-part-dieu")] == [key]
    engine.acknowledge("gen-01", "engine", "engine-overheat", "paul", "coolant topped up")
    assert state_item(table, key)["state"] == "NORMAL"
    assert engine.store.list_states(site="lyon-part-dieu") == []


def test_snooze_expires(engine: AlertEngine, table: Any, clock: Clock) -> None:
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0))
    engine.snooze("exc-01", "engine", "engine-overheat", "marie", until_ms=T0 + 31 * MINUTE)
    item = state_item(table, OVERHEAT)
    assert item["state"] == "SNOOZED" and int(item["snoozedUntil"]) == T0 + 31 * MINUTE
    # the machine also went silent meanwhile: keep only this alert's transitions
    assert [t for t in engine.check_offline(T0 + 30 * MINUTE) if t.key == OVERHEAT] == []
    expired = [t for t in engine.check_offline(T0 + 32 * MINUTE) if t.key == OVERHEAT]
    assert [(t.from_state, t.to_state, t.reason) for t in expired] == [
        (State.SNOOZED, State.ACTIVE, "snooze-expired")
    ]
    assert state_item(table, OVERHEAT)["state"] == "ACTIVE"


def test_offline_fires_when_device_stops_and_clears_when_it_returns(
    engine: AlertEngine, table: Any, clock: Clock
) -> None:
    clock.now = T0 + 10 * SECOND
    engine.process_batch(batch(1, [40] * 5, T0))
    assert engine.check_offline(T0 + 15 * MINUTE) == []
    fired = engine.check_offline(T0 + 17 * MINUTE)
    assert [t.key for t in fired] == [AlertKey("exc-01", "*", "offline")]
    assert engine.check_offline(T0 + 21 * MINUTE) == []
    assert state_item(table, AlertKey("exc-01", "*", "offline"))["state"] == "ACTIVE"
    clock.now = T0 + 22 * MINUTE
    back = engine.process_batch(batch(2, [40] * 5, T0 + 22 * MINUTE))
    assert [(t.key.rule, t.to_state) for t in back] == [("offline", State.NORMAL)]


def test_storm_warning_on_pressure_drop(engine: AlertEngine, table: Any, clock: Clock) -> None:
    transitions = []
    for step in range(19):  # every 10 minutes for 3 hours, 4.5 hPa lost
        start = T0 + step * 10 * MINUTE
        clock.now = start + MINUTE
        message = batch(
            step,
            [1012.0 - 4.5 * step / 18],
            start,
            thing="crane-02",
            equipment="crane",
            sensor="cabin",
            field="pressure",
        )
        transitions += engine.process_batch(message)
    storm = [t for t in transitions if t.key.rule == "storm-risk"]
    assert [(t.to_state, t.severity) for t in storm] == [(State.ACTIVE, "warning")]
    item = state_item(table, AlertKey("crane-02", "cabin", "storm-risk"))
    assert item["state"] == "ACTIVE" and float(item["value"]) >= 3


def test_redelivered_batch_creates_no_second_transition(
    engine: AlertEngine, table: Any, clock: Clock
) -> None:
    clock.now = T0 + MINUTE
    message = batch(7, [80] * 12, T0)
    assert len(engine.process_batch(message)) == 1
    before = table.scan()["Items"]
    clock.now += MINUTE  # a later retry by the rules engine
    assert engine.process_batch(json.loads(json.dumps(message))) == []
    assert len(engine.store.history(OVERHEAT)) == 1
    assert int(state_item(table, OVERHEAT)["version"]) == 1
    after = table.scan()["Items"]
    # only last-seen moves (seen_refresh_ms=0 here): the retry wrote no state or transition
    assert [i for i in after if i["pk"] != "SEEN"] == [i for i in before if i["pk"] != "SEEN"]


def test_state_write_leaves_no_outbox_behind(engine: AlertEngine, table: Any, clock: Clock) -> None:
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0))
    assert "unrecorded" not in state_item(table, OVERHEAT)
    assert [t.to_state for t in engine.store.history(OVERHEAT)] == [State.ACTIVE]


class DiesAfterCommit(DynamoAlertStore):
    """Stops right after the state's conditional put, as a Lambda killed at that moment would."""

    def _record(self, item: dict[str, Any]) -> None:
        raise SystemExit("killed after the commit")


def test_transitions_of_a_writer_that_died_after_its_commit_are_recorded_by_the_next_reader(
    table: Any, clock: Clock
) -> None:
    clock.now = T0 + MINUTE
    dying = AlertEngine(RULES, DiesAfterCommit(table), clock=clock)
    with pytest.raises(SystemExit):
        dying.process_batch(batch(1, [80] * 12, T0))
    assert state_item(table, OVERHEAT)["state"] == "ACTIVE"  # committed, history not written
    store = DynamoAlertStore(table)
    assert store.history(OVERHEAT) == []
    # The retry finds nothing new to evaluate, but reading the state records what was left.
    engine = AlertEngine(RULES, store, clock=clock)
    assert engine.process_batch(batch(1, [80] * 12, T0)) == []
    assert [(t.from_state, t.to_state, t.version) for t in store.history(OVERHEAT)] == [
        (State.NORMAL, State.ACTIVE, 1)
    ]
    assert "unrecorded" not in state_item(table, OVERHEAT)
    # The operator's next write replaces the item; the history keeps both transitions.
    engine.acknowledge("exc-01", "engine", "engine-overheat", "marie", "on my way")
    assert [t.to_state for t in store.history(OVERHEAT)] == [State.ACTIVE, State.ACKNOWLEDGED]


def test_failed_history_write_keeps_the_commit_and_its_notification(
    table: Any, clock: Clock
) -> None:
    class HistoryDown(DynamoAlertStore):
        def _record(self, item: dict[str, Any]) -> None:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "PutItem",
            )

    sent: list[Any] = []

    class Inbox:
        def notify(self, transitions: Any) -> None:
            sent.extend(transitions)

    clock.now = T0 + MINUTE
    engine = AlertEngine(RULES, HistoryDown(table), Inbox(), clock=clock)
    assert [t.to_state for t in engine.process_batch(batch(1, [80] * 12, T0))] == [State.ACTIVE]
    assert [t.to_state for t in sent] == [State.ACTIVE]
    assert "unrecorded" in state_item(table, OVERHEAT)
    # A reader that cannot record them either still gets the state.
    assert [s.state for s in HistoryDown(table).list_states(thing="exc-01")] == [State.ACTIVE]
    store = DynamoAlertStore(table)
    assert store.list_states(thing="exc-01")[0].state is State.ACTIVE
    assert [t.to_state for t in store.history(OVERHEAT)] == [State.ACTIVE]


def test_a_write_on_kept_states_does_not_replace_transitions_left_in_the_outbox(
    table: Any, clock: Clock
) -> None:
    class HistoryDownAtFirst(DynamoAlertStore):
        down = True

        def _record(self, item: dict[str, Any]) -> None:
            if self.down:
                raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "Put")
            super()._record(item)

    clock.now = T0 + MINUTE
    store = HistoryDownAtFirst(table)
    engine = AlertEngine(RULES, store, clock=clock)
    assert [t.to_state for t in engine.process_batch(batch(1, [80] * 12, T0))] == [State.ACTIVE]
    assert "unrecorded" in state_item(table, OVERHEAT)
    store.down = False
    # The next batch is written on the state the engine kept, without reading it first: the
    # write must fail on the outbox, and the read it makes then records what was left there.
    cleared = engine.process_batch(batch(2, [60] * 5, T0 + 20 * SECOND))
    assert [t.to_state for t in cleared] == [State.NORMAL]
    assert [t.to_state for t in store.history(OVERHEAT)] == [State.ACTIVE, State.NORMAL]
    assert "unrecorded" not in state_item(table, OVERHEAT)


def test_many_transitions_in_one_write_all_reach_the_history(table: Any) -> None:
    store = DynamoAlertStore(table)
    state = AlertState(key=OVERHEAT, site="lyon", equipment="excavator")
    transitions = []
    for version in range(1, 41):  # more than one BatchWriteItem request holds
        to = State.ACTIVE if version % 2 else State.NORMAL
        transitions.append(
            Transition(
                key=OVERHEAT,
                site="lyon",
                from_state=State.NORMAL if version % 2 else State.ACTIVE,
                to_state=to,
                severity="critical",
                at=T0 + version,
                value=80.0 + version / 10,
                who="system",
                note="",
                reason="fired" if version % 2 else "cleared",
                version=version,
                equipment="excavator",
            )
        )
    state.version = 40
    store.save_state(state, 0, transitions)
    recorded = store.history(OVERHEAT)
    assert [t.version for t in recorded] == list(range(1, 41))
    assert recorded[-1].value == pytest.approx(84.0)
    assert "unrecorded" not in state_item(table, OVERHEAT)


def test_conditional_write_refuses_a_stale_version(engine: AlertEngine, clock: Clock) -> None:
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0))
    store = engine.store
    stale = store.get_state(OVERHEAT)
    assert stale is not None
    engine.acknowledge("exc-01", "engine", "engine-overheat", "marie")
    stale.state = State.NORMAL
    with pytest.raises(ConflictError):
        store.save_state(stale, stale.version, [])
    with pytest.raises(ConflictError):
        store.save_state(stale, 0, [])


def test_two_engines_racing_record_one_alert(table: Any, clock: Clock) -> None:
    # Two invocations handle the same batch at once: both read NORMAL, one write wins.
    first = AlertEngine(RULES, DynamoAlertStore(table), clock=clock)
    second = AlertEngine(RULES, DynamoAlertStore(table), clock=clock)
    clock.now = T0 + MINUTE
    message = batch(1, [80] * 12, T0)
    snapshot = second.store.load_states("exc-01")
    second.store.load_states = lambda thing: snapshot  # type: ignore[method-assign]
    assert len(first.process_batch(message)) == 1
    assert second.process_batch(message) == []
    assert len(first.store.history(OVERHEAT)) == 1


def seen_partition(table: Any) -> list[tuple[str, int]]:
    items = table.query(KeyConditionExpression=Key("pk").eq("SEEN"), ConsistentRead=True)["Items"]
    return sorted((i["sk"], int(i["lastSeen"])) for i in items)


def index_seen_entries(table: Any) -> list[dict[str, Any]]:
    return list(
        table.query(IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq("SEEN"))["Items"]
    )


def put_previous_layout(table: Any, thing: str, equipment: str, last_seen: int) -> None:
    """A last-seen entry as the code before the SEEN partition wrote it (a table deployed then)."""
    table.put_item(
        Item={
            "pk": f"THING#{thing}",
            "sk": "SEEN",
            "thing": thing,
            "site": "lyon-part-dieu",
            "equipment": equipment,
            "lastSeen": last_seen,
            "gsi1pk": "SEEN",
            "gsi1sk": thing,
        }
    )


def test_last_seen_is_one_item_in_its_own_partition_without_an_index_entry(table: Any) -> None:
    store = DynamoAlertStore(table)
    store.touch_thing(ThingSeen("exc-01", "lyon-part-dieu", "excavator", T0))
    store.touch_thing(ThingSeen("exc-01", "lyon-part-dieu", "excavator", T0 - MINUTE))  # older
    store.touch_thing(ThingSeen("crane-02", "lyon-part-dieu", "crane", T0 + 5 * MINUTE))
    stale = store.stale_things(T0 + MINUTE)
    assert [(s.thing, s.last_seen) for s in stale] == [("exc-01", T0)]
    store.touch_thing(ThingSeen("exc-01", "lyon-part-dieu", "excavator", T0 + 9 * MINUTE))
    assert seen_partition(table) == [("crane-02", T0 + 5 * MINUTE), ("exc-01", T0 + 9 * MINUTE)]
    # No index entry: a refresh is one write unit, not two.
    assert index_seen_entries(table) == []
    item = table.get_item(Key={"pk": "SEEN", "sk": "exc-01"})["Item"]
    assert not {"gsi1pk", "gsi1sk"} & set(item)
    seen, _ = store.load_thing("exc-01")
    assert seen == ThingSeen("exc-01", "lyon-part-dieu", "excavator", T0 + 9 * MINUTE)


def test_a_machine_silent_since_the_deploy_stays_listed_and_is_flagged(
    table: Any, clock: Clock
) -> None:
    # Deployed onto a table of the previous layout: both machines last spoke under it.
    put_previous_layout(table, "exc-01", "excavator", T0)
    put_previous_layout(table, "crane-02", "crane", T0)
    engine = AlertEngine(RULES, DynamoAlertStore(table), clock=clock, seen_refresh_ms=0)
    # The crane speaks again after the deploy; the excavator stays silent.
    clock.now = T0 + 10 * MINUTE
    engine.process_batch(batch(1, [40] * 3, T0 + 10 * MINUTE - 5 * SECOND, thing="crane-02"))
    readers = DynamoDashboardReader(table, None)
    listed = {m["thing"]: m["lastSeen"] for m in readers.machines()}
    assert listed == {"exc-01": T0, "crane-02": T0 + 10 * MINUTE}
    assert readers.machine("exc-01") == {
        "thing": "exc-01",
        "site": "lyon-part-dieu",
        "equipment": "excavator",
        "lastSeen": T0,
    }
    assert machines_seen(table, T0) == {"lyon-part-dieu": ["crane-02", "exc-01"]}
    # The first offline check moves the old entries, and flags the silent machine in time.
    assert engine.check_offline(T0 + 15 * MINUTE) == []
    assert index_seen_entries(table) == []
    assert seen_partition(table) == [("crane-02", T0 + 10 * MINUTE), ("exc-01", T0)]
    fired = engine.check_offline(T0 + 17 * MINUTE)
    assert [(t.key.thing, t.to_state) for t in fired] == [("exc-01", State.ACTIVE)]
    assert {m["thing"] for m in readers.machines()} == {"exc-01", "crane-02"}


def test_a_late_write_of_the_previous_code_is_not_lost(table: Any) -> None:
    store = DynamoAlertStore(table)
    store.touch_thing(ThingSeen("exc-01", "lyon-part-dieu", "excavator", T0))
    # A function still running the previous code refreshed the old entry afterwards.
    put_previous_layout(table, "exc-01", "excavator", T0 + 3 * MINUTE)
    seen, _ = store.load_thing("exc-01")
    assert seen is not None and seen.last_seen == T0 + 3 * MINUTE
    listed, legacy = list_entries(table)
    assert [int(i["lastSeen"]) for i in listed] == [T0 + 3 * MINUTE]
    # It is refreshed once more between the listing and the move: the move leaves it.
    put_previous_layout(table, "exc-01", "excavator", T0 + 4 * MINUTE)
    assert move_legacy(table, legacy[0]) is False
    assert len(index_seen_entries(table)) == 1
    assert store.stale_things(T0) == []  # the next listing moves it
    assert index_seen_entries(table) == []
    assert seen_partition(table) == [("exc-01", T0 + 4 * MINUTE)]


def test_a_silent_machine_is_flagged_within_20_minutes_at_the_agent_defaults(
    table: Any, clock: Clock
) -> None:
    from cloud.alerts.engine import SEEN_REFRESH_MS

    engine = AlertEngine(
        RULES, DynamoAlertStore(table), clock=clock, seen_refresh_ms=SEEN_REFRESH_MS
    )
    delay = silence_detected_after_ms(engine, clock, batch_s=900, health_s=900)  # type: ignore[arg-type]
    assert 15 * MINUTE < delay <= 20 * MINUTE


def test_sns_notifications_on_transitions_only(
    endpoint: dict[str, str], table: Any, clock: Clock
) -> None:
    sns = boto3.client("sns", **endpoint)
    sqs = boto3.client("sqs", **endpoint)
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    engine = AlertEngine(
        RULES, DynamoAlertStore(table), SnsNotifier(sns, topic, "warning"), clock=clock
    )
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0))
    engine.process_batch(batch(2, [80.5] * 5, T0 + 12 * SECOND))  # still hot: no transition
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = [json.loads(m["Body"]) for m in received.get("Messages", [])]
    assert len(messages) == 1
    body = json.loads(messages[0]["Message"])
    assert body["site"] == "lyon-part-dieu" and body["thing"] == "exc-01"
    assert body["sensorId"] == "engine" and body["severity"] == "warning" and body["value"] == 80
    assert messages[0]["Subject"].startswith("[warning] ACTIVE engine-overheat")


def test_cli_against_the_local_stack(
    endpoint: dict[str, str],
    table: Any,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chantier.cli import main
    from cloud.local.stackinfo import StackInfo

    StackInfo(
        state_dir=str(tmp_path),
        aws_endpoint=endpoint["endpoint_url"],
        broker_host="127.0.0.1",
        broker_port=8883,
        ca_file="",
        raw_bucket="raw",
        alerts_table=table.name,
        readings_table="readings",
        runs_table="runs",
        rule_name="rule",
    ).save()
    monkeypatch.setenv("CHANTIER_STATE_DIR", str(tmp_path))
    engine = AlertEngine(RULES, DynamoAlertStore(table))  # real clock: the CLI uses it too
    now = engine.clock()
    engine.process_batch(batch(1, [83] * 12, now - 60 * SECOND))
    assert main(["alerts", "list", "--severity", "critical"]) == 0
    assert "engine-overheat" in capsys.readouterr().out
    assert main(["alerts", "ack", "exc-01", "engine", "engine-overheat", "--who", "marie"]) == 0
    assert main(["alerts", "history", "exc-01", "engine", "engine-overheat", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(x["to"], x["who"]) for x in lines] == [("ACTIVE", "system"), ("ACKNOWLEDGED", "marie")]
    assert main(["alerts", "snooze", "exc-01", "engine", "engine-overheat", "--until", "2h"]) == 0
    assert main(["alerts", "list", "--state", "SNOOZED"]) == 0
    assert "SNOOZED" in capsys.readouterr().out
