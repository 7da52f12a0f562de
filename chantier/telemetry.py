"""Telemetry schema 1: limits shared by the agent and the cloud, and the canonical encoding."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1
# IoT Core refuses messages over 128 KB; the agent stays below, the cloud rejects above.
MAX_MESSAGE_BYTES = 128 * 1024
MAX_READINGS_PER_BATCH = 1000
# Physical ranges of the BME280 (Bosch datasheet, operating range).
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (300.0, 1100.0),
}
# Readings stamped before 2020 cannot come from a synchronised clock.
MIN_EPOCH_MS = 1_577_836_800_000
# How far ahead of the time the cloud received it a message or a reading may be stamped: more
# than a synchronised clock ever drifts, far less than an alert rule's windows. A reading from
# further ahead would stand for "newest" for ever and mask every real reading after it.
FUTURE_TOLERANCE_MS = 5 * 60_000
EQUIPMENT = ("excavator", "crane", "generator", "compressor", "concrete-mixer", "site-cabin")


def encode_message(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused so every consumer can parse it."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def schema_text(name: str = "telemetry-1.schema.json") -> str:
    return resources.files("chantier.contracts").joinpath(name).read_text(encoding="utf-8")
