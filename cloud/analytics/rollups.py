"""Daily rollups per machine from raw batches and alert transitions (plain Python, no AWS).

Running hours (engine warm): an engine reading counts as running when its temperature is at
least WARM_DELTA_C above the machine's ambient temperature (the nearest ambient reading within
AMBIENT_MAX_AGE_MS), or at least WARM_ABSOLUTE_C when the machine has no recent ambient reading.
Each running reading stands for the time to the next engine reading, capped at MAX_GAP_MS, so a
machine that went silent is not billed for the silence. Machines without an `engine` sensor
(site cabins) have no running hours.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

FIELDS = ("temperature", "humidity", "pressure")
SEVERITIES = ("info", "warning", "critical")
OPEN_STATES = ("ACTIVE", "ACKNOWLEDGED", "LATCHED")
ENGINE = "engine"
WARM_DELTA_C = 15.0  # an idling diesel sits 20-40 °C above the outside air within minutes
WARM_ABSOLUTE_C = 40.0  # no ambient sensor: above this an engine bay is not just sun-warmed
AMBIENT_MAX_AGE_MS = 5 * 60_000
MAX_GAP_MS = 5 * 60_000  # longer than the agent's default batch age; a longer gap is silence
DAY_MS = 86_400_000
CURATED_PREFIX = "curated/daily/"


class RollupInputError(ValueError):
    """A date or an input record the rollup cannot use."""


def day_bounds(day: str) -> tuple[int, int]:
    """[start, end) of a UTC day in epoch ms; RollupInputError unless `day` is YYYY-MM-DD."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise RollupInputError(f"date {day!r}: expected YYYY-MM-DD") from None
    start = int(datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + DAY_MS


def previous_day(now_ms: int) -> str:
    return (datetime.fromtimestamp(now_ms / 1000, tz=UTC).date() - timedelta(days=1)).isoformat()


def curated_key(day: str) -> str:
    """One object per day, rewritten whole by every run: re-running a day is idempotent."""
    return f"{CURATED_PREFIX}date={day}/rollups.jsonl"


@dataclass
class _Stats:
    count: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


@dataclass
class MachineDay:
    """What is known of one machine on one day before it is rolled up."""

    site: str
    thing: str
    equipment: str = ""
    readings: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    batches: int = 0

    def add_batch(self, batch: Mapping[str, Any], start_ms: int, end_ms: int) -> None:
        """Keep the batch's readings of the day; a re-sent batch changes nothing."""
        self.batches += 1
        self.equipment = self.equipment or str(batch.get("equipment") or "")
        for reading in batch.get("readings") or ():
            ts, sensor = reading.get("ts"), reading.get("sensorId")
            if isinstance(ts, int) and isinstance(sensor, str) and start_ms <= ts < end_ms:
                self.readings[(sensor, ts)] = dict(reading)


def running_ms(readings: Iterable[Mapping[str, Any]]) -> int:
    """Milliseconds the engine was warm (see the module docstring for the rule)."""
    engine, ambient = [], []
    for r in readings:
        if isinstance(r.get("temperature"), int | float):
            if r.get("sensorId") == ENGINE:
                engine.append((int(r["ts"]), float(r["temperature"])))
            elif str(r.get("sensorId", "")).startswith("ambient"):
                ambient.append((int(r["ts"]), float(r["temperature"])))
    engine.sort()
    ambient.sort()
    ambient_ts = [ts for ts, _ in ambient]
    total = 0
    for index, (ts, temperature) in enumerate(engine):
        if index + 1 >= len(engine):
            break  # the last reading has no known duration
        gap = min(engine[index + 1][0] - ts, MAX_GAP_MS)
        if _warm(ts, temperature, ambient, ambient_ts):
            total += gap
    return total


def _warm(
    ts: int, temperature: float, ambient: list[tuple[int, float]], ambient_ts: list[int]
) -> bool:
    at = bisect.bisect_left(ambient_ts, ts)
    near = [ambient[i] for i in (at - 1, at) if 0 <= i < len(ambient)]
    near = [a for a in near if abs(a[0] - ts) <= AMBIENT_MAX_AGE_MS]
    if not near:
        return temperature >= WARM_ABSOLUTE_C
    closest = min(near, key=lambda a: abs(a[0] - ts))[1]
    return temperature - closest >= WARM_DELTA_C


def alert_figures(
    transitions: Iterable[Mapping[str, Any]], start_ms: int, end_ms: int
) -> dict[str, Any]:
    """Alerts opened during the day by severity, and times to acknowledge (seconds)."""
    opened = dict.fromkeys(SEVERITIES, 0)
    ack_seconds: list[float] = []
    opened_at: dict[tuple[str, str], int] = {}
    ordered = sorted(transitions, key=lambda t: (int(t["at"]), int(t.get("version", 0))))
    for t in ordered:
        key = (str(t.get("sensorId")), str(t.get("rule")))
        at = int(t["at"])
        newly_open = t.get("to") == "ACTIVE" and t.get("from") not in OPEN_STATES
        if newly_open:
            opened_at[key] = at
            if start_ms <= at < end_ms and t.get("severity") in opened:
                opened[str(t["severity"])] += 1
        elif t.get("to") == "ACKNOWLEDGED" and start_ms <= at < end_ms and key in opened_at:
            ack_seconds.append((at - opened_at[key]) / 1000)
    return {
        "alertsOpenedInfo": opened["info"],
        "alertsOpenedWarning": opened["warning"],
        "alertsOpenedCritical": opened["critical"],
        "alertsOpened": sum(opened.values()),
        "acknowledged": len(ack_seconds),
        "ackSecondsAvg": round(sum(ack_seconds) / len(ack_seconds), 1) if ack_seconds else None,
        "ackSecondsMax": round(max(ack_seconds), 1) if ack_seconds else None,
    }


def rollup(
    day: str,
    machine: MachineDay,
    transitions: Iterable[Mapping[str, Any]] = (),
    hourly_cost: float | None = None,
) -> dict[str, Any]:
    """One row of the curated daily table for a machine."""
    start, end = day_bounds(day)
    stats: dict[tuple[str, str], _Stats] = {}
    readings = list(machine.readings.values())
    for reading in readings:
        for name in FIELDS:
            value = reading.get(name)
            if isinstance(value, int | float):
                stats.setdefault((str(reading["sensorId"]), name), _Stats()).add(float(value))
    sensors = [
        {
            "sensorId": sensor,
            "field": name,
            "count": s.count,
            "min": round(s.low, 2),
            "avg": round(s.total / s.count, 2),
            "max": round(s.high, 2),
        }
        for (sensor, name), s in sorted(stats.items())
    ]
    hours = round(running_ms(readings) / 3_600_000, 3)
    temperatures = [s for (_, name), s in stats.items() if name == "temperature"]
    counted = sum(s.count for s in temperatures)
    return {
        "date": day,
        "site": machine.site,
        "thing": machine.thing,
        "equipment": machine.equipment,
        "readings": len(readings),
        "batches": machine.batches,
        "temperatureAvg": (
            round(sum(s.total for s in temperatures) / counted, 2) if counted else None
        ),
        "sensors": sensors,
        "runningHours": hours,
        "hourlyCost": hourly_cost,
        "cost": round(hours * hourly_cost, 2) if hourly_cost is not None else None,
        **alert_figures(transitions, start, end),
    }


def parse_hourly_cost(raw: str | None) -> float | None:
    """The thing attribute `hourlyCost` (currency per running hour), None when unset or bad."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def to_json_lines(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines, one row per line, as Athena's JSON SerDe reads them."""
    return b"".join(
        json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for row in rows
    )
