"""Daily rollups: per-sensor figures, running hours, cost and alert figures."""

from __future__ import annotations

import json

import pytest

from cloud.analytics.rollups import (
    MAX_GAP_MS,
    MachineDay,
    RollupInputError,
    alert_figures,
    curated_key,
    day_bounds,
    previous_day,
    rollup,
    running_ms,
    to_json_lines,
)

DAY = "2026-11-20"
START, END = day_bounds(DAY)


def _reading(sensor: str, ts: int, temperature: float, **extra: float) -> dict[str, object]:
    return {"sensorId": sensor, "ts": ts, "temperature": temperature, **extra}


def test_day_bounds_and_keys() -> None:
    assert END - START == 86_400_000
    assert curated_key(DAY) == "curated/daily/date=2026-11-20/rollups.jsonl"
    assert previous_day(START + 5) == "2026-11-19"
    with pytest.raises(RollupInputError, match="YYYY-MM-DD"):
        day_bounds("20/11/2026")


def test_engine_warm_against_ambient_counts_until_the_next_reading() -> None:
    readings = [_reading("ambient", START + i * 60_000, 10.0) for i in range(10)]
    readings += [_reading("engine", START + i * 60_000, 70.0 if i < 5 else 20.0) for i in range(10)]
    assert running_ms(readings) == 5 * 60_000


def test_without_ambient_an_absolute_threshold_applies_and_gaps_are_capped() -> None:
    readings = [_reading("engine", START, 45.0), _reading("engine", START + 3_600_000, 45.0)]
    assert running_ms(readings) == MAX_GAP_MS  # an hour of silence is not an hour of work
    assert (
        running_ms([_reading("engine", START, 35.0), _reading("engine", START + 1000, 35.0)]) == 0
    )


def test_hot_afternoon_is_not_running() -> None:
    readings = [_reading("ambient", START + i * 1000, 38.0) for i in range(5)]
    readings += [_reading("engine", START + i * 1000, 45.0) for i in range(5)]
    assert running_ms(readings) == 0


def test_alert_figures_count_openings_by_severity_and_time_to_acknowledge() -> None:
    t = [
        {
            "sensorId": "engine",
            "rule": "engine-overheat",
            "from": "NORMAL",
            "to": "ACTIVE",
            "severity": "warning",
            "at": START + 1000,
            "version": 1,
        },
        {
            "sensorId": "engine",
            "rule": "engine-overheat",
            "from": "ACTIVE",
            "to": "ACTIVE",
            "severity": "critical",
            "at": START + 2000,
            "version": 2,
        },
        {
            "sensorId": "engine",
            "rule": "engine-overheat",
            "from": "ACTIVE",
            "to": "ACKNOWLEDGED",
            "severity": "critical",
            "at": START + 61_000,
            "version": 3,
        },
        {
            "sensorId": "*",
            "rule": "offline",
            "from": "NORMAL",
            "to": "ACTIVE",
            "severity": "warning",
            "at": START - 5000,
            "version": 1,
        },  # the day before
        {
            "sensorId": "*",
            "rule": "offline",
            "from": "ACTIVE",
            "to": "ACKNOWLEDGED",
            "severity": "warning",
            "at": START + 5000,
            "version": 2,
        },
    ]
    figures = alert_figures(t, START, END)
    assert (figures["alertsOpenedWarning"], figures["alertsOpenedCritical"]) == (1, 0)
    assert figures["alertsOpened"] == 1
    assert figures["acknowledged"] == 2
    assert figures["ackSecondsAvg"] == 35.0 and figures["ackSecondsMax"] == 60.0


def test_rollup_row_deduplicates_resent_batches_and_keeps_the_day_only() -> None:
    machine = MachineDay("lyon", "exc-01")
    batch = {
        "equipment": "excavator",
        "readings": [
            _reading("engine", START + 1000, 70.0, humidity=30.0),
            _reading("engine", START + 2000, 80.0, humidity=32.0),
            _reading("ambient", START + 1000, 10.0),
            _reading("engine", END + 1000, 99.0),  # the next day: not in this row
        ],
    }
    machine.add_batch(batch, START, END)
    machine.add_batch(batch, START, END)  # re-delivered
    row = rollup(DAY, machine, hourly_cost=90.0)
    assert row["readings"] == 3 and row["batches"] == 2 and row["equipment"] == "excavator"
    engine_t = next(
        s for s in row["sensors"] if s["sensorId"] == "engine" and s["field"] == "temperature"
    )
    assert (engine_t["count"], engine_t["min"], engine_t["avg"], engine_t["max"]) == (
        2,
        70.0,
        75.0,
        80.0,
    )
    assert row["runningHours"] == round(1000 / 3_600_000, 3)
    assert row["cost"] == round(row["runningHours"] * 90.0, 2)
    assert row["temperatureAvg"] == round((70 + 80 + 10) / 3, 2)
    assert rollup(DAY, machine)["cost"] is None


def test_json_lines_one_row_per_line() -> None:
    body = to_json_lines([{"a": 1}, {"b": "é"}])
    assert [json.loads(line) for line in body.splitlines()] == [{"a": 1}, {"b": "é"}]
