"""Detectors per rule kind: thresholds with hysteresis and `for`, rate, range, stuck, dew point."""

from __future__ import annotations

from typing import Any

import pytest
from support.alert_testkit import MINUTE, RULES, SECOND, T0

from chantier.alerts.detectors import begin_batch, durable, observe, persistable
from chantier.alerts.fields import dew_point, field_value
from chantier.alerts.rules import Rule


def run(rule: Rule, values: list[float], step: int = SECOND, start: int = T0) -> list[str | None]:
    """Feed values one `step` apart; return the condition after each."""
    memory: dict[str, Any] = {}
    condition: str | None = None
    seen = []
    for index, value in enumerate(values):
        condition, _ = observe(rule, memory, value, start + index * step, condition)
        seen.append(condition)
    return seen


def rule(equipment: str, rule_id: str) -> Rule:
    found = RULES.find(equipment, rule_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("temperature", "humidity", "expected"),
    [(20.0, 50.0, 9.26), (25.0, 80.0, 21.31), (0.0, 100.0, 0.0), (-10.0, 70.0, -14.44)],
)
def test_dew_point_magnus(temperature: float, humidity: float, expected: float) -> None:
    assert dew_point(temperature, humidity) == pytest.approx(expected, abs=0.02)


def test_dew_point_margin_field() -> None:
    assert field_value({"temperature": 20.0, "humidity": 50.0}, "dewPointMargin") == pytest.approx(
        10.74, abs=0.02
    )
    assert field_value({"temperature": 20.0}, "dewPointMargin") is None
    assert field_value({"temperature": 20.0, "humidity": 0.0}, "dewPoint") is not None


def test_threshold_waits_for_duration_before_firing() -> None:
    overheat = rule("excavator", "engine-overheat")  # for = 10 s
    brief = run(overheat, [70] + [80] * 5 + [70])
    assert brief == [None] * 7
    held = run(overheat, [70] + [80] * 12)
    assert held.index("warning") == 11  # first hot reading at 1 s, fires 10 s later


def test_threshold_hysteresis_and_levels() -> None:
    overheat = rule("excavator", "engine-overheat")
    values = [80] * 11 + [83] * 11 + [78, 73, 72.5, 71.9, 73, 74.9]
    seen = run(overheat, values)
    assert seen[10] == "warning"
    assert seen[21] == "critical"  # escalation waits `for` again
    assert seen[22] == "warning"  # de-escalation is immediate
    assert seen[23] == "warning" and seen[24] == "warning"  # between clear and level: holds
    assert seen[25] is None  # under the clear level
    assert seen[26:] == [None, None]  # back above clear but under the level: stays clear


def test_freeze_risk_below() -> None:
    freeze = rule("concrete-mixer", "freeze-risk")  # below 5, critical at 0, clear 6, for 120 s
    seen = run(freeze, [8] + [4.5] * 130 + [-1] * 130 + [5.5, 6.1], step=SECOND)
    assert seen[120] is None and seen[121] == "warning"
    assert seen[-3] == "critical"
    assert seen[-2] == "warning"  # 5.5 is above 5 but not above the clear level 6
    assert seen[-1] is None


def test_condensation_on_dew_point_margin() -> None:
    condensation = rule("crane", "condensation")
    reading = {"temperature": 12.0, "humidity": 95.0}
    margin = field_value(reading, condensation.field)
    assert margin is not None and 0.5 < margin < 1.0
    seen = run(condensation, [margin] * 400, step=SECOND)
    assert seen[299] is None and seen[300] == "warning"


def test_rate_of_change_pressure_drop_over_three_hours() -> None:
    storm = rule("crane", "storm-risk")  # fall >= 3 warning, >= 6 critical, 3 h window
    steady = [1013.0] * 240
    assert set(run(storm, steady, step=MINUTE)) == {None}
    # 4.5 hPa over 3 hours, one reading a minute
    falling = [1013.0 - 4.5 * i / 180 for i in range(181)]
    seen = run(storm, falling, step=MINUTE)
    assert seen[-1] == "warning"
    assert seen[:60] == [None] * 60  # under minSpan, no judgement
    storm_value = observe(storm, {}, 1000.0, T0, None)
    assert storm_value == (None, 0.0)


def test_rate_needs_history_and_forgets_old_buckets() -> None:
    storm = rule("crane", "storm-risk")
    memory: dict[str, Any] = {}
    condition = None
    for minute in range(0, 600, 5):  # 10 hours, slow drift
        condition, change = observe(
            storm, memory, 1013.0 - minute * 0.001, T0 + minute * MINUTE, condition
        )
    assert condition is None and change < 1
    assert len(memory["b"]) <= 13
    before = durable(storm, memory)
    observe(storm, memory, 1012.4, T0 + 597 * MINUTE, condition)
    assert durable(storm, memory) == before  # same bucket: nothing new to store


def test_range_fault_with_for() -> None:
    fault = rule("excavator", "sensor-fault-range")  # outside [-39.5, 84.9] for 30 s
    seen = run(fault, [20] + [85.0] * 40 + [20])
    assert seen[30] is None and seen[31] == "warning"
    assert seen[-1] is None


def test_stuck_sensor_across_batches() -> None:
    stuck = rule("excavator", "sensor-fault-stuck")  # same value for 30 min
    memory: dict[str, Any] = {}
    condition = None
    for batch_index in range(35):  # one batch a minute, each 60 identical readings
        begin_batch(stuck, memory)
        for i in range(60):
            ts = T0 + batch_index * MINUTE + i * SECOND
            condition, _ = observe(stuck, memory, 21.37, ts, condition)
        memory = persistable(stuck, memory)  # only what would be stored survives a batch
    assert condition == "warning"


def test_live_sensor_never_stuck_and_costs_no_write() -> None:
    stuck = rule("excavator", "sensor-fault-stuck")
    memory: dict[str, Any] = {}
    condition = None
    durables = set()
    for batch_index in range(60):
        begin_batch(stuck, memory)
        for i in range(30):
            value = 21.0 + ((batch_index + i) % 3) * 0.01
            condition, _ = observe(
                stuck, memory, value, T0 + batch_index * MINUTE + i * 2000, condition
            )
        memory = persistable(stuck, memory)
        durables.add(durable(stuck, memory))
    assert condition is None
    assert durables == {(None, None)}


def test_stuck_clears_when_value_moves() -> None:
    stuck = rule("excavator", "sensor-fault-stuck")
    seen = run(stuck, [5.0] * 31 + [5.01], step=MINUTE)
    assert seen[30] == "warning" and seen[31] is None
