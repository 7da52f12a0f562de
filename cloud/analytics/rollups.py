"""Daily rollups per machine: the query engine's figures per sensor, alerts and costs joined in.

The readings side (counts, min/avg/max, running hours) comes from one SQL query over the raw
batches (cloud/analytics/daily_sql.py); this module turns its rows into one row per machine
and day, with the alert figures from the transitions and the cost from the running hours.
Plain Python, no AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

FIELDS = ("temperature", "humidity", "pressure")
SEVERITIES = ("info", "warning", "critical")
OPEN_STATES = ("ACTIVE", "ACKNOWLEDGED", "LATCHED")
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


def machine_rows(
    day: str,
    sensor_rows: Iterable[Mapping[str, Any]],
    transitions: Mapping[str, Iterable[Mapping[str, Any]]],
    hourly_costs: Mapping[str, float | None],
) -> list[dict[str, Any]]:
    """Rows of the curated daily table, one per machine, from the query's rows per sensor."""
    start, end = day_bounds(day)
    by_machine: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in sensor_rows:
        by_machine.setdefault((str(row["site"]), str(row["thing"])), []).append(row)
    out = []
    for (site, thing), rows in sorted(by_machine.items()):
        first = rows[0]
        sensors = [
            {
                "sensorId": str(row["sensor"]),
                "field": name,
                "count": int(row[f"{name}_count"]),
                "min": round(float(row[f"{name}_min"]), 2),
                "avg": round(float(row[f"{name}_avg"]), 2),
                "max": round(float(row[f"{name}_max"]), 2),
            }
            for row in sorted(rows, key=lambda r: str(r["sensor"]))
            for name in FIELDS
            if int(row[f"{name}_count"] or 0) > 0
        ]
        temperatures = [
            (int(r["temperature_count"]), float(r["temperature_avg"]))
            for r in rows
            if int(r["temperature_count"] or 0) > 0
        ]
        counted = sum(count for count, _ in temperatures)
        hours = round(int(first["running_ms"] or 0) / 3_600_000, 3)
        cost = hourly_costs.get(thing)
        out.append(
            {
                "date": day,
                "site": site,
                "thing": thing,
                "equipment": str(first.get("equipment") or ""),
                "readings": int(first["readings"]),
                "batches": int(first["batches"]),
                "temperatureAvg": (
                    round(sum(c * avg for c, avg in temperatures) / counted, 2) if counted else None
                ),
                "sensors": sensors,
                "runningHours": hours,
                "hourlyCost": cost,
                "cost": round(hours * cost, 2) if cost is not None else None,
                **alert_figures(transitions.get(thing, ()), start, end),
            }
        )
    return out


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
