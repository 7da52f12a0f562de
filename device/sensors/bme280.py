"""BME280 through the Adafruit CircuitPython driver, on an smbus2 bus or the emulator."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from typing import Any

from device.config import SensorConfig
from device.sensors.base import Measurement, SensorError
from device.sensors.i2c import RdwrBus, SMBusI2C

# Datasheet oversampling factor -> the driver's register code.
OVERSAMPLING_CODE = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5}
IIR_CODE = {0: 0, 2: 1, 4: 2, 8: 3, 16: 4}
MODE_FORCE, MODE_NORMAL = 0x01, 0x03


class Bme280Sensor:
    """One BME280; the chip is (re)initialised lazily, so a sensor that disappears and comes
    back is picked up again by the agent's retries."""

    def __init__(
        self,
        name: str,
        open_bus: Callable[[], RdwrBus],
        address: int = 0x76,
        *,
        bus_label: str = "?",
        oversampling: tuple[int, int, int] = (1, 1, 1),
        iir_filter: int = 0,
        mode: str = "forced",
    ) -> None:
        self.name = name
        self.address = address
        self.bus_label = bus_label
        self.oversampling = oversampling
        self.iir_filter = iir_filter
        self.mode = mode
        self._open_bus = open_bus
        self._bus: RdwrBus | None = None
        self._driver: Any = None

    @classmethod
    def from_config(cls, sensor: SensorConfig, source: Any = None) -> Bme280Sensor:
        """A sensor on /dev/i2c-<bus>, or on an emulated bus when bus = "emulated"."""
        if sensor.bus == "emulated":
            from device.sensors.emulator import Bme280Emulator, EmulatedBus

            emulated = EmulatedBus({sensor.address: Bme280Emulator(source=source)})

            def open_bus() -> RdwrBus:
                return emulated

        else:

            def open_bus() -> RdwrBus:
                from smbus2 import SMBus

                try:
                    return SMBus(int(sensor.bus))
                except FileNotFoundError:
                    raise SensorError(
                        f"/dev/i2c-{sensor.bus} does not exist: enable I2C (raspi-config, "
                        "Interface Options, I2C) and check the bus number"
                    ) from None
                except PermissionError:
                    raise SensorError(
                        f"no permission on /dev/i2c-{sensor.bus}: the agent's user must be in "
                        "the i2c group"
                    ) from None

        return cls(
            sensor.name,
            open_bus,
            sensor.address,
            bus_label=str(sensor.bus),
            oversampling=(
                sensor.oversampling_temperature,
                sensor.oversampling_humidity,
                sensor.oversampling_pressure,
            ),
            iir_filter=sensor.iir_filter,
            mode=sensor.mode,
        )

    def _where(self) -> str:
        return f"BME280 {self.name} at 0x{self.address:02x} on bus {self.bus_label}"

    def _init(self) -> Any:
        from adafruit_bme280.advanced import Adafruit_BME280_I2C

        if self._bus is None:
            self._bus = self._open_bus()
        try:
            driver = Adafruit_BME280_I2C(SMBusI2C(self._bus), self.address)
        except ValueError as exc:  # the bus-device probe: nothing acknowledged the address
            raise SensorError(f"{self._where()}: no device answers ({exc})") from None
        except RuntimeError as exc:  # the driver's chip-id check
            raise SensorError(
                f"{self._where()}: {exc}: expected chip id 0x60 (a BMP280 answers 0x58)"
            ) from None
        t, h, p = self.oversampling
        driver.overscan_temperature = OVERSAMPLING_CODE[t]
        driver.overscan_humidity = OVERSAMPLING_CODE[h]
        driver.overscan_pressure = OVERSAMPLING_CODE[p]
        driver.iir_filter = IIR_CODE[self.iir_filter]
        driver.mode = MODE_NORMAL if self.mode == "normal" else MODE_FORCE
        return driver

    def read(self) -> Measurement:
        """One measurement; any bus or chip failure becomes a SensorError and a re-init."""
        try:
            if self._driver is None:
                self._driver = self._init()
            d = self._driver
            temperature = float(d.temperature)
            humidity = float(d.humidity) if self.oversampling[1] else None
            pressure = float(d.pressure) if self.oversampling[2] else None
        except SensorError:
            self._reset()
            raise
        except OSError as exc:
            self._reset()
            what = (
                "no ACK (wiring, address or power)"
                if exc.errno in (errno.EREMOTEIO, errno.ENXIO)
                else exc.strerror or str(exc)
            )
            raise SensorError(f"{self._where()}: I2C error {exc.errno}: {what}") from None
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            self._reset()
            raise SensorError(f"{self._where()}: {exc}") from None
        return Measurement(round(temperature, 2), _round(humidity, 1), _round(pressure, 2))

    def _reset(self) -> None:
        # re-probe and re-read calibration next time: the chip may have been power-cycled
        self._driver = None

    def close(self) -> None:
        bus, self._bus = self._bus, None
        self._driver = None
        if bus is not None and hasattr(bus, "close"):
            with contextlib.suppress(OSError):
                bus.close()


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
