"""Daily rollups: the SQL (run here by DuckDB, in memory), the rows per machine, alert figures."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from cloud.analytics.daily_sql import MAX_GAP_MS, QueryInputError, daily_query
from cloud.analytics.rollups import (
    RollupInputError,
    alert_figures,
    curated_key,
    day_bounds,
    machine_rows,
    previous_day,
    to_json_lines,
)
from cloud.local.lake import READINGS_TYPE

DAY = "2026-11-20"
NEXT_DAY = "2026-11-21"
START, END = day_bounds(DAY)


def _reading(sensor: str, ts: int, temperature: float, **extra: float) -> dict[str, Any]:
    return {"sensorId": sensor, "ts": ts, "temperature": temperature, **extra}


def query_rows(batches: list[tuple[str, str, str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Run the day's query over (site, thing, date partition, readings) batches."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE raw_batches (equipment VARCHAR, boot VARCHAR, seq BIGINT, "
        f'readings {READINGS_TYPE}, site VARCHAR, thing VARCHAR, "date" VARCHAR)'
    )
    for seq, (site, thing, partition, readings) in enumerate(batches):
        rows = [
            {
                "sensorId": r["sensorId"],
                "ts": r["ts"],
                "temperature": r.get("temperature"),
                "humidity": r.get("humidity"),
                "pressure": r.get("pressure"),
            }
            for r in readings
        ]
        con.execute(
            "INSERT INTO raw_batches VALUES ('excavator', 'b00t', ?, ?, ?, ?, ?)",
            [seq, rows, site, thing, partition],
        )
    machines: dict[str, list[str]] = {}
    for site, thing, _, _ in batches:
        machines.setdefault(site, []).append(thing)
    cursor = con.execute(daily_query(DAY, START, END, machines))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def running_ms(readings: list[dict[str, Any]]) -> int:
    rows = query_rows([("lyon", "exc-01", DAY, readings)])
    return int(rows[0]["running_ms"])


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
    cool = [_reading("engine", START, 35.0), _reading("engine", START + 1000, 35.0)]
    assert running_ms(cool) == 0


def test_hot_afternoon_is_not_running() -> None:
    readings = [_reading("ambient", START + i * 1000, 38.0) for i in range(5)]
    readings += [_reading("engine", START + i * 1000, 45.0) for i in range(5)]
    assert running_ms(readings) == 0


def test_rows_per_machine_keep_the_day_only_across_partitions_and_machines() -> None:
    batches = [
        (
            "lyon",
            "exc-01",
            DAY,
            [
                _reading("engine", START + 1000, 70.0, humidity=30.0),
                _reading("engine", START + 2000, 80.0, humidity=32.0),
                _reading("ambient", START + 1000, 10.0),
            ],
        ),
        # sent after midnight: in the next day's partition, one reading still of the day
        (
            "lyon",
            "exc-01",
            NEXT_DAY,
            [
                _reading("engine", END - 1000, 60.0),
                _reading("engine", END + 1000, 99.0),
            ],
        ),
        ("paris", "crane-01", DAY, [_reading("ambient", START + 5, 12.0, pressure=1001.5)]),
    ]
    rows = machine_rows(DAY, query_rows(batches), {}, {"exc-01": 90.0})
    assert [(r["site"], r["thing"]) for r in rows] == [("lyon", "exc-01"), ("paris", "crane-01")]
    exc, crane = rows
    assert exc["readings"] == 4 and exc["batches"] == 2 and exc["equipment"] == "excavator"
    engine_t = next(
        s for s in exc["sensors"] if s["sensorId"] == "engine" and s["field"] == "temperature"
    )
    assert (engine_t["count"], engine_t["min"], engine_t["avg"], engine_t["max"]) == (
        3,
        60.0,
        70.0,
        80.0,
    )
    assert {(s["sensorId"], s["field"]) for s in exc["sensors"]} == {
        ("engine", "temperature"),
        ("engine", "humidity"),
        ("ambient", "temperature"),
    }
    assert exc["runningHours"] == round((1000 + MAX_GAP_MS) / 3_600_000, 3)
    assert exc["cost"] == round(exc["runningHours"] * 90.0, 2)
    assert exc["temperatureAvg"] == round((70 + 80 + 10 + 60) / 4, 2)
    assert crane["cost"] is None and crane["runningHours"] == 0
    assert [s["field"] for s in crane["sensors"]] == ["temperature", "pressure"]


def test_only_names_and_dates_reach_the_query() -> None:
    with pytest.raises(QueryInputError, match="expected a name"):
        daily_query(DAY, START, END, {"lyon": ["exc-01' OR 1=1 --"]})
    with pytest.raises(QueryInputError, match="no machine"):
        daily_query(DAY, START, END, {})


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


def test_json_lines_one_row_per_line() -> None:
    body = to_json_lines([{"a": 1}, {"b": "é"}])
    assert [json.loads(line) for line in body.splitlines()] == [{"a": 1}, {"b": "é"}]
