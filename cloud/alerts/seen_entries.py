"""Each machine's last-seen entry in the alerts table: one partition of its own, no index.

An entry is pk ``SEEN``, sk ``<thing>``, with ``thing``, ``site``, ``equipment`` and
``lastSeen`` (epoch ms, server clock). It has no index entry, so a refresh costs one write
unit, and the offline check, the dashboard and the rollups list every machine with one
paginated Query of that partition (about 100 bytes a machine: 1,000 machines in 25 read
units, 12.5 eventually consistent).

Throughput: a partition takes 1,000 write units a second, and the engine refreshes a machine
at most once per ``SEEN_REFRESH_MS`` (2 minutes, 1/120 of a unit a second) whatever it sends
and however many instances of the function it reaches, so one partition holds 120,000
machines refreshing as often as allowed. The ingest path reads an entry (eventually
consistent, half a read unit of the partition's 3,000 a second) only when its process has not
refreshed or read it within the period: at most one read a message, 6,000 messages a second.

Tables deployed before this layout keep a machine's entry in its own partition (pk
``THING#<thing>``, sk ``SEEN``), listed by the ``gsi1`` index under gsi1pk ``SEEN`` (2 write
units a refresh, the item and its index entry). Those entries are read too, and for each
machine the newest time wins, so a machine silent since the deploy stays listed and a late
write by the previous code is not lost; ``move_legacy`` puts one into this layout and deletes
it, which the offline check does for every one it finds (once, the first minute after the
deploy). Once the index holds no ``SEEN`` entry on every deployed table, reading it only
costs an empty Query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from cloud.dynamodb_pages import all_items

SEEN_PK = "SEEN"
LEGACY_SK = "SEEN"  # the sk of an old-layout entry, in pk THING#<thing>
LEGACY_INDEX = "gsi1"  # where old-layout entries are listed, under gsi1pk SEEN


def entry_key(thing: str) -> dict[str, str]:
    return {"pk": SEEN_PK, "sk": thing}


def legacy_key(thing: str) -> dict[str, str]:
    return {"pk": f"THING#{thing}", "sk": LEGACY_SK}


def is_legacy(item: dict[str, Any]) -> bool:
    """True for an entry of the old layout (in the machine's partition, listed by gsi1)."""
    return item.get("pk") != SEEN_PK and item.get("sk") == LEGACY_SK


def put_entry(table: Any, thing: str, site: str, equipment: str, last_seen: int) -> bool:
    """Store a machine's last seen unless a newer one is stored; False when one was."""
    try:
        table.put_item(
            Item={
                **entry_key(thing),
                "thing": thing,
                "site": site,
                "equipment": equipment,
                "lastSeen": last_seen,
            },
            ConditionExpression="attribute_not_exists(sk) OR lastSeen < :t",
            ExpressionAttributeValues={":t": last_seen},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def get_entry(table: Any, thing: str, *, consistent: bool) -> dict[str, Any] | None:
    """The machine's entry in this layout (an old-layout one is not looked for)."""
    item: dict[str, Any] | None = table.get_item(
        Key=entry_key(thing), ConsistentRead=consistent
    ).get("Item")
    return item


def newest(items: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The entry with the latest ``lastSeen`` (this layout's on a tie), None if there is none."""
    found = [item for item in items if item is not None]
    if not found:
        return None
    return max(found, key=lambda item: (int(item["lastSeen"]), not is_legacy(item)))


def list_entries(table: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every machine's newest entry (either layout), and every old-layout entry found."""
    current = list(all_items(table.query, KeyConditionExpression=Key("pk").eq(SEEN_PK)))
    legacy = [
        item
        for item in all_items(
            table.query, IndexName=LEGACY_INDEX, KeyConditionExpression=Key("gsi1pk").eq(SEEN_PK)
        )
        if is_legacy(item)
    ]
    by_thing: dict[str, dict[str, Any]] = {}
    for item in [*current, *legacy]:
        kept = newest([by_thing.get(item["thing"]), item])
        if kept is not None:
            by_thing[item["thing"]] = kept
    return sorted(by_thing.values(), key=lambda item: str(item["thing"])), legacy


def move_legacy(table: Any, item: dict[str, Any]) -> bool:
    """Put an old-layout entry into this layout and delete it; False if it changed meanwhile.

    The delete is conditional on the time read, so an entry the previous code refreshed
    since stays, for the next run to move. Other errors (throttling, a missing permission)
    are raised.
    """
    thing = str(item["thing"])
    put_entry(
        table,
        thing,
        str(item.get("site", "")),
        str(item.get("equipment", "")),
        int(item["lastSeen"]),
    )
    try:
        table.delete_item(
            Key=legacy_key(thing),
            ConditionExpression="lastSeen = :t",
            ExpressionAttributeValues={":t": item["lastSeen"]},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True
