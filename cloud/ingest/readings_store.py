"""Hot store of recent readings in DynamoDB: one compact item per batch, for the API and dashboard.

Item layout (ReadingsTable):

- pk ``B#<thing>``; sk ``<first reading ms, 13 digits>#<thing>#<boot>#<seq>``: the batch's
  name is in its key, so a re-delivered batch overwrites its own item;
- ``first``/``last``: the times of its oldest and newest readings; ``sensors``: its sensor ids;
  ``count``; ``data``: the readings, compressed (cloud/ingest/batch_codec.py);
- ``thing``, ``site``, ``batch`` (``<boot>-<seq>``), ``runId`` when the batch belongs to a run
  (the sparse ``byRun`` index, keyed by runId and the same sk), ``expiresAt`` (TTL, 7 days);
- ``sentAt`` (the batch's) and ``storedAt`` (when this item was written): a run's latency.

Every item spans less than SPAN_MS, so a query for readings from time T reads the items whose
sk is at least T - SPAN_MS: a batch spanning more (a backlog sent after a long outage) is
stored as several items, one per SPAN_MS of its readings.
"""

from __future__ import annotations

import time
from typing import Any

from cloud.ingest.batch_codec import decode_readings, encode_readings

RETENTION_S = 7 * 24 * 3600
SPAN_MS = 3_600_000
PK_PREFIX = "B#"


def batch_pk(thing: str) -> str:
    return f"{PK_PREFIX}{thing}"


def time_sk(epoch_ms: int) -> str:
    """The sk prefix of items whose first reading is at `epoch_ms`; bounds range conditions."""
    return f"{max(0, epoch_ms):013d}"


def sk_upper(epoch_ms: int) -> str:
    """An sk above every item whose first reading is at or before `epoch_ms`."""
    return f"{time_sk(epoch_ms)}~"


def _chunks(readings: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    ordered = sorted(readings, key=lambda r: (int(r["ts"]), str(r["sensorId"])))
    chunks: list[list[dict[str, Any]]] = []
    for reading in ordered:
        if not chunks or int(reading["ts"]) - int(chunks[-1][0]["ts"]) >= SPAN_MS:
            chunks.append([])
        chunks[-1].append(reading)
    return chunks


def batch_items(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The hot-store items of a validated batch (one, unless it spans more than SPAN_MS)."""
    thing = batch["thing"]
    items = []
    for chunk in _chunks(batch["readings"]):
        first, last = int(chunk[0]["ts"]), int(chunk[-1]["ts"])
        item: dict[str, Any] = {
            "pk": batch_pk(thing),
            "sk": f"{time_sk(first)}#{thing}#{batch['boot']}#{batch['seq']}",
            "thing": thing,
            "site": batch["site"],
            "batch": f"{batch['boot']}-{batch['seq']}",
            "first": first,
            "last": last,
            "count": len(chunk),
            "sensors": sorted({str(r["sensorId"]) for r in chunk}),
            "data": encode_readings(chunk),
            "expiresAt": last // 1000 + RETENTION_S,
        }
        if batch.get("runId"):
            item["runId"] = batch["runId"]
        if isinstance(batch.get("sentAt"), int):
            item["sentAt"] = batch["sentAt"]  # with storedAt: the batch's latency, per run
        items.append(item)
    return items


class ReadingsStore:
    """Writes accepted batches; a re-sent batch overwrites the same items."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def put_batch(self, batch: dict[str, Any]) -> int:
        stored_at = time.time_ns() // 1_000_000
        items = [{**item, "storedAt": stored_at} for item in batch_items(batch)]
        if len(items) == 1:
            self._table.put_item(Item=items[0])
        else:
            with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as writer:
                for item in items:
                    writer.put_item(Item=item)
        return len(batch["readings"])


def readings_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The readings an item holds, sensor by sensor, each sensor's in time order."""
    data = item["data"]
    # boto3's resource layer hands binary attributes back wrapped in its Binary type.
    return decode_readings(bytes(getattr(data, "value", data)))
