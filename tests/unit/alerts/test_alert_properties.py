"""Property tests of the engine and state machine on the in-memory store."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.alert_testkit import MINUTE, SECOND, T0, Clock, batch

from chantier.alerts.rules import load_rules
from cloud.alerts.engine import AlertEngine, UnknownRuleError
from cloud.alerts.records import ALLOWED, OPEN_STATES, AlertKey, InvalidTransitionError, State
from cloud.alerts.store import InMemoryAlertStore

RULES = load_rules()
KEYS = [
    ("engine", "engine-overheat"),
    ("engine", "sensor-fault-range"),
    ("*", "offline"),
    ("*", "data-loss"),
    ("engine", "sensor-fault-reported"),
]
TEMPERATURES = st.sampled_from([60.0, 71.0, 73.0, 76.0, 80.0, 83.0, 85.0])

operations = st.one_of(
    # runs of equal readings, long enough to pass the rules' `for` durations
    st.tuples(
        st.just("batch"),
        st.lists(st.tuples(TEMPERATURES, st.integers(1, 35)), min_size=1, max_size=3),
    ),
    st.tuples(st.just("gap"), st.integers(1, 20)),
    st.tuples(st.just("tick"), st.integers(0, 3)),
    # readings dropped since the last health message, and whether the engine sensor is failing
    st.tuples(st.just("health"), st.tuples(st.integers(0, 50), st.booleans())),
    st.tuples(st.just("redeliver"), st.integers(0, 1000)),
    st.tuples(
        st.sampled_from(["ack", "snooze", "disable", "enable", "reset"]),
        st.sampled_from(KEYS),
    ),
)


class Run:
    """Drives one engine through a list of operations and keeps every batch it sent."""

    def __init__(self) -> None:
        self.clock = Clock(T0)
        self.store = InMemoryAlertStore()
        self.engine = AlertEngine(RULES, self.store, clock=self.clock, seen_refresh_ms=0)
        self.batches: list[dict[str, Any]] = []
        self.health: list[dict[str, Any]] = []
        self.cursor = T0
        self.dropped = 0

    def apply(self, op: tuple[Any, Any]) -> None:
        kind, arg = op
        if kind == "batch":
            values = [value for value, count in arg for _ in range(count)]
            message = batch(len(self.batches), values, self.cursor)
            self.cursor += len(values) * SECOND
            self.clock.now = max(self.clock.now, self.cursor + 500)
            self.batches.append(message)
            self.engine.process_batch(message)
        elif kind == "gap":
            self.clock.advance(arg * MINUTE)
            self.cursor = max(self.cursor, self.clock.now)
        elif kind == "tick":
            self.clock.advance(arg * MINUTE)
            self.cursor = max(self.cursor, self.clock.now)
            self.engine.check_offline()
        elif kind == "health":
            lost, failing = arg
            self.dropped += lost
            self.clock.advance(SECOND)
            message = {
                "thing": "exc-01",
                "site": "lyon-part-dieu",
                "equipment": "excavator",
                "boot": "b00t",
                "sentAt": self.clock.now,
                "dropped": {"total": self.dropped},
                "sensors": [
                    {
                        "sensorId": "engine",
                        "status": "failing" if failing else "ok",
                        "lastError": "no answer at 0x76" if failing else None,
                        "errors": 3 if failing else 0,
                    }
                ],
            }
            self.health.append(message)
            self.engine.process_health(message)
        elif kind == "redeliver":
            if self.batches:
                self.engine.process_batch(self.batches[arg % len(self.batches)])
        else:
            sensor, rule = arg
            action = {
                "ack": self.engine.acknowledge,
                "disable": self.engine.disable,
                "enable": self.engine.enable,
                "reset": self.engine.reset,
            }.get(kind)
            self.clock.advance(SECOND)
            try:
                if kind == "snooze":
                    until = self.clock.now + 5 * MINUTE
                    self.engine.snooze("exc-01", sensor, rule, "op", until_ms=until)
                else:
                    assert action is not None
                    action("exc-01", sensor, rule, "op")
            except (InvalidTransitionError, UnknownRuleError):
                pass  # refused actions are part of the contract, not failures

    def snapshot(self) -> tuple[Any, ...]:
        states = {
            k: (s.state, s.severity, s.since, s.value, s.snoozed_until, s.version)
            for k, s in self.store.states.items()
        }
        history = {k: list(v) for k, v in self.store.transitions.items()}
        return states, history


def check_invariants(run: Run) -> None:
    for key, state in run.store.states.items():
        history = run.store.transitions.get(key, [])
        previous = State.NORMAL
        version = 0
        for transition in history:
            assert transition.from_state is previous, (key, history)
            assert transition.to_state in ALLOWED[transition.from_state], transition
            assert transition.version > version
            previous, version = transition.to_state, transition.version
        assert state.state is previous
        assert state.version >= version
    # one item per key: so at most one open alert per (thing, sensor, rule)
    open_keys = [s.key for s in run.store.states.values() if s.state in OPEN_STATES]
    assert len(open_keys) == len(set(open_keys))
    assert all(isinstance(k, AlertKey) for k in open_keys)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(operations, max_size=40))
def test_transitions_follow_allowed_edges(ops: list[tuple[Any, Any]]) -> None:
    run = Run()
    for op in ops:
        run.apply(op)
        check_invariants(run)


@SETTINGS
@given(st.lists(operations, max_size=40), st.data())
def test_reprocessing_any_prefix_changes_nothing(
    ops: list[tuple[Any, Any]], data: st.DataObject
) -> None:
    run = Run()
    for op in ops:
        run.apply(op)
    before = run.snapshot()
    cut = data.draw(st.integers(0, len(run.batches)), label="prefix")
    for message in run.batches[:cut]:
        assert run.engine.process_batch(message) == []
    for message in run.health:
        assert run.engine.process_health(message) == []
    assert run.snapshot() == before
    check_invariants(run)
