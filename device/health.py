"""The health message (kind `health`): what the agent reports about itself; pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEALTH_SCHEMA_VERSION = 1
SENSOR_OK, SENSOR_FAILING, SENSOR_STARTING = "ok", "failing", "starting"


@dataclass
class SensorStatus:
    """Running state of one sensor, as shown in health and `chantier agent status`."""

    name: str
    status: str = SENSOR_STARTING
    last_error: str | None = None
    last_error_at: int | None = None
    errors: int = 0
    consecutive_errors: int = 0
    readings: int = 0
    last_reading_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sensorId": self.name,
            "status": self.status,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "errors": self.errors,
            "readings": self.readings,
            "lastReadingAt": self.last_reading_at,
        }


def health_message(
    *,
    thing: str,
    site: str,
    equipment: str,
    boot: str,
    run_id: str | None,
    sent_at: int,
    version: str,
    uptime_s: float,
    clock_synced: bool,
    clock_source: str,
    queue_depth: int,
    queue_batches: int,
    oldest_reading_ms: int | None,
    dropped_since_boot: int,
    dropped_total: int,
    queue_set_aside: str | None,
    connected_since_ms: int | None,
    sensors: list[SensorStatus],
) -> dict[str, Any]:
    """A health-1 message (see chantier/contracts/health-1.schema.json)."""
    return {
        "schema": HEALTH_SCHEMA_VERSION,
        "kind": "health",
        "thing": thing,
        "site": site,
        "equipment": equipment,
        "boot": boot,
        "runId": run_id,
        "sentAt": sent_at,
        "agentVersion": version,
        "uptimeS": round(uptime_s, 1),
        "clock": {"synced": clock_synced, "source": clock_source},
        "queue": {
            "depth": queue_depth,
            "batches": queue_batches,
            "oldestReadingTs": oldest_reading_ms,
            "setAside": queue_set_aside,
        },
        "dropped": {"sinceBoot": dropped_since_boot, "total": dropped_total},
        "connectedSince": connected_since_ms,
        "sensors": [s.as_dict() for s in sensors],
    }
