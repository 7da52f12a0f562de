"""Keeps the last health message of each machine in the alerts table, for the dashboard."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

HEALTH_SK = "HEALTH"


class HealthStore:
    """One item per machine (pk ``THING#<thing>``, sk ``HEALTH``); older messages never win."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def put(self, message: dict[str, Any]) -> None:
        thing = message.get("thing")
        if not isinstance(thing, str) or not thing:
            return  # nothing to key it on; the engine already refused or counted it
        sent_at = message.get("sentAt") if isinstance(message.get("sentAt"), int) else 0
        try:
            self._table.put_item(
                Item={
                    "pk": f"THING#{thing}",
                    "sk": HEALTH_SK,
                    "thing": thing,
                    "site": str(message.get("site") or ""),
                    "sentAt": sent_at,
                    "receivedAt": time.time_ns() // 1_000_000,
                    # Kept as text: the message's floats need no Decimal round trip to be shown.
                    "message": json.dumps(message, separators=(",", ":"), default=str),
                },
                ConditionExpression="attribute_not_exists(pk) OR sentAt <= :s",
                ExpressionAttributeValues={":s": sent_at},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # otherwise a newer message is already stored, which is what we want
