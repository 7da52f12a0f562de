"""DashboardReader over the alerts table (last seen, last health) and the readings hot store."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key

from cloud.alerts import seen_entries
from cloud.dashboard.service import FIELDS
from cloud.dynamodb_pages import all_items
from cloud.ingest.readings_store import SPAN_MS, batch_pk, readings_of, sk_upper, time_sk

HEALTH_SK = "HEALTH"
_FAR_FUTURE_MS = 9_999_999_999_999


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _reading(reading: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": int(reading["ts"])}
    for name in FIELDS:
        if name in reading:
            out[name] = float(reading[name])
    if item.get("runId"):
        out["runId"] = item["runId"]
    return out


class DynamoDashboardReader:
    """Reads only; every call is a Query or GetItem on a key, never a Scan."""

    def __init__(self, alerts_table: Any, readings_table: Any) -> None:
        self._alerts = alerts_table
        self._readings = readings_table

    def machines(self) -> list[dict[str, Any]]:
        entries, _ = seen_entries.list_entries(self._alerts)
        return [_machine(item) for item in entries]

    def machine(self, thing: str) -> dict[str, Any] | None:
        # An entry of the previous layout may still be the newest (seen_entries).
        legacy = self._alerts.get_item(Key=seen_entries.legacy_key(thing)).get("Item")
        entry = seen_entries.get_entry(self._alerts, thing, consistent=False)
        item = seen_entries.newest([entry, legacy])
        return None if item is None else _machine(item)

    def health(self, thing: str) -> dict[str, Any] | None:
        item = self._alerts.get_item(Key={"pk": f"THING#{thing}", "sk": HEALTH_SK}).get("Item")
        if item is None:
            return None
        message = json.loads(item.get("message") or "{}")
        return {**message, "receivedAt": _plain(item.get("receivedAt"))}

    def latest(self, thing: str, sensor_id: str) -> dict[str, Any] | None:
        found = self.series(thing, sensor_id, 0, _FAR_FUTURE_MS, 1)
        return found[-1] if found else None

    def series(
        self, thing: str, sensor_id: str, start_ms: int, end_ms: int, limit: int
    ) -> list[dict[str, Any]]:
        # Newest batches first. Batches overlap (a reading past an alert level leaves alone,
        # while its batch goes on filling), so the newest readings are known only once the
        # batches still unread start more than SPAN_MS before the oldest of them.
        request: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(batch_pk(thing))
            & Key("sk").between(time_sk(start_ms - SPAN_MS + 1), sk_upper(end_ms)),
            "ScanIndexForward": False,
            # Pages of a few batches: the loop usually stops after the first.
            "Limit": 8,
        }
        kept: list[dict[str, Any]] = []
        for item in all_items(self._readings.query, **request):
            if len(kept) >= limit and int(item["first"]) + SPAN_MS <= kept[limit - 1]["ts"]:
                break
            if sensor_id not in item.get("sensors", ()):
                continue
            kept += [
                _reading(r, item)
                for r in readings_of(item)
                if r["sensorId"] == sensor_id and start_ms <= r["ts"] <= end_ms
            ]
            kept.sort(key=lambda r: r["ts"], reverse=True)
        kept = kept[:limit]
        kept.reverse()
        return kept

    def run_batches(self, run_id: str) -> list[dict[str, Any]]:
        """The batches of a run: thing, sentAt, storedAt and reading count, never the data."""
        request: dict[str, Any] = {
            "IndexName": "byRun",
            "KeyConditionExpression": Key("runId").eq(run_id),
            "ProjectionExpression": "thing, sentAt, storedAt, #c, #f, #l",
            "ExpressionAttributeNames": {"#c": "count", "#f": "first", "#l": "last"},
        }
        return [
            {key: _plain(value) for key, value in item.items()}
            for item in all_items(self._readings.query, **request)
        ]


def _machine(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "thing": item["thing"],
        "site": item.get("site", ""),
        "equipment": item.get("equipment", ""),
        "lastSeen": _plain(item.get("lastSeen")),
    }
