"""Queries of the readings hot store: by thing (table key) or by run (`byRun` index).

The store keeps one item per batch (cloud/ingest/readings_store.py); a page is made of the
readings of successive items that match the filter, in item order (time of a batch's first
reading), each item's readings in time order. A cursor names the item a page stopped in and
how many of its matching readings were already returned, so a page may end inside a batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from cloud.api.cursor import decode_cursor, encode_cursor
from cloud.api.sensors import ReadingFilter, json_safe
from cloud.ingest.readings_store import SPAN_MS, batch_pk, readings_of, sk_upper, time_sk

CURSOR_KEYS = frozenset({"sk", "n"})
# Items read per request, and requests per page: a filter that matches little cannot make one
# API call read the whole table.
ITEMS_PER_REQUEST = 50
MAX_ROUNDS = 10
RESUME = "resume-at"
WHOLE_ITEM = 1_000_000  # more readings than any item holds


def _matches(where: ReadingFilter, reading: dict[str, Any]) -> bool:
    if where.sensor_id is not None and reading["sensorId"] != where.sensor_id:
        return False
    if where.start_ms is not None and reading["ts"] < where.start_ms:
        return False
    return where.end_ms is None or reading["ts"] <= where.end_ms


def _request(where: ReadingFilter, resume_sk: str | None) -> dict[str, Any]:
    low = time_sk(where.start_ms - SPAN_MS + 1) if where.start_ms is not None else None
    if resume_sk is not None and (low is None or resume_sk > low):
        low = resume_sk
    high = sk_upper(where.end_ms) if where.end_ms is not None else None
    request: dict[str, Any] = {}
    if where.run_id is not None:
        key: ConditionBase = Key("runId").eq(where.run_id)
        request["IndexName"] = "byRun"
    else:
        assert where.thing is not None
        key = Key("pk").eq(batch_pk(where.thing))
    if low is not None and high is not None:
        key = key & Key("sk").between(low, high)
    elif low is not None:
        key = key & Key("sk").gte(low)
    elif high is not None:
        key = key & Key("sk").lte(high)
    request["KeyConditionExpression"] = key
    filters: list[ConditionBase] = []
    if where.start_ms is not None:
        filters.append(Attr("last").gte(where.start_ms))
    if where.run_id is not None and where.thing is not None:
        filters.append(Attr("thing").eq(where.thing))
    if where.sensor_id is not None:
        filters.append(Attr("sensors").contains(where.sensor_id))
    if filters:
        combined = filters[0]
        for extra in filters[1:]:
            combined = combined & extra
        request["FilterExpression"] = combined
    return request


def _reading(item: dict[str, Any], reading: dict[str, Any]) -> dict[str, Any]:
    out = {"thing": item["thing"], "site": item.get("site", ""), **reading}
    if item.get("runId"):
        out["runId"] = item["runId"]
    return out


class DynamoReadingsQuery:
    def __init__(self, table: Any) -> None:
        self._table = table

    def _items(self, request: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
        """Matching items in sk order, each with whether another may follow it."""
        for _ in range(MAX_ROUNDS):
            response = self._table.query(**request, Limit=ITEMS_PER_REQUEST)
            items = response.get("Items", [])
            more = "LastEvaluatedKey" in response
            for index, item in enumerate(items):
                yield item, more or index + 1 < len(items)
            if not more:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        # Rounds used up: the page stops here, its cursor at the next item to read.
        yield {RESUME: request["ExclusiveStartKey"]["sk"]}, True

    def query(
        self, where: ReadingFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        start = decode_cursor(cursor, CURSOR_KEYS)
        resume_sk = str(start["sk"]) if start else None
        skip = int(start["n"]) if start else 0
        out: list[dict[str, Any]] = []
        for item, more in self._items(_request(where, resume_sk)):
            if RESUME in item:  # the request budget ran out before the page filled
                # That item was read already, whether it matched or not: skip all of it.
                return json_safe(out), _cursor(item[RESUME], WHOLE_ITEM)
            matching = [r for r in readings_of(item) if _matches(where, r)]
            done = skip if item["sk"] == resume_sk else 0
            for position in range(done, len(matching)):
                if len(out) == limit:
                    return json_safe(out), _cursor(item["sk"], position)
                out.append(_reading(item, matching[position]))
            if len(out) == limit and more:
                return json_safe(out), _cursor(item["sk"], len(matching))
        return json_safe(out), None


def _cursor(sk: str, position: int) -> str | None:
    return encode_cursor({"sk": sk, "n": position})
