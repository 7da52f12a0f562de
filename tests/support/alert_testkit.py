"""Helpers shared by the alert unit tests: a settable clock, batches, an engine on memory."""

from __future__ import annotations

from typing import Any

from chantier.alerts.rules import RuleSet, load_rules
from cloud.alerts.engine import AlertEngine
from cloud.alerts.records import Transition
from cloud.alerts.store import InMemoryAlertStore

T0 = 1_763_733_600_000  # 2025-11-21T14:00:00Z
SECOND = 1000
MINUTE = 60 * SECOND
RULES = load_rules()


class Clock:
    """Server clock the tests move by hand."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


class Recorder:
    """Notifier that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[Transition] = []

    def notify(self, transitions: Any) -> None:
        self.sent.extend(transitions)


def make_engine(
    rules: RuleSet = RULES, clock: Clock | None = None, notifier: Any = None
) -> tuple[AlertEngine, InMemoryAlertStore, Clock]:
    store = InMemoryAlertStore()
    clock = clock or Clock()
    return AlertEngine(rules, store, notifier, clock=clock, seen_refresh_ms=0), store, clock


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
    extra: dict[str, float] | None = None,
    boot: str = "b00t",
) -> dict[str, Any]:
    """A schema-1 message with one reading per value, `step` ms apart from `start`."""
    readings = []
    for index, value in enumerate(values):
        reading: dict[str, Any] = {"sensorId": sensor, "ts": start + index * step, field: value}
        if field != "temperature":
            reading.setdefault("temperature", 20.0 + index * 0.01)
        reading.update(extra or {})
        readings.append(reading)
    return {
        "schema": 1,
        "thing": thing,
        "site": "lyon-part-dieu",
        "equipment": equipment,
        "boot": boot,
        "seq": seq,
        "runId": None,
        "sentAt": start + len(values) * step,
        "clockSynced": True,
        "readings": readings,
    }


def moves(transitions: list[Transition]) -> list[tuple[str, str, str | None]]:
    """(from, to, severity) of each transition, for compact assertions."""
    return [(t.from_state.value, t.to_state.value, t.severity) for t in transitions]


class Instances:
    """Warm instances of the ingest function over one store, each with its own memory, taking
    messages in turn as Lambda may route them; the offline check is an instance of its own."""

    def __init__(self, engines: list[AlertEngine], checker: AlertEngine) -> None:
        self.engines, self.checker, self.turn = engines, checker, 0

    def _next(self) -> AlertEngine:
        self.turn += 1
        return self.engines[self.turn % len(self.engines)]

    def process_batch(self, message: dict[str, Any]) -> list[Transition]:
        return self._next().process_batch(message)

    def process_health(self, message: dict[str, Any]) -> list[Transition]:
        return self._next().process_health(message)

    def check_offline(self, now_ms: int | None = None) -> list[Transition]:
        return self.checker.check_offline(now_ms)


def silence_detected_after_ms(
    engine: AlertEngine | Instances, clock: Clock, batch_s: int, health_s: int
) -> int:
    """Drive a machine at the agent's cadence for 3 hours, then silence; returns how long after
    its last message the offline alert fired. Checks run every minute, as scheduled in AWS.

    Batches and health messages each come at their full interval (the longest gap the agent
    allows), a little late (publish and delivery), nearly in step with each other (the worst
    case: the machine's silences are then as long as one interval) and out of step with the
    check. Raises AssertionError if the machine is flagged while it still sends.
    """
    due = {"batch": T0 + 7 * SECOND, "health": T0 + 27 * SECOND}
    period = {"batch": batch_s * SECOND, "health": health_s * SECOND}
    next_check, seq, last = T0 + 31 * SECOND, 0, T0
    end = T0 + 3 * 60 * MINUTE
    while min(due.values()) < end:
        kind = min(due, key=lambda k: due[k])
        at = due[kind]
        while next_check <= at:
            fired = engine.check_offline(next_check)
            assert fired == [], f"flagged offline at +{(next_check - T0) // SECOND} s while sending"
            next_check += MINUTE
        clock.now = at
        seq += 1
        if kind == "batch":
            engine.process_batch(batch(seq, [60.0, 60.1], at - 2 * SECOND))
        else:
            engine.process_health(
                {
                    "thing": "exc-01",
                    "site": "lyon-part-dieu",
                    "equipment": "excavator",
                    "sentAt": at,
                }
            )
        last = at
        due[kind] += period[kind] + (seq % 5) * 200  # up to a second late
    while next_check < last + 60 * MINUTE:
        if engine.check_offline(next_check):
            return next_check - last
        next_check += MINUTE
    raise AssertionError("no offline alert within an hour of silence")
