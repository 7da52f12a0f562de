"""Request bodies of the API as pydantic models; they also describe the OpenAPI document."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from chantier.names import NAME_PATTERN
from chantier.telemetry import MIN_EPOCH_MS, RANGES

MAX_DURATION_S = 7 * 24 * 3600
MAX_DEVICES = 1000
MAX_PARAMS_BYTES = 4096
RUN_ID_PATTERN = r"^[a-z0-9]{32}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
RunId = Annotated[str, StringConstraints(pattern=RUN_ID_PATTERN)]
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class StartRunRequest(BaseModel):
    """Body of POST /api/runs/start."""

    model_config = _STRICT

    duration: Annotated[int, Field(ge=1, le=MAX_DURATION_S, description="seconds")]
    interval: Annotated[
        float, Field(ge=0.1, le=3600, description="seconds between readings of a device")
    ]
    devices: Annotated[int, Field(ge=1, le=MAX_DEVICES, description="simulated machines")]
    params: Annotated[
        dict[str, Any],
        Field(description="free settings of the run (profile, faults, site…), at most 4 KiB"),
    ] = Field(default_factory=dict)
    things: Annotated[
        list[Name] | None,
        Field(
            max_length=MAX_DEVICES,
            description=(
                "the machines (thing names) the run drives: only their batches may name the "
                "run; without a list, no device's batch may (HTTP input of the run's owner may)"
            ),
        ),
    ] = None

    @field_validator("params")
    @classmethod
    def _small_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, allow_nan=False).encode())
        except ValueError as exc:
            raise ValueError(f"params must be plain JSON: {exc}") from None
        if size > MAX_PARAMS_BYTES:
            raise ValueError(f"params is {size} bytes of JSON: expected at most {MAX_PARAMS_BYTES}")
        return value


class FinishRunRequest(BaseModel):
    """Optional body of POST /api/runs/{id}/finish."""

    model_config = _STRICT

    status: Literal["COMPLETED", "FAILED"] = "COMPLETED"
    note: Annotated[str, StringConstraints(max_length=500)] = ""


def _range(name: str) -> Any:
    low, high = RANGES[name]
    return Field(ge=low, le=high)


Temperature = Annotated[float, _range("temperature")]
Humidity = Annotated[float, _range("humidity")]
Pressure = Annotated[float, _range("pressure")]
Equipment = Literal["excavator", "crane", "generator", "compressor", "concrete-mixer", "site-cabin"]
HTTP_DEFAULT_THING = "http-client"
HTTP_DEFAULT_SITE = "http"
HTTP_DEFAULT_EQUIPMENT = "site-cabin"


class SimpleReading(BaseModel):
    """One reading in the simple shape; thing, site and equipment have documented defaults."""

    model_config = _STRICT

    runId: RunId  # noqa: N815 - field names are the JSON contract
    sensorId: Name  # noqa: N815
    temperature: Temperature
    humidity: Humidity | None = None
    pressure: Pressure | None = None
    thing: Name | None = Field(
        default=None, description=f"default: the run's params.thing, else {HTTP_DEFAULT_THING}"
    )
    site: Name | None = Field(
        default=None, description=f"default: the run's params.site, else {HTTP_DEFAULT_SITE}"
    )
    equipment: Equipment | None = Field(
        default=None,
        description=f"default: the run's params.equipment, else {HTTP_DEFAULT_EQUIPMENT}",
    )
    ts: Annotated[int, Field(ge=MIN_EPOCH_MS, le=4_102_444_800_000)] | None = Field(
        default=None, description="epoch ms; default: time of receipt"
    )
