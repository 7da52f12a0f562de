"""What the rollups read besides the raw data: machines, alert history, costs; where they write.

Every read here is a few requests for the whole fleet, never one per object or per reading:
the machines from their last-seen entries (one Query, paged), the alert history in one Scan,
the hourly costs with the registry's thing listing (250 things a page).
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Attr

from cloud.alerts import seen_entries
from cloud.analytics.rollups import curated_key, parse_hourly_cost
from cloud.dynamodb_pages import all_items

HISTORY_LOOKBACK_MS = 7 * 86_400_000  # an alert acknowledged today may have opened this long ago


def machines_seen(alerts_table: Any, since_ms: int) -> dict[str, list[str]]:
    """{site: things} of the machines heard from since `since_ms` (their last-seen entries)."""
    out: dict[str, list[str]] = {}
    entries, _ = seen_entries.list_entries(alerts_table)
    for item in entries:
        if int(item["lastSeen"]) >= since_ms:
            out.setdefault(str(item.get("site") or ""), []).append(str(item["thing"]))
    return {site: sorted(things) for site, things in out.items() if site}


def transitions_since(alerts_table: Any, since_ms: int) -> dict[str, list[dict[str, Any]]]:
    """Alert transitions recorded since `since_ms - HISTORY_LOOKBACK_MS`, by thing."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in all_items(
        alerts_table.scan,
        FilterExpression=Attr("pk").begins_with("HIST#")
        & Attr("at").gte(since_ms - HISTORY_LOOKBACK_MS),
    ):
        out.setdefault(str(item["thing"]), []).append(item)
    return out


def hourly_costs(iot: Any) -> dict[str, float | None]:
    """Each registered thing's `hourlyCost` attribute (None when unset or not a number)."""
    out: dict[str, float | None] = {}
    for page in iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 250}):
        for thing in page.get("things", []):
            attributes = thing.get("attributes") or {}
            out[thing["thingName"]] = parse_hourly_cost(attributes.get("hourlyCost"))
    return out


def write_day(s3: Any, bucket: str, day: str, body: bytes) -> str:
    key = curated_key(day)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
    return key
