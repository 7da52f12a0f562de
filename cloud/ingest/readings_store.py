"""Hot store of recent readings in DynamoDB, for the API and for rate-of-change windows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

RETENTION_S = 7 * 24 * 3600


def reading_item(batch: dict[str, Any], reading: dict[str, Any]) -> dict[str, Any]:
    """One item per reading: pk per thing and sensor, sk the timestamp, expiring after 7 days."""
    item: dict[str, Any] = {
        "pk": f"R#{batch['thing']}#{reading['sensorId']}",
        "sk": f"{reading['ts']:013d}",
        "thing": batch["thing"],
        "site": batch["site"],
        "sensorId": reading["sensorId"],
        "ts": reading["ts"],
        "batch": f"{batch['boot']}-{batch['seq']}",
        "expiresAt": reading["ts"] // 1000 + RETENTION_S,
    }
    if batch.get("runId"):
        item["runId"] = batch["runId"]
    for name in ("temperature", "humidity", "pressure"):
        if name in reading:
            item[name] = Decimal(str(reading[name]))
    return item


class ReadingsStore:
    """Writes accepted readings; a re-sent batch overwrites the same items."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def put_batch(self, batch: dict[str, Any]) -> int:
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as writer:
            for reading in batch["readings"]:
                writer.put_item(Item=reading_item(batch, reading))
        return len(batch["readings"])
