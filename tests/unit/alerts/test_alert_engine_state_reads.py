"""AlertEngine reading a machine's states: kept from the batch before, or read ahead."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Sequence

from support.alert_testkit import MINUTE, RULES, SECOND, T0, Clock, batch, moves

from cloud.alerts.engine import AlertEngine
from cloud.alerts.kept_states import KeptStates
from cloud.alerts.records import AlertKey, AlertState, State, Transition
from cloud.alerts.store import InMemoryAlertStore

OVERHEAT = AlertKey("exc-01", "engine", "engine-overheat")


class CallLog(InMemoryAlertStore):
    """The in-memory store, noting its state reads and writes in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.readers: list[tuple[str, str]] = []

    def load_states(self, thing: str) -> dict[AlertKey, AlertState]:
        self.calls.append("read")
        self.readers.append((thing, threading.current_thread().name))
        return super().load_states(thing)

    def save_state(
        self, state: AlertState, expected_version: int, transitions: Sequence[Transition]
    ) -> None:
        self.calls.append(f"write {state.state.value}")
        super().save_state(state, expected_version, transitions)


def engine_on(store: InMemoryAlertStore, clock: Clock) -> AlertEngine:
    return AlertEngine(RULES, store, clock=clock, seen_refresh_ms=MINUTE)


def test_the_batch_after_one_it_applied_writes_its_alert_before_reading() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine = engine_on(store, clock)
    engine.process_batch(batch(1, [60] * 5, T0))
    assert store.calls[0] == "read"
    store.calls.clear()
    fired = engine.process_batch(batch(2, [80] * 12, T0 + 10 * SECOND))
    assert moves(fired) == [("NORMAL", "ACTIVE", "warning")]
    assert store.calls.index("write ACTIVE") < store.calls.index("read")
    store.calls.clear()
    cleared = engine.process_batch(batch(3, [60] * 5, T0 + 30 * SECOND))
    assert moves(cleared) == [("ACTIVE", "NORMAL", "warning")]
    assert store.calls[0] == "write NORMAL" and "read" in store.calls
    assert [t.reason for t in store.history(OVERHEAT)] == ["fired", "cleared"]


def test_a_gap_in_seqs_a_new_boot_or_a_resent_batch_reads_first() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine = engine_on(store, clock)
    engine.process_batch(batch(1, [60] * 5, T0))
    for message in (
        batch(3, [60] * 5, T0 + 10 * SECOND),  # seq 2 went to another instance
        batch(4, [60] * 5, T0 + 20 * SECOND, boot="r3b00t"),
        batch(4, [60] * 5, T0 + 20 * SECOND, boot="r3b00t"),  # the same batch again
    ):
        store.calls.clear()
        engine.process_batch(message)
        assert store.calls[0] == "read", message["seq"]


def test_an_alert_enabled_by_an_operator_since_the_last_batch_still_fires() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine, operator = engine_on(store, clock), engine_on(store, clock)
    operator.disable("exc-01", "engine", "engine-overheat", "marie", "sensor moved")
    engine.process_batch(batch(1, [60] * 5, T0))  # keeps the rule as DISABLED
    clock.now = T0 + 2 * MINUTE
    operator.enable("exc-01", "engine", "engine-overheat", "marie", "sensor back")
    # On the kept state the rule is disabled, so nothing is written before the read; the read
    # shows the rule changed, and the batch is evaluated again on what is stored.
    fired = engine.process_batch(batch(2, [84] * 12, T0 + 3 * MINUTE))
    assert moves(fired) == [("NORMAL", "ACTIVE", "critical")]
    assert store.get_state(OVERHEAT).state is State.ACTIVE  # type: ignore[union-attr]


def test_an_alert_acknowledged_since_the_last_batch_is_not_written_over() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine, operator = engine_on(store, clock), engine_on(store, clock)
    engine.process_batch(batch(1, [80] * 12, T0))  # keeps the state as ACTIVE
    operator.acknowledge("exc-01", "engine", "engine-overheat", "marie", "on my way")
    cleared = engine.process_batch(batch(2, [60] * 5, T0 + 20 * SECOND))
    assert moves(cleared) == [("ACKNOWLEDGED", "NORMAL", "warning")]
    assert [t.reason for t in store.history(OVERHEAT)] == ["fired", "acknowledged", "cleared"]


def test_one_instance_with_kept_states_stores_what_instances_that_always_read_store() -> None:
    """The same messages and operator actions, through one engine and through three that take
    them in turn (so every batch reads first), give the same states and histories."""
    rng = random.Random(7)
    messages: list[tuple[str, object]] = []
    for seq in range(1, 121):
        level = rng.choice([60.0, 70.0, 76.0, 80.0, 83.0, 85.0])
        values = [level + rng.uniform(-1.5, 1.5) for _ in range(rng.randint(1, 12))]
        messages.append(("batch", batch(seq, values, T0 + seq * MINUTE, step=5 * SECOND)))
        if rng.random() < 0.15:
            messages.append(("operator", rng.choice(["acknowledge", "disable", "enable", "reset"])))

    def replay(engines: list[AlertEngine], clock: Clock) -> None:
        turn = 0
        for kind, payload in messages:
            engine = engines[turn % len(engines)]
            turn += 1
            if kind == "batch":
                assert isinstance(payload, dict)
                clock.now = payload["sentAt"] + SECOND
                engine.process_batch(payload)
                continue
            action = getattr(engine, str(payload))
            # An action not allowed from the state it is in is refused the same in both replays.
            with contextlib.suppress(ValueError):
                action("exc-01", "engine", "engine-overheat", "marie")

    kept_store, kept_clock = InMemoryAlertStore(), Clock()
    single = engine_on(kept_store, kept_clock)
    replay([single], kept_clock)
    read_store, read_clock = InMemoryAlertStore(), Clock()
    replay([engine_on(read_store, read_clock) for _ in range(3)], read_clock)

    assert kept_store.states == read_store.states
    assert kept_store.transitions == read_store.transitions
    reasons = {t.reason for t in kept_store.transitions.get(OVERHEAT, [])}
    assert {"fired", "cleared", "acknowledged"} <= reasons  # the replay went through them


def test_kept_states_are_handed_back_once_and_only_for_the_next_seq() -> None:
    kept = KeptStates(limit=2)
    state = AlertState(OVERHEAT, "lyon-part-dieu", "excavator")
    kept.keep("exc-01", "b00t", 4, {OVERHEAT: state})
    assert kept.take("exc-01", "b00t", 6) is None
    kept.keep("exc-01", "b00t", 4, {OVERHEAT: state})
    handed = kept.take("exc-01", "b00t", 5)
    assert handed == {OVERHEAT: state} and handed[OVERHEAT] is not state
    assert kept.take("exc-01", "b00t", 5) is None
    for thing in ("a", "b", "c"):
        kept.keep(thing, "b00t", 1, {})
    assert kept.take("a", "b00t", 2) is None  # the oldest went past the limit
    assert kept.take("c", "b00t", 2) == {}


def test_states_read_ahead_serve_the_batch_without_a_second_read() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine = engine_on(store, clock)
    engine.read_ahead("exc-01", "b00t", 1)
    fired = engine.process_batch(batch(1, [80] * 12, T0))
    assert moves(fired) == [("NORMAL", "ACTIVE", "warning")]
    assert len(store.readers) == 1
    thing, reader = store.readers[0]
    assert thing == "exc-01" and reader.startswith("alert-states-read")


def test_a_read_ahead_for_another_machine_is_not_used() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine = engine_on(store, clock)
    store.save_state(
        AlertState(OVERHEAT, "lyon-part-dieu", "excavator", State.DISABLED, version=1), 0, []
    )
    engine.read_ahead("exc-02", "b00t", 1)  # a message that was then refused
    assert engine.process_batch(batch(1, [80] * 12, T0)) == []  # exc-01's own state: disabled
    assert [thing for thing, _ in store.readers] == ["exc-02", "exc-01"]


def test_no_read_ahead_for_a_batch_that_has_states_kept() -> None:
    store, clock = CallLog(), Clock(T0 + MINUTE)
    engine = engine_on(store, clock)
    engine.process_batch(batch(1, [60] * 5, T0))
    store.calls.clear()
    engine.read_ahead("exc-01", "b00t", 2)
    engine.process_batch(batch(2, [80] * 12, T0 + 10 * SECOND))
    assert store.calls.index("write ACTIVE") < store.calls.index("read")
    assert store.calls.count("read") == 1


def test_a_failed_read_ahead_is_read_again() -> None:
    class FailsOnce(CallLog):
        failed = False

        def load_states(self, thing: str) -> dict[AlertKey, AlertState]:
            if not self.failed:
                self.failed = True
                raise ConnectionError("endpoint not reachable")
            return super().load_states(thing)

    store, clock = FailsOnce(), Clock(T0 + MINUTE)
    engine = engine_on(store, clock)
    engine.read_ahead("exc-01", "b00t", 1)
    fired = engine.process_batch(batch(1, [80] * 12, T0))
    assert moves(fired) == [("NORMAL", "ACTIVE", "warning")]
    assert store.readers == [("exc-01", "MainThread")]
