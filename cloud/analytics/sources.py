"""Where the rollups read from and write to: the raw bucket, the alerts table, the registry."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from cloud.analytics.rollups import MachineDay, curated_key, day_bounds, parse_hourly_cost

log = logging.getLogger(__name__)


def _prefixes(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for entry in page.get("CommonPrefixes", []):
            yield entry["Prefix"]


def _value(prefix: str, name: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1].removeprefix(f"{name}=")


def machine_days(s3: Any, bucket: str, day: str) -> list[MachineDay]:
    """Every machine with raw batches in the day's partition or the next one.

    A batch lands under the date of its `sentAt`; readings taken just before midnight, or
    queued through a network cut, arrive in a later partition. The next day's partition is
    read too and only readings timed within the day are kept.
    """
    start, end = day_bounds(day)
    following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    machines: list[MachineDay] = []
    for site_prefix in _prefixes(s3, bucket, "raw/"):
        for thing_prefix in _prefixes(s3, bucket, site_prefix):
            machine = MachineDay(_value(site_prefix, "site"), _value(thing_prefix, "thing"))
            for partition in (day, following):
                pages = s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=f"{thing_prefix}date={partition}/"
                )
                for page in pages:
                    for entry in page.get("Contents", []):
                        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                        try:
                            machine.add_batch(json.loads(body), start, end)
                        except (ValueError, AttributeError):
                            log.warning("unreadable raw object %s skipped", entry["Key"])
            if machine.readings:
                machines.append(machine)
    return machines


def transitions(alerts_table: Any, thing: str) -> list[dict[str, Any]]:
    """Every recorded transition of the machine's alerts (history items)."""
    states = _query(
        alerts_table,
        KeyConditionExpression=Key("pk").eq(f"THING#{thing}") & Key("sk").begins_with("STATE#"),
        ProjectionExpression="sensorId, #r",
        ExpressionAttributeNames={"#r": "rule"},
    )
    out: list[dict[str, Any]] = []
    for state in states:
        pk = f"HIST#{thing}#{state['sensorId']}#{state['rule']}"
        out += _query(alerts_table, KeyConditionExpression=Key("pk").eq(pk))
    return out


def hourly_cost(iot: Any, thing: str) -> float | None:
    """The thing's `hourlyCost` attribute; None when the thing or attribute is missing."""
    try:
        attributes = iot.describe_thing(thingName=thing).get("attributes") or {}
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return None
    return parse_hourly_cost(attributes.get("hourlyCost"))


def write_day(s3: Any, bucket: str, day: str, body: bytes) -> str:
    key = curated_key(day)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
    return key


def _query(table: Any, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = table.query(**kwargs)
        items += response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
