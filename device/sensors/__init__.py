"""Sensor drivers: BME280 over I2C, its register-level emulator, and simulated machines."""

from device.sensors.base import Measurement, Sensor, SensorError

__all__ = ["Measurement", "Sensor", "SensorError"]
