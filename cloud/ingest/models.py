"""Parser models of telemetry schema 1 (pydantic, as used by Powertools Parser)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from chantier.names import NAME_PATTERN
from chantier.telemetry import EQUIPMENT, MAX_READINGS_PER_BATCH, MIN_EPOCH_MS, RANGES

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
EpochMs = Annotated[int, Field(ge=MIN_EPOCH_MS, le=4_102_444_800_000)]
Equipment = Literal["excavator", "crane", "generator", "compressor", "concrete-mixer", "site-cabin"]
assert set(Equipment.__args__) == set(EQUIPMENT)  # type: ignore[attr-defined]

DECIMALS = 6  # what the cloud keeps of a reading's value
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class Reading(BaseModel):
    """One reading of one sensor; humidity and pressure are optional."""

    model_config = _STRICT

    sensorId: Name
    ts: EpochMs
    temperature: Annotated[float, Field(ge=RANGES["temperature"][0], le=RANGES["temperature"][1])]
    humidity: Annotated[float, Field(ge=RANGES["humidity"][0], le=RANGES["humidity"][1])] | None = (
        None
    )
    pressure: Annotated[float, Field(ge=RANGES["pressure"][0], le=RANGES["pressure"][1])] | None = (
        None
    )

    @field_validator("humidity", "pressure", mode="before")
    @classmethod
    def _absent_not_null(cls, value: object) -> object:
        # The schema has no null for these: a missing value is a missing field.
        if value is None:
            raise ValueError("null is not a number: leave the field out when there is no value")
        return value

    @field_validator("temperature", "humidity", "pressure")
    @classmethod
    def _sensor_resolution(cls, value: float | None) -> float | None:
        # Far finer than any BME280 resolves; a value like 1e-200 (inside the range) becomes 0
        # instead of a number DynamoDB cannot hold (its exponent stops at -130).
        return None if value is None else round(value, DECIMALS) + 0.0


class BatchEnvelope(BaseModel):
    """A batch without its readings, which are validated one by one."""

    model_config = _STRICT

    schema_version: Literal[1] = Field(alias="schema")
    thing: Name
    site: Name
    equipment: Equipment
    boot: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,32}$")]
    seq: Annotated[int, Field(ge=0)]
    runId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    sentAt: EpochMs
    clockSynced: bool
    readings: Annotated[list[object], Field(min_length=1, max_length=MAX_READINGS_PER_BATCH)]


# ---- health schema 1 (chantier/contracts/health-1.schema.json) ----------------------------

Count = Annotated[int, Field(ge=0)]


def _not_bool(value: object) -> object:
    # JSON's true is no number; Python's bool is an int, and strict mode still lets it through
    # where a float is expected.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


class HealthClock(BaseModel):
    model_config = _STRICT

    synced: bool
    source: Literal["auto", "systemd", "kernel", "assume-synced"]


class HealthQueue(BaseModel):
    model_config = _STRICT

    depth: Count
    batches: Count
    oldestReadingTs: int | None
    setAside: str | None = None


class HealthDropped(BaseModel):
    model_config = _STRICT

    sinceBoot: Count
    total: Count


class HealthSensor(BaseModel):
    model_config = _STRICT

    sensorId: Name
    status: Literal["starting", "ok", "failing"]
    lastError: str | None
    lastErrorAt: int | None = None
    errors: Count
    readings: Count | None = None
    lastReadingAt: int | None = None

    @field_validator("readings", mode="before")
    @classmethod
    def _absent_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("null is not a count: leave the field out when there is none")
        return value


class HealthMessage(BaseModel):
    """An agent's health message; sentAt is the device clock's, which may be unsynchronised."""

    model_config = _STRICT

    schema_version: Literal[1] = Field(alias="schema")
    kind: Literal["health"]
    thing: Name
    site: Name
    equipment: Equipment
    boot: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,32}$")]
    runId: Annotated[str, StringConstraints(max_length=64)] | None = None
    sentAt: Count
    agentVersion: Annotated[str, StringConstraints(min_length=1)]
    uptimeS: Annotated[float, Field(ge=0)]
    clock: HealthClock
    queue: HealthQueue
    dropped: HealthDropped
    connectedSince: int | None = None
    sensors: list[HealthSensor]

    _no_bool_uptime = field_validator("uptimeS", mode="before")(_not_bool)
