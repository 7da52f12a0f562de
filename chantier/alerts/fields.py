"""Reading fields, raw and derived (dew point, dew-point margin)."""

from __future__ import annotations

import math
from typing import Any

RAW_FIELDS = ("temperature", "humidity", "pressure")
DERIVED_FIELDS = ("dewPoint", "dewPointMargin")
FIELDS = RAW_FIELDS + DERIVED_FIELDS

# Magnus coefficients over water (Sonntag 1990), valid from -45 °C to 60 °C within 0.35 °C.
MAGNUS_A = 17.62
MAGNUS_B = 243.12


def dew_point(temperature: float, humidity: float) -> float:
    """Dew point in °C from temperature (°C) and relative humidity (%RH), Magnus formula."""
    # A humidity of 0 % has no dew point; clamp to the sensor's resolution instead of failing.
    gamma = math.log(max(humidity, 0.01) / 100.0) + MAGNUS_A * temperature / (
        MAGNUS_B + temperature
    )
    return MAGNUS_B * gamma / (MAGNUS_A - gamma)


def field_value(reading: dict[str, Any], field: str) -> float | None:
    """Value of a raw or derived field of a reading, None when the reading lacks its inputs."""
    if field in RAW_FIELDS:
        value = reading.get(field)
        return None if value is None else float(value)
    temperature = reading.get("temperature")
    humidity = reading.get("humidity")
    if temperature is None or humidity is None:
        return None
    point = dew_point(float(temperature), float(humidity))
    if field == "dewPoint":
        return point
    return float(temperature) - point
