"""Parser models of telemetry schema 1 (pydantic, as used by Powertools Parser)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chantier.names import NAME_PATTERN
from chantier.telemetry import EQUIPMENT, MAX_READINGS_PER_BATCH, MIN_EPOCH_MS, RANGES

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
EpochMs = Annotated[int, Field(ge=MIN_EPOCH_MS, le=4_102_444_800_000)]
Equipment = Literal["excavator", "crane", "generator", "compressor", "concrete-mixer", "site-cabin"]
assert set(Equipment.__args__) == set(EQUIPMENT)  # type: ignore[attr-defined]

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
