"""Sensors from configuration: simulated machines or BME280s on a real or emulated bus."""

from __future__ import annotations

from collections.abc import Callable

from device.config import AgentConfig, SensorConfig
from device.sensors.base import Sensor
from device.sensors.simulated import SimulatedSensor


def build_sensor(
    config: AgentConfig,
    sensor: SensorConfig,
    *,
    elapsed: Callable[[], float] | None = None,
    wall: Callable[[], float] | None = None,
) -> Sensor:
    """One sensor object for one [[sensors]] table."""
    if sensor.driver == "simulated":
        return SimulatedSensor(
            sensor.name,
            sensor.profile or config.equipment,
            seed=sensor.seed,
            placement=sensor.placement,
            faults=sensor.faults,
            elapsed=elapsed,
            wall=wall,
        )
    from device.sensors.bme280 import Bme280Sensor

    source = None
    if sensor.bus == "emulated":
        # the emulated chip measures a simulated machine, so the whole driver path runs
        simulated = SimulatedSensor(
            sensor.name,
            sensor.profile or config.equipment,
            seed=sensor.seed,
            placement=sensor.placement,
            faults=sensor.faults,
            elapsed=elapsed,
            wall=wall,
        )
        source = simulated.read
    return Bme280Sensor.from_config(sensor, source=source)


def build_sensors(
    config: AgentConfig,
    *,
    elapsed: Callable[[], float] | None = None,
    wall: Callable[[], float] | None = None,
) -> list[Sensor]:
    """All configured sensors, in configuration order."""
    return [build_sensor(config, s, elapsed=elapsed, wall=wall) for s in config.sensors]
