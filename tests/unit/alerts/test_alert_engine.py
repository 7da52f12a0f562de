"""AlertEngine on the in-memory store: lifecycles, operator actions, offline, data loss, dedup."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from support.alert_testkit import (
    MINUTE,
    RULES,
    SECOND,
    T0,
    Clock,
    Instances,
    Recorder,
    batch,
    make_engine,
    moves,
    silence_detected_after_ms,
)

from cloud.alerts.engine import UnknownRuleError, dropped_counter
from cloud.alerts.records import ALLOWED, AlertKey, InvalidTransitionError, State
from cloud.alerts.store import ConflictError, InMemoryAlertStore

OVERHEAT = AlertKey("exc-01", "engine", "engine-overheat")


def test_overheat_active_acknowledged_cleared_normal() -> None:
    notifier = Recorder()
    engine, store, clock = make_engine(notifier=notifier)
    clock.now = T0 + 30 * SECOND
    fired = engine.process_batch(batch(1, [70] * 5 + [79] * 20, T0))
    assert moves(fired) == [("NORMAL", "ACTIVE", "warning")]
    assert fired[0].at == T0 + 15 * SECOND and fired[0].value == 79
    state = store.get_state(OVERHEAT)
    assert state is not None and state.state is State.ACTIVE and state.site == "lyon-part-dieu"

    clock.now = T0 + 40 * SECOND
    acked = engine.acknowledge("exc-01", "engine", "engine-overheat", "marie", "driver told")
    assert acked is not None and acked.to_state is State.ACKNOWLEDGED and acked.who == "marie"

    clock.now = T0 + 70 * SECOND
    cleared = engine.process_batch(batch(2, [74, 71.5], T0 + 60 * SECOND))
    assert moves(cleared) == [("ACKNOWLEDGED", "NORMAL", "warning")]
    history = store.history(OVERHEAT)
    assert [t.reason for t in history] == ["fired", "acknowledged", "cleared"]
    assert history[1].note == "driver told"
    assert notifier.sent == history


def test_escalation_while_acknowledged_alerts_again() -> None:
    engine, _store, clock = make_engine()
    clock.now = T0 + 60 * SECOND
    engine.process_batch(batch(1, [79] * 12, T0))
    engine.acknowledge("exc-01", "engine", "engine-overheat", "marie")
    escalated = engine.process_batch(batch(2, [83] * 12, T0 + 20 * SECOND))
    assert moves(escalated) == [("ACKNOWLEDGED", "ACTIVE", "critical")]


def test_latched_rule_waits_for_acknowledgement() -> None:
    engine, store, clock = make_engine()
    key = AlertKey("gen-01", "engine", "engine-overheat")  # latch: true on generators
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0, thing="gen-01", equipment="generator"))
    cleared = engine.process_batch(
        batch(2, [60] * 3, T0 + 20 * SECOND, thing="gen-01", equipment="generator")
    )
    assert moves(cleared) == [("ACTIVE", "LATCHED", "warning")]
    assert store.list_states(site="lyon-part-dieu")[0].state is State.LATCHED
    # still latched after more normal readings
    assert (
        engine.process_batch(
            batch(3, [60] * 3, T0 + 30 * SECOND, thing="gen-01", equipment="generator")
        )
        == []
    )
    done = engine.acknowledge("gen-01", "engine", "engine-overheat", "paul", "checked coolant")
    assert done is not None and done.to_state is State.NORMAL
    assert store.get_state(key).state is State.NORMAL  # type: ignore[union-attr]


def test_snooze_expires_into_active_or_normal() -> None:
    engine, store, clock = make_engine()
    clock.now = T0 + 20 * SECOND
    engine.process_batch(batch(1, [80] * 12, T0))
    engine.snooze("exc-01", "engine", "engine-overheat", "marie", until_ms=T0 + 10 * MINUTE)
    # while snoozed: escalation is recorded silently, no transition
    clock.now = T0 + 2 * MINUTE
    assert engine.process_batch(batch(2, [84] * 15, T0 + MINUTE)) == []
    assert store.get_state(OVERHEAT).state is State.SNOOZED  # type: ignore[union-attr]
    assert store.list_states(site="lyon-part-dieu") == []  # snoozed alerts are not open
    expired = engine.check_offline(T0 + 10 * MINUTE)
    assert moves(expired) == [("SNOOZED", "ACTIVE", "critical")]
    # snooze again, condition clears meanwhile: expiry lands in NORMAL
    clock.now = T0 + 11 * MINUTE
    engine.snooze("exc-01", "engine", "engine-overheat", "marie", until_ms=T0 + 20 * MINUTE)
    engine.process_batch(batch(3, [60] * 3, T0 + 11 * MINUTE))
    clock.now = T0 + 21 * MINUTE
    # the end of a snooze is the schedule's job, not a side effect of the next message
    assert engine.process_batch(batch(4, [60] * 3, T0 + 21 * MINUTE)) == []
    after = engine.check_offline()
    assert moves(after) == [("SNOOZED", "NORMAL", "critical")]


def test_snooze_in_the_past_is_refused() -> None:
    engine, _, clock = make_engine()
    with pytest.raises(InvalidTransitionError, match="must be after now"):
        engine.snooze("exc-01", "engine", "engine-overheat", "marie", until_ms=clock.now - 1)


def test_disable_enable_reset() -> None:
    engine, _store, clock = make_engine()
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12, T0))
    disabled = engine.disable("exc-01", "engine", "engine-overheat", "marie", "sensor moved")
    assert disabled is not None and disabled.to_state is State.DISABLED
    assert engine.process_batch(batch(2, [84] * 20, T0 + 2 * MINUTE)) == []
    with pytest.raises(InvalidTransitionError):
        engine.acknowledge("exc-01", "engine", "engine-overheat", "marie")
    clock.now = T0 + 3 * MINUTE
    engine.enable("exc-01", "engine", "engine-overheat", "marie")
    # readings older than the enable do not count
    assert engine.process_batch(batch(3, [84] * 20, T0 + 2 * MINUTE + 30 * SECOND)) == []
    fired = engine.process_batch(batch(4, [84] * 12, T0 + 4 * MINUTE))
    assert moves(fired) == [("NORMAL", "ACTIVE", "critical")]
    clock.now = T0 + 5 * MINUTE
    reset = engine.reset("exc-01", "engine", "engine-overheat", "marie", "false alarm")
    assert reset is not None and reset.to_state is State.NORMAL
    assert engine.reset("exc-01", "engine", "engine-overheat", "marie") is None


def test_operator_action_on_unknown_rule() -> None:
    engine, _, _ = make_engine()
    with pytest.raises(UnknownRuleError, match="no-such-rule"):
        engine.disable("exc-01", "engine", "no-such-rule", "marie")
    # a known rule with no state yet can be disabled ahead of time
    assert engine.disable("exc-01", "engine", "engine-overheat", "marie") is not None


def test_offline_fires_when_device_stops_and_clears_when_it_returns() -> None:
    engine, _store, clock = make_engine()
    clock.now = T0 + 10 * SECOND
    engine.process_batch(batch(1, [40] * 5, T0))
    assert engine.check_offline(T0 + 15 * MINUTE) == []
    fired = engine.check_offline(T0 + 17 * MINUTE)
    assert moves(fired) == [("NORMAL", "ACTIVE", "warning")]
    assert fired[0].key == AlertKey("exc-01", "*", "offline")
    assert engine.check_offline(T0 + 18 * MINUTE) == []  # one alert per condition
    # a re-delivered old batch is no proof of life
    clock.now = T0 + 19 * MINUTE
    assert engine.process_batch(batch(1, [40] * 5, T0, boot="other")) == []
    back = engine.process_batch(batch(2, [40] * 5, T0 + 19 * MINUTE))
    assert moves(back) == [("ACTIVE", "NORMAL", "warning")]


class LaggingIndexStore(InMemoryAlertStore):
    """Lists machines as stale from a snapshot taken earlier, as an eventually consistent index."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: list[Any] = []

    def stale_things(self, cutoff_ms: int) -> list[Any]:
        return [s for s in self.snapshot if s.last_seen < cutoff_ms]


def test_offline_check_trusts_the_machine_partition_over_a_lagging_index() -> None:
    from cloud.alerts.engine import AlertEngine

    store = LaggingIndexStore()
    clock = Clock(T0 + 10 * SECOND)
    engine = AlertEngine(RULES, store, clock=clock, seen_refresh_ms=0)
    engine.process_batch(batch(1, [40] * 5, T0))
    store.snapshot = list(store.seen.values())  # the index as of the first batch
    clock.now = T0 + 17 * MINUTE
    engine.process_batch(batch(2, [40] * 5, T0 + 17 * MINUTE - 5 * SECOND))  # back in time
    assert engine.check_offline(T0 + 17 * MINUTE + SECOND) == []
    # Once it is really silent, the check fires.
    assert moves(engine.check_offline(T0 + 34 * MINUTE)) == [("NORMAL", "ACTIVE", "warning")]


def test_data_loss_from_health_latches() -> None:
    engine, store, _clock = make_engine()
    base = {"thing": "exc-01", "site": "lyon-part-dieu", "equipment": "excavator", "boot": "b00t"}
    assert (
        engine.process_health({**base, "sentAt": T0, "dropped": {"total": 0, "sinceBoot": 0}}) == []
    )
    lost = engine.process_health(
        {**base, "sentAt": T0 + MINUTE, "dropped": {"total": 120, "sinceBoot": 120}}
    )
    assert moves(lost) == [("NORMAL", "ACTIVE", "warning")] and lost[0].value == 120
    quiet = engine.process_health({**base, "sentAt": T0 + 2 * MINUTE, "dropped": {"total": 120}})
    assert moves(quiet) == [("ACTIVE", "LATCHED", "warning")]
    # the same health message again changes nothing
    assert (
        engine.process_health({**base, "sentAt": T0 + 2 * MINUTE, "dropped": {"total": 120}}) == []
    )
    engine.acknowledge("exc-01", "*", "data-loss", "marie")
    assert store.get_state(AlertKey("exc-01", "*", "data-loss")).state is State.NORMAL  # type: ignore[union-attr]


def test_health_with_nothing_dropped_stores_no_data_loss_state_until_a_loss() -> None:
    engine, store, clock = make_engine()
    key = AlertKey("exc-01", "*", "data-loss")
    base = {"thing": "exc-01", "site": "lyon-part-dieu", "equipment": "excavator", "boot": "b00t"}
    for minute in range(3):
        clock.now = T0 + minute * MINUTE
        quiet = {**base, "sentAt": clock.now, "dropped": {"total": 0, "sinceBoot": 0}}
        assert engine.process_health(quiet) == []
    assert store.get_state(key) is None and store.states == {}
    clock.now = T0 + 3 * MINUTE
    lost = engine.process_health({**base, "sentAt": clock.now, "dropped": {"total": 4}})
    assert moves(lost) == [("NORMAL", "ACTIVE", "warning")] and lost[0].value == 4


def test_data_loss_counter_that_went_back_to_zero_is_stored_so_the_next_loss_counts() -> None:
    engine, store, _clock = make_engine()
    key = AlertKey("exc-01", "*", "data-loss")
    base = {"thing": "exc-01", "site": "lyon-part-dieu", "equipment": "excavator", "boot": "b00t"}
    engine.process_health({**base, "sentAt": T0, "dropped": {"total": 9}})
    engine.acknowledge("exc-01", "*", "data-loss", "marie")
    # the agent's state was wiped (a reinstall): its total starts again from zero
    engine.process_health({**base, "sentAt": T0 + MINUTE, "dropped": {"total": 0}})
    assert store.get_state(key).memory == {"scope": "total", "count": 0}  # type: ignore[union-attr]
    again = engine.process_health({**base, "sentAt": T0 + 2 * MINUTE, "dropped": {"total": 2}})
    assert moves(again) == [("NORMAL", "ACTIVE", "warning")] and again[0].value == 2


def _health(at: int, *sensors: tuple[str, str]) -> dict[str, Any]:
    return {
        "thing": "exc-01",
        "site": "lyon-part-dieu",
        "equipment": "excavator",
        "boot": "b00t",
        "sentAt": at,
        "sensors": [
            {
                "sensorId": sensor,
                "status": status,
                "lastError": "I2C: no answer at 0x76" if status == "failing" else None,
                "errors": 7 if status == "failing" else 0,
            }
            for sensor, status in sensors
        ],
    }


def test_sensor_reported_failing_in_health_opens_an_alert_until_it_reports_ok() -> None:
    engine, store, clock = make_engine()
    key = AlertKey("exc-01", "cabin", "sensor-fault-reported")
    clock.now = T0
    assert engine.process_health(_health(T0, ("engine", "ok"), ("cabin", "starting"))) == []
    writes = store.writes
    failing = engine.process_health(_health(T0 + MINUTE, ("engine", "ok"), ("cabin", "failing")))
    assert moves(failing) == [("NORMAL", "ACTIVE", "warning")]
    assert failing[0].key == key and failing[0].value == 7
    assert store.writes == writes + 1  # the engine sensor's "ok" costs nothing
    # Still failing a minute later, or the same message again: one alert per condition.
    assert engine.process_health(_health(T0 + 2 * MINUTE, ("cabin", "failing"))) == []
    assert engine.process_health(_health(T0 + MINUTE, ("cabin", "failing"))) == []
    back = engine.process_health(_health(T0 + 3 * MINUTE, ("cabin", "ok")))
    assert moves(back) == [("ACTIVE", "NORMAL", "warning")]
    # An old "failing" message arriving late does not reopen it.
    assert engine.process_health(_health(T0 + 2 * MINUTE, ("cabin", "failing"))) == []
    assert [t.to_state for t in store.history(key)] == [State.ACTIVE, State.NORMAL]


def test_disabled_sensor_status_rule_stays_quiet() -> None:
    engine, _store, clock = make_engine()
    clock.now = T0
    engine.disable("exc-01", "cabin", "sensor-fault-reported", "marie", "sensor removed")
    assert engine.process_health(_health(T0 + MINUTE, ("cabin", "failing"))) == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"dropped": {"total": 5, "sinceBoot": 2}}, ("total", 5)),
        ({"dropped": 7}, ("total", 7)),
        ({"droppedSinceBoot": 3, "boot": "ab"}, ("boot:ab", 3)),
        ({"uptime": 5}, None),
    ],
)
def test_dropped_counter_shapes(message: dict[str, Any], expected: Any) -> None:
    assert dropped_counter(message) == expected


def test_redelivered_and_out_of_order_batches_change_nothing() -> None:
    engine, store, clock = make_engine()
    clock.now = T0 + MINUTE
    first = batch(1, [80] * 12, T0)
    assert len(engine.process_batch(first)) == 1
    writes = store.writes
    assert engine.process_batch(first) == []
    assert store.writes == writes
    cool = batch(3, [60] * 5, T0 + 30 * SECOND)
    assert len(engine.process_batch(cool)) == 1
    # seq 2 arrives late with older hot readings: it must not re-fire the alert
    assert engine.process_batch(batch(2, [80] * 12, T0 + 15 * SECOND)) == []
    assert [t.reason for t in store.history(OVERHEAT)] == ["fired", "cleared"]


def test_uneventful_batches_write_nothing() -> None:
    engine, store, clock = make_engine()
    clock.now = T0 + 10 * SECOND
    engine.process_batch(batch(1, [40.0 + i * 0.01 for i in range(40)], T0))
    writes = store.writes
    for seq in range(2, 20):
        start = T0 + seq * MINUTE
        clock.now = start + MINUTE
        values = [40.0 + ((seq + i) % 7) * 0.01 for i in range(40)]
        assert engine.process_batch(batch(seq, values, start)) == []
    # only last-seen refreshes (seen_refresh_ms=0 in tests), no state writes
    assert store.writes - writes == 18


def test_storm_warning_on_crane_pressure_drop() -> None:
    engine, _store, clock = make_engine()
    transitions = []
    for step in range(0, 19):  # a batch every 10 minutes for 3 hours, pressure falling 4 hPa
        start = T0 + step * 10 * MINUTE
        pressure = 1012.0 - 4.0 * step / 18
        clock.now = start + MINUTE
        transitions += engine.process_batch(
            batch(
                step,
                [pressure],
                start,
                thing="crane-02",
                equipment="crane",
                sensor="cabin",
                field="pressure",
                extra={"humidity": 50.0},
            )
        )
    storm = [t for t in transitions if t.key.rule == "storm-risk"]
    assert moves(storm) == [("NORMAL", "ACTIVE", "warning")]
    assert storm[0].value is not None and storm[0].value >= 3


def test_condensation_in_site_cabin() -> None:
    engine, _, clock = make_engine()
    clock.now = T0 + 20 * MINUTE
    damp = batch(
        1,
        [10.0] * 61,
        T0,
        thing="cab-01",
        equipment="site-cabin",
        sensor="inside",
        step=10 * SECOND,
        extra={"humidity": 96.0},
    )
    fired = [t for t in engine.process_batch(damp) if t.key.rule == "condensation"]
    assert moves(fired) == [("NORMAL", "ACTIVE", "warning")]


class FlakyStore(InMemoryAlertStore):
    """Loses the first conditional write to a concurrent writer that stored the same result."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def save_state(self, state: Any, expected_version: int, transitions: Any) -> None:
        if not self.raced and transitions:
            self.raced = True
            super().save_state(state, expected_version, transitions)
            raise ConflictError("lost the race")
        super().save_state(state, expected_version, transitions)


def test_conflict_is_reevaluated_not_duplicated() -> None:
    from chantier.alerts.rules import load_rules
    from cloud.alerts.engine import AlertEngine

    store = FlakyStore()
    engine = AlertEngine(load_rules(), store, clock=lambda: T0 + MINUTE)
    transitions = engine.process_batch(batch(1, [80] * 12, T0))
    assert transitions == []  # the other writer recorded it
    assert [t.reason for t in store.history(OVERHEAT)] == ["fired"]


def test_notification_failure_does_not_lose_the_transition() -> None:
    class Broken:
        def notify(self, transitions: Any) -> None:
            raise RuntimeError("SNS down")

    engine, store, clock = make_engine(notifier=Broken())
    clock.now = T0 + MINUTE
    assert len(engine.process_batch(batch(1, [80] * 12, T0))) == 1
    assert engine.notify_failures == 1
    assert store.get_state(OVERHEAT).state is State.ACTIVE  # type: ignore[union-attr]


def test_history_follows_allowed_edges() -> None:
    engine, store, clock = make_engine()
    clock.now = T0 + MINUTE
    engine.process_batch(batch(1, [80] * 12 + [83] * 12 + [60], T0))
    history = store.history(OVERHEAT)
    assert [t.reason for t in history] == ["fired", "escalated", "cleared"]
    for before, after in itertools.pairwise(history):
        assert after.from_state is before.to_state
        assert after.to_state in ALLOWED[after.from_state]
        assert after.version == before.version + 1


def test_contract_examples_go_through_the_engine(valid_examples: list[Any]) -> None:
    engine, store, clock = make_engine()
    for path in valid_examples:
        message = json.loads(path.read_text())
        clock.now = message["sentAt"] + SECOND
        engine.process_batch(message)
        # a second delivery of the same bytes changes nothing
        assert engine.process_batch(message) == []
    assert {seen.thing for seen in store.seen.values()} == {"exc-01", "crane-02", "gen-01"}


def test_health_message_in_the_agent_schema_shape() -> None:
    engine, _, clock = make_engine()
    message = {
        "schema": 1,
        "kind": "health",
        "thing": "exc-01",
        "site": "lyon-part-dieu",
        "equipment": "excavator",
        "boot": "9c1e0f7a",
        "sentAt": T0,
        "agentVersion": "0.1.0",
        "uptimeS": 3600,
        "clock": {"synced": True, "source": "auto"},
        "queue": {"depth": 0, "batches": 0, "oldestReadingTs": None},
        "dropped": {"sinceBoot": 12, "total": 12},
        "sensors": [],
    }
    clock.now = T0 + SECOND
    assert moves(engine.process_health(message)) == [("NORMAL", "ACTIVE", "warning")]


@pytest.mark.parametrize("instances", [1, 3])
@pytest.mark.parametrize(
    ("profile", "batch_s", "health_s"), [("default", 900, 900), ("live", 60, 60)]
)
def test_a_silent_machine_is_flagged_within_20_minutes_never_while_it_sends(
    profile: str, batch_s: int, health_s: int, instances: int
) -> None:
    from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine

    clock = Clock()
    store = InMemoryAlertStore()

    def instance() -> AlertEngine:
        return AlertEngine(RULES, store, clock=clock, seen_refresh_ms=SEEN_REFRESH_MS)

    engine = (
        instance()
        if instances == 1
        else Instances([instance() for _ in range(instances)], instance())
    )
    delay = silence_detected_after_ms(engine, clock, batch_s, health_s)
    assert 15 * MINUTE < delay <= 20 * MINUTE, (profile, instances, delay / MINUTE)


class CountingStore(InMemoryAlertStore):
    """Counts last-seen reads and writes: each is one DynamoDB request."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_reads = self.seen_writes = 0

    def last_seen(self, thing: str) -> Any:
        self.seen_reads += 1
        return super().last_seen(thing)

    def touch_thing(self, seen: Any) -> None:
        self.seen_writes += 1
        super().touch_thing(seen)


def health(at: int) -> dict[str, Any]:
    return {"thing": "exc-01", "site": "lyon-part-dieu", "equipment": "excavator", "sentAt": at}


def steady_hour(engine: Any, clock: Clock) -> None:
    """Four 15-minute batches, each with its health message a second later."""
    for n in range(4):
        at = T0 + n * 15 * MINUTE
        clock.now = at
        engine.process_batch(batch(n + 1, [40.0, 40.1], at - 2 * SECOND))
        clock.now = at + SECOND
        engine.process_health(health(at + SECOND))


def test_a_warm_instance_reads_and_refreshes_last_seen_once_a_batch_not_for_its_health() -> None:
    from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine

    store, clock = CountingStore(), Clock()
    engine = AlertEngine(RULES, store, clock=clock, seen_refresh_ms=SEEN_REFRESH_MS)
    steady_hour(engine, clock)
    assert (store.seen_writes, store.seen_reads) == (4, 4)
    assert store.seen["exc-01"].last_seen == T0 + 45 * MINUTE


def test_a_health_message_on_another_instance_reads_the_refresh_and_writes_nothing() -> None:
    from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine

    store, clock = CountingStore(), Clock()
    engines = [
        AlertEngine(RULES, store, clock=clock, seen_refresh_ms=SEEN_REFRESH_MS) for _ in range(2)
    ]
    steady_hour(Instances(engines, engines[0]), clock)
    assert (store.seen_writes, store.seen_reads) == (4, 8)
    # A batch within the refresh period of the same instance writes nothing.
    clock.now = T0 + 45 * MINUTE + 30 * SECOND
    engines[1].process_batch(batch(9, [40.2], clock.now - SECOND))
    assert store.seen_writes == 4


def test_a_machine_moved_to_another_site_is_refreshed_at_once() -> None:
    from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine

    store, clock = CountingStore(), Clock()
    engine = AlertEngine(RULES, store, clock=clock, seen_refresh_ms=SEEN_REFRESH_MS)
    steady_hour(engine, clock)
    clock.now = T0 + 45 * MINUTE + 10 * SECOND
    engine.process_batch(batch(9, [40.2], clock.now - SECOND) | {"site": "grenoble-presquile"})
    assert store.seen["exc-01"].site == "grenoble-presquile"


def test_a_machine_is_refreshed_once_per_period_however_many_instances_it_reaches() -> None:
    from cloud.alerts.engine import SEEN_REFRESH_MS, AlertEngine

    store, clock = CountingStore(), Clock()
    engines = [
        AlertEngine(RULES, store, clock=clock, seen_refresh_ms=SEEN_REFRESH_MS) for _ in range(3)
    ]
    instances = Instances(engines, engines[0])
    for n in range(60):  # a backlog: a batch every 10 s for 10 minutes, spread over three
        clock.now = T0 + n * 10 * SECOND
        instances.process_batch(batch(n + 1, [40.0], clock.now - SECOND))
    assert store.seen_writes == 10 * MINUTE // SEEN_REFRESH_MS
