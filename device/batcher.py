"""Forming schema-1 telemetry messages within a byte budget; pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chantier.telemetry import (
    MAX_MESSAGE_BYTES,
    MAX_READINGS_PER_BATCH,
    SCHEMA_VERSION,
    encode_message,
)

# Backlog batches stay a little under the IoT Core message limit: MQTT headers and the topic
# travel in the same packet.
BACKLOG_MAX_BYTES = MAX_MESSAGE_BYTES - 4 * 1024


class BatchTooSmallError(ValueError):
    """The byte budget cannot hold even one reading."""


@dataclass(frozen=True)
class Envelope:
    """Fields of a telemetry message that do not depend on its readings."""

    thing: str
    site: str
    equipment: str
    boot: str
    run_id: str | None = None


def reading_dict(
    sensor: str,
    ts: int,
    temperature: float,
    humidity: float | None = None,
    pressure: float | None = None,
) -> dict[str, Any]:
    """One reading as it appears in the message; absent humidity/pressure are left out."""
    item: dict[str, Any] = {"sensorId": sensor, "ts": ts, "temperature": temperature}
    if humidity is not None:
        item["humidity"] = humidity
    if pressure is not None:
        item["pressure"] = pressure
    return item


def message_dict(
    envelope: Envelope, seq: int, sent_at: int, clock_synced: bool, readings: list[dict[str, Any]]
) -> dict[str, Any]:
    """The schema-1 message for these readings."""
    return {
        "schema": SCHEMA_VERSION,
        "thing": envelope.thing,
        "site": envelope.site,
        "equipment": envelope.equipment,
        "boot": envelope.boot,
        "seq": seq,
        "runId": envelope.run_id,
        "sentAt": sent_at,
        "clockSynced": clock_synced,
        "readings": readings,
    }


def fit_readings(
    envelope: Envelope,
    seq: int,
    sent_at: int,
    clock_synced: bool,
    readings: Sequence[dict[str, Any]],
    budget: int,
    max_readings: int = MAX_READINGS_PER_BATCH,
) -> int:
    """How many of `readings`, from the first, fit in a message of at most `budget` bytes."""
    # Compact JSON of a list is its items joined by commas, so sizes add up exactly.
    size = len(encode_message(message_dict(envelope, seq, sent_at, clock_synced, [])))
    count = 0
    for item in readings[: max(0, max_readings)]:
        extra = len(encode_message(item)) + (1 if count else 0)
        if size + extra > budget:
            break
        size += extra
        count += 1
    if count == 0 and readings:
        raise BatchTooSmallError(
            f"a budget of {budget} bytes cannot hold one reading: expected at least {size + extra}"
        )
    return count


def build_batch(
    envelope: Envelope,
    seq: int,
    sent_at: int,
    clock_synced: bool,
    readings: Sequence[dict[str, Any]],
    budget: int,
    max_readings: int = MAX_READINGS_PER_BATCH,
) -> tuple[bytes, int]:
    """Encode the longest prefix of `readings` that fits the budget; return bytes and count."""
    count = fit_readings(envelope, seq, sent_at, clock_synced, readings, budget, max_readings)
    payload = encode_message(
        message_dict(envelope, seq, sent_at, clock_synced, list(readings[:count]))
    )
    return payload, count


def batch_due(
    pending_bytes: int,
    oldest_age_s: float | None,
    urgent: bool,
    budget: int,
    max_age_s: float,
) -> bool:
    """Whether the pending readings should leave now: an alert, a full budget or old enough."""
    if oldest_age_s is None:
        return False
    return urgent or pending_bytes >= budget or oldest_age_s >= max_age_s
