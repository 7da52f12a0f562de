"""Queries of the readings hot store: by thing and sensor (table key) or by run (`byRun` index)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from cloud.api.cursor import decode_cursor, encode_cursor
from cloud.api.sensors import ReadingFilter, json_safe

BY_THING_KEYS = frozenset({"pk", "sk"})
BY_RUN_KEYS = frozenset({"pk", "sk", "runId"})
# A filtered query may return fewer items than asked; a few more rounds fill the page without
# letting one request read the whole table.
MAX_ROUNDS = 10
_FIELDS = ("runId", "thing", "site", "sensorId", "ts", "temperature", "humidity", "pressure")


def _range(where: ReadingFilter) -> ConditionBase | None:
    low = f"{where.start_ms:013d}" if where.start_ms is not None else None
    high = f"{where.end_ms:013d}" if where.end_ms is not None else None
    if low and high:
        return Key("sk").between(low, high)
    if low:
        return Key("sk").gte(low)
    if high:
        return Key("sk").lte(high)
    return None


class DynamoReadingsQuery:
    def __init__(self, table: Any) -> None:
        self._table = table

    def query(
        self, where: ReadingFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        time_range = _range(where)
        filters: list[ConditionBase] = []
        if where.run_id is not None:
            key: ConditionBase = Key("runId").eq(where.run_id)
            request: dict[str, Any] = {"IndexName": "byRun"}
            expected = BY_RUN_KEYS
            if where.thing is not None:
                filters.append(Attr("thing").eq(where.thing))
            if where.sensor_id is not None:
                filters.append(Attr("sensorId").eq(where.sensor_id))
        else:
            assert where.thing is not None and where.sensor_id is not None
            key = Key("pk").eq(f"R#{where.thing}#{where.sensor_id}")
            request = {}
            expected = BY_THING_KEYS
        request["KeyConditionExpression"] = key & time_range if time_range is not None else key
        if filters:
            combined = filters[0]
            for extra in filters[1:]:
                combined = combined & extra
            request["FilterExpression"] = combined
        start = decode_cursor(cursor, expected)
        items: list[dict[str, Any]] = []
        last: dict[str, Any] | None = start
        for _ in range(MAX_ROUNDS):
            if last is not None:
                request["ExclusiveStartKey"] = last
            request["Limit"] = limit - len(items)
            response = self._table.query(**request)
            items.extend(
                {k: item[k] for k in _FIELDS if k in item} for item in response.get("Items", [])
            )
            last = response.get("LastEvaluatedKey")
            if last is None or len(items) >= limit:
                break
        return json_safe(items), encode_cursor(last)
