"""DashboardReader over the alerts table (last seen, last health) and the readings hot store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key

from cloud.dashboard.service import FIELDS

HEALTH_SK = "HEALTH"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _reading(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": int(item["ts"])}
    for name in FIELDS:
        if name in item:
            out[name] = float(item[name])
    if item.get("runId"):
        out["runId"] = item["runId"]
    return out


class DynamoDashboardReader:
    """Reads only; every call is a Query or GetItem on a key, never a Scan."""

    def __init__(self, alerts_table: Any, readings_table: Any) -> None:
        self._alerts = alerts_table
        self._readings = readings_table

    def machines(self) -> list[dict[str, Any]]:
        items = self._query(
            self._alerts, IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq("SEEN")
        )
        return [_machine(item) for item in items]

    def machine(self, thing: str) -> dict[str, Any] | None:
        item = self._alerts.get_item(Key={"pk": f"THING#{thing}", "sk": "SEEN"}).get("Item")
        return None if item is None else _machine(item)

    def health(self, thing: str) -> dict[str, Any] | None:
        item = self._alerts.get_item(Key={"pk": f"THING#{thing}", "sk": HEALTH_SK}).get("Item")
        if item is None:
            return None
        message = json.loads(item.get("message") or "{}")
        return {**message, "receivedAt": _plain(item.get("receivedAt"))}

    def latest(self, thing: str, sensor_id: str) -> dict[str, Any] | None:
        response = self._readings.query(
            KeyConditionExpression=Key("pk").eq(f"R#{thing}#{sensor_id}"),
            ScanIndexForward=False,
            Limit=1,
        )
        items = response.get("Items", [])
        return _reading(items[0]) if items else None

    def series(
        self, thing: str, sensor_id: str, start_ms: int, end_ms: int, limit: int
    ) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"R#{thing}#{sensor_id}")
            & Key("sk").between(f"{start_ms:013d}", f"{end_ms:013d}"),
            "ScanIndexForward": False,  # newest first, so a long window keeps its recent end
        }
        out: list[dict[str, Any]] = []
        for item in self._query(self._readings, **request):
            out.append(_reading(item))
            if len(out) >= limit:
                break
        out.reverse()
        return out

    @staticmethod
    def _query(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = table.query(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _machine(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "thing": item["thing"],
        "site": item.get("site", ""),
        "equipment": item.get("equipment", ""),
        "lastSeen": _plain(item.get("lastSeen")),
    }
