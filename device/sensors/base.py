"""What every sensor gives the agent: one measurement per read, or a SensorError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chantier.telemetry import RANGES


class SensorError(RuntimeError):
    """A sensor could not be read; the agent reports it and retries later."""


@dataclass(frozen=True)
class Measurement:
    """One reading of a BME280-like sensor in °C, %RH and hPa."""

    temperature: float
    humidity: float | None = None
    pressure: float | None = None


class Sensor(Protocol):
    """A named source of measurements."""

    name: str

    def read(self) -> Measurement: ...

    def close(self) -> None: ...


def clamp(kind: str, value: float) -> float:
    """Keep a value inside the BME280 operating range the schema accepts."""
    low, high = RANGES[kind]
    return min(high, max(low, value))


def check_measurement(m: Measurement) -> Measurement:
    """Refuse a measurement the telemetry schema would reject, naming the value."""
    for kind in ("temperature", "humidity", "pressure"):
        value = getattr(m, kind)
        if value is None:
            continue
        low, high = RANGES[kind]
        if not (low <= value <= high):  # also false for NaN
            raise SensorError(f"{kind} {value!r} is outside the sensor range {low}..{high}")
    return m
