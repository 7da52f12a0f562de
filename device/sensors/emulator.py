"""A register-level BME280 on an emulated I2C bus with the i2c_rdwr interface of smbus2."""

from __future__ import annotations

import ctypes
import errno
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device.sensors.base import Measurement

CHIP_ID = 0x60
REG_CALIB_00, REG_CHIP_ID, REG_RESET, REG_CALIB_26 = 0x88, 0xD0, 0xE0, 0xE1
REG_CTRL_HUM, REG_STATUS, REG_CTRL_MEAS, REG_CONFIG = 0xF2, 0xF3, 0xF4, 0xF5
REG_PRESS, REG_TEMP, REG_HUM = 0xF7, 0xFA, 0xFD
RESET_WORD = 0xB6
I2C_M_RD = 0x0001
STATUS_MEASURING, STATUS_IM_UPDATE = 0x08, 0x01
# Power-on values of the data registers (datasheet memory map).
RESET_PRESS, RESET_TEMP, RESET_HUM = 0x80000, 0x80000, 0x8000


@dataclass(frozen=True)
class Calibration:
    """Trimming parameters as stored in the chip's NVM."""

    t1: int = 27504
    t2: int = 26435
    t3: int = -1000
    p1: int = 36477
    p2: int = -10685
    p3: int = 3024
    p4: int = 2855
    p5: int = 140
    p6: int = -7
    p7: int = 15500
    p8: int = -14600
    p9: int = 6000
    h1: int = 75
    h2: int = 362
    h3: int = 0
    h4: int = 313
    h5: int = 50
    h6: int = 30

    def block_88(self) -> bytes:
        """0x88-0xA1: T1..P9 little-endian, a reserved byte, then H1."""
        body = struct.pack(
            "<HhhHhhhhhhhh",
            self.t1, self.t2, self.t3, self.p1, self.p2, self.p3,
            self.p4, self.p5, self.p6, self.p7, self.p8, self.p9,
        )  # fmt: skip
        return body + bytes([0x00, self.h1 & 0xFF])

    def block_e1(self) -> bytes:
        """0xE1-0xE7: H2, H3, then H4 and H5 sharing the nibbles of 0xE5, and H6."""
        e4 = (self.h4 >> 4) & 0xFF
        e5 = (self.h4 & 0x0F) | ((self.h5 & 0x0F) << 4)
        e6 = (self.h5 >> 4) & 0xFF
        return (
            struct.pack("<hB", self.h2, self.h3) + bytes([e4, e5, e6]) + struct.pack("<b", self.h6)
        )


def compensate_temperature(adc_t: int, c: Calibration) -> tuple[float, int]:
    """Datasheet floating-point temperature formula: (°C, t_fine)."""
    var1 = (adc_t / 16384.0 - c.t1 / 1024.0) * c.t2
    var2 = (adc_t / 131072.0 - c.t1 / 8192.0) ** 2 * c.t3
    t_fine = int(var1 + var2)
    return (var1 + var2) / 5120.0, t_fine


def compensate_pressure(adc_p: int, t_fine: int, c: Calibration) -> float:
    """Datasheet floating-point pressure formula, in hPa."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * c.p6 / 32768.0
    var2 = var2 + var1 * c.p5 * 2.0
    var2 = var2 / 4.0 + c.p4 * 65536.0
    var1 = (c.p3 * var1 * var1 / 524288.0 + c.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.p1
    if var1 == 0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = c.p9 * p * p / 2147483648.0
    var2 = p * c.p8 / 32768.0
    return (p + (var1 + var2 + c.p7) / 16.0) / 100.0


def compensate_humidity(adc_h: int, t_fine: int, c: Calibration) -> float:
    """Datasheet floating-point humidity formula, in %RH, clamped to 0..100."""
    h = t_fine - 76800.0
    h = (adc_h - (c.h4 * 64.0 + c.h5 / 16384.0 * h)) * (
        c.h2 / 65536.0 * (1.0 + c.h6 / 67108864.0 * h * (1.0 + c.h3 / 67108864.0 * h))
    )
    h = h * (1.0 - c.h1 * h / 524288.0)
    return min(100.0, max(0.0, h))


def _solve(f: Callable[[int], float], target: float, low: int, high: int) -> int:
    """Smallest integer x in [low, high] with f(x) >= target, f increasing (bisection)."""
    while low < high:
        mid = (low + high) // 2
        if f(mid) < target:
            low = mid + 1
        else:
            high = mid
    return low


def raw_from_physical(m: Measurement, c: Calibration) -> tuple[int, int, int]:
    """ADC values (20-bit T and P, 16-bit H) the chip would output for a measurement."""
    adc_t = _solve(lambda x: compensate_temperature(x, c)[0], m.temperature, 0, (1 << 20) - 1)
    _, t_fine = compensate_temperature(adc_t, c)
    pressure = 1013.25 if m.pressure is None else m.pressure
    humidity = 50.0 if m.humidity is None else m.humidity
    # pressure falls as the ADC value rises
    adc_p = _solve(lambda x: -compensate_pressure(x, t_fine, c), -pressure, 0, (1 << 20) - 1)
    adc_h = _solve(lambda x: compensate_humidity(x, t_fine, c), humidity, 0, 0xFFFF)
    return adc_t, adc_p, adc_h


class NackError(OSError):
    """No device acknowledged the address (Linux reports ENXIO/EREMOTEIO as errno 121)."""

    def __init__(self, address: int) -> None:
        super().__init__(errno.EREMOTEIO, f"Remote I/O error: no ACK from 0x{address:02x}")


class Bme280Emulator:
    """Registers of one BME280; measurements come from `source` or from set raw values."""

    def __init__(
        self,
        source: Callable[[], Measurement] | None = None,
        calibration: Calibration | None = None,
        chip_id: int = CHIP_ID,
        conversion_polls: int = 1,
    ) -> None:
        self.calibration = calibration or Calibration()
        self.source = source or (lambda: Measurement(21.0, 45.0, 1013.25))
        self.chip_id = chip_id
        # status reads that still show "measuring" after a forced conversion starts
        self.conversion_polls = conversion_polls
        self.raw: tuple[int, int, int] | None = None
        self.conversions = 0
        self.resets = 0
        self._regs = bytearray(256)
        self._pointer = 0
        self._measuring = 0
        self._power_on()

    def _power_on(self) -> None:
        self._regs[:] = bytes(256)
        calib = self.calibration.block_88()
        self._regs[REG_CALIB_00 : REG_CALIB_00 + len(calib)] = calib
        humid = self.calibration.block_e1()
        self._regs[REG_CALIB_26 : REG_CALIB_26 + len(humid)] = humid
        self._store(RESET_TEMP, RESET_PRESS, RESET_HUM)
        self._measuring = 0

    def _store(self, adc_t: int, adc_p: int, adc_h: int) -> None:
        # 20-bit values sit left-aligned in msb/lsb/xlsb[7:4]; humidity is 16-bit big-endian
        for reg, value in ((REG_PRESS, adc_p), (REG_TEMP, adc_t)):
            self._regs[reg] = (value >> 12) & 0xFF
            self._regs[reg + 1] = (value >> 4) & 0xFF
            self._regs[reg + 2] = (value & 0x0F) << 4
        self._regs[REG_HUM] = (adc_h >> 8) & 0xFF
        self._regs[REG_HUM + 1] = adc_h & 0xFF

    def set_raw(self, adc_t: int, adc_p: int, adc_h: int) -> None:
        """Make every later conversion output these ADC values (None to use `source`)."""
        self.raw = (adc_t, adc_p, adc_h)

    def _convert(self) -> None:
        ctrl_meas = self._regs[REG_CTRL_MEAS]
        osrs_t, osrs_p = ctrl_meas >> 5, (ctrl_meas >> 2) & 0x07
        osrs_h = self._regs[REG_CTRL_HUM] & 0x07
        adc_t, adc_p, adc_h = self.raw or raw_from_physical(self.source(), self.calibration)
        # a skipped measurement leaves its reset value, as on the chip
        self._store(
            adc_t if osrs_t else RESET_TEMP,
            adc_p if osrs_p else RESET_PRESS,
            adc_h if osrs_h else RESET_HUM,
        )
        self.conversions += 1

    def write(self, data: bytes) -> None:
        """An I2C write: register address, then (register, value) pairs per the datasheet."""
        if not data:
            return
        self._pointer = data[0]
        # the BME280 auto-increments only on reads; writes are (reg, value) pairs
        for i in range(0, len(data) - 1, 2):
            self._write_register(data[i], data[i + 1])

    def _write_register(self, reg: int, value: int) -> None:
        if reg == REG_RESET:
            if value == RESET_WORD:
                self.resets += 1
                self._power_on()
            return
        if reg in (REG_CTRL_HUM, REG_CONFIG):
            self._regs[reg] = value
        elif reg == REG_CTRL_MEAS:
            self._regs[reg] = value
            mode = value & 0x03
            if mode in (0x01, 0x02):  # forced: one conversion, then back to sleep
                self._convert()
                self._measuring = self.conversion_polls
                self._regs[REG_CTRL_MEAS] = value & ~0x03
            elif mode == 0x03:
                self._convert()

    def read(self, length: int) -> bytes:
        """An I2C read from the register pointer, auto-incrementing."""
        out = bytearray()
        for i in range(length):
            reg = (self._pointer + i) & 0xFF
            if reg == REG_CHIP_ID:
                out.append(self.chip_id)
            elif reg == REG_STATUS:
                out.append(STATUS_MEASURING if self._measuring > 0 else 0)
                self._measuring = max(0, self._measuring - 1)
            else:
                if i == 0 and reg >= REG_PRESS and self._regs[REG_CTRL_MEAS] & 0x03 == 0x03:
                    self._convert()  # normal mode: fresh data at every burst read
                out.append(self._regs[reg])
        return bytes(out)


class EmulatedBus:
    """Devices by address behind smbus2's i2c_rdwr; faults injectable per address."""

    def __init__(self, devices: dict[int, Bme280Emulator] | None = None) -> None:
        self.devices = dict(devices or {})
        self.absent: set[int] = set()
        self.io_errors: dict[int, int] = {}
        self.transactions = 0
        self.closed = False
        self._lock = threading.Lock()

    def disappear(self, address: int) -> None:
        """The sensor stops answering (cable pulled): every transaction NACKs."""
        self.absent.add(address)

    def come_back(self, address: int, *, power_cycled: bool = True) -> None:
        """The sensor answers again; after a power cycle its registers are at reset values."""
        self.absent.discard(address)
        device = self.devices.get(address)
        if device is not None and power_cycled:
            device._power_on()

    def fail_next(self, address: int, count: int = 1) -> None:
        """The next `count` transactions to `address` end in EIO (noise on a long cable)."""
        self.io_errors[address] = self.io_errors.get(address, 0) + count

    def i2c_rdwr(self, *msgs: Any) -> None:
        with self._lock:
            self.transactions += 1
            for msg in msgs:
                address = int(msg.addr)
                device = self.devices.get(address)
                if device is None or address in self.absent:
                    raise NackError(address)
                if self.io_errors.get(address, 0) > 0:
                    self.io_errors[address] -= 1
                    raise OSError(errno.EIO, f"Input/output error talking to 0x{address:02x}")
                if msg.flags & I2C_M_RD:
                    data = device.read(int(msg.len))
                    ctypes.memmove(msg.buf, data, len(data))
                else:
                    device.write(bytes(msg))

    def close(self) -> None:
        self.closed = True
