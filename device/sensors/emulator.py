"""A register-level BME280 on an emulated I2C bus with the i2c_rdwr interface of smbus2."""

from __future__ import annotations

import ctypes
import errno
import math
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


# The forward formulas below are the ones the driver evaluates (adafruit-circuitpython-bme280,
# after Bosch's reference C code), operation for operation, so that inverting them gives the
# ADC code the driver turns back into the intended value. Bosch's humidity formula differs from
# the datasheet's when dig_H3 != 0, and the driver derives temperature from the truncated t_fine.
ADC_20_MAX = (1 << 20) - 1
ADC_16_MAX = 0xFFFF


def compensate_temperature(adc_t: int, c: Calibration) -> tuple[float, int]:
    """Temperature as the driver computes it: (°C, t_fine)."""
    var1 = (adc_t / 16384.0 - c.t1 / 1024.0) * c.t2
    var2 = ((adc_t / 131072.0 - c.t1 / 8192.0) * (adc_t / 131072.0 - c.t1 / 8192.0)) * c.t3
    t_fine = int(var1 + var2)
    return t_fine / 5120.0, t_fine


def _pressure_terms(t_fine: int, c: Calibration) -> tuple[float, float]:
    """(var1, var2) of the pressure formula: they depend on temperature only."""
    var1 = float(t_fine) / 2.0 - 64000.0
    var2 = var1 * var1 * c.p6 / 32768.0
    var2 += var1 * c.p5 * 2.0
    var2 = var2 / 4.0 + c.p4 * 65536.0
    var3 = c.p3 * var1 * var1 / 524288.0
    var1 = (var3 + c.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.p1
    return var1, var2


def compensate_pressure(adc_p: int, t_fine: int, c: Calibration) -> float:
    """Pressure as the driver computes it, in hPa (0 where the driver would raise)."""
    return _pressure(adc_p, *_pressure_terms(t_fine, c), c)


def _pressure(adc_p: int, var1: float, var2: float, c: Calibration) -> float:
    if not var1:
        return 0.0
    pressure = 1048576.0 - adc_p
    pressure = ((pressure - var2 / 4096.0) * 6250.0) / var1
    var1 = c.p9 * pressure * pressure / 2147483648.0
    var2 = pressure * c.p8 / 32768.0
    pressure += (var1 + var2 + c.p7) / 16.0
    return pressure / 100


def _humidity_terms(t_fine: int, c: Calibration) -> tuple[float, float, float]:
    """(offset, scale, stretch): before its last term, humidity = (adc - offset)*scale*stretch."""
    var1 = float(t_fine) - 76800.0
    offset = c.h4 * 64.0 + (c.h5 / 16384.0) * var1
    var5 = 1.0 + (c.h3 / 67108864.0) * var1
    var6 = 1.0 + (c.h6 / 67108864.0) * var1 * var5
    return offset, c.h2 / 65536.0, var5 * var6


def compensate_humidity(adc_h: int, t_fine: int, c: Calibration) -> float:
    """Relative humidity as the driver computes it, in %RH, clamped to 0..100."""
    return _humidity(adc_h, *_humidity_terms(t_fine, c), c)


def _humidity(adc_h: int, offset: float, scale: float, stretch: float, c: Calibration) -> float:
    var6 = (adc_h - offset) * scale * stretch
    humidity = var6 * (1.0 - c.h1 * var6 / 524288.0)
    return min(100.0, max(0.0, humidity))


def _pieces(vertex: float | None, low: int, high: int) -> list[tuple[int, int]]:
    """[low, high] cut at a quadratic's vertex into parts where it is monotone."""
    if vertex is None or not math.isfinite(vertex) or not low < vertex < high:
        return [(low, high)]
    return [(low, math.floor(vertex)), (math.floor(vertex) + 1, high)]


def nearest_code(f: Callable[[int], float], target: float, low: int, high: int) -> int:
    """The code in [low, high] whose f is closest to target, f monotone there (bisection)."""
    rising = f(high) >= f(low)
    lo, hi = low, high
    while lo < hi:  # first code at or past the target in f's direction
        mid = (lo + hi) // 2
        if (f(mid) < target) if rising else (f(mid) > target):
            lo = mid + 1
        else:
            hi = mid
    candidates = [x for x in (lo - 1, lo) if x >= low]
    return min(candidates, key=lambda x: abs(f(x) - target))


def _invert(f: Callable[[int], float], target: float, vertex: float | None, high: int) -> int:
    """The ADC code whose driver output is closest to target.

    Each compensation is a quadratic (or a line) in the ADC code: monotone on either side of its
    vertex, so one bisection per side finds the closest code whatever the calibration.
    """
    found = [nearest_code(f, target, lo, hi) for lo, hi in _pieces(vertex, 0, high)]
    return min(found, key=lambda x: abs(f(x) - target))


def _temperature_code(celsius: float, c: Calibration) -> int:
    # var1 + var2 = 8*t2*x + t3*x^2 with x = adc/131072 - t1/8192
    vertex = None if c.t3 == 0 else 131072.0 * (-4.0 * c.t2 / c.t3 + c.t1 / 8192.0)
    return _invert(lambda x: compensate_temperature(x, c)[0], celsius, vertex, ADC_20_MAX)


def _pressure_code(hpa: float, t_fine: int, c: Calibration) -> int:
    var1, var2 = _pressure_terms(t_fine, c)
    if not var1:
        return ADC_20_MAX // 2  # the driver cannot compute a pressure with this calibration
    # p = (1048576 - adc - var2/4096) * 6250/var1, then p + (p9*p^2/2^31 + p8*p/2^15 + p7)/16
    vertex = None
    if c.p9:
        p_vertex = -(16.0 + c.p8 / 32768.0) * 2147483648.0 / (2.0 * c.p9)
        vertex = 1048576.0 - var2 / 4096.0 - p_vertex * var1 / 6250.0
    return _invert(lambda x: _pressure(x, var1, var2, c), hpa, vertex, ADC_20_MAX)


def _humidity_code(rh: float, t_fine: int, c: Calibration) -> int:
    offset, scale, stretch = _humidity_terms(t_fine, c)
    gain = scale * stretch
    # humidity = u * (1 - h1*u/2^19) with u = gain * (adc - offset)
    vertex = offset + 262144.0 / (c.h1 * gain) if gain and c.h1 else None
    return _invert(lambda x: _humidity(x, offset, scale, stretch, c), rh, vertex, ADC_16_MAX)


def raw_from_physical(m: Measurement, c: Calibration) -> tuple[int, int, int]:
    """ADC values (20-bit T and P, 16-bit H) the driver turns back into this measurement."""
    adc_t = _temperature_code(m.temperature, c)
    _, t_fine = compensate_temperature(adc_t, c)
    pressure = 1013.25 if m.pressure is None else m.pressure
    humidity = 50.0 if m.humidity is None else m.humidity
    return adc_t, _pressure_code(pressure, t_fine, c), _humidity_code(humidity, t_fine, c)


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
