"""A busio.I2C-compatible adapter over an smbus2 SMBus (or anything with its i2c_rdwr)."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from smbus2 import i2c_msg

# Address range a 7-bit scan covers (the reserved addresses at both ends are left out).
SCAN_RANGE = range(0x08, 0x78)


class RdwrBus(Protocol):
    """The one smbus2.SMBus method the adapter needs: combined I2C transactions."""

    def i2c_rdwr(self, *msgs: Any) -> None: ...


def _slice(buffer: Any, start: int, end: int | None) -> tuple[int, int]:
    stop = len(buffer) if end is None else end
    return start, stop


class SMBusI2C:
    """What CircuitPython drivers expect from busio.I2C, done with i2c_rdwr messages.

    Each call is one combined transaction (repeated start between write and read), which is
    what the BME280 needs to read a register without releasing the bus."""

    def __init__(self, bus: RdwrBus) -> None:
        self.bus = bus
        self._lock = threading.Lock()

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        if self._lock.locked():
            self._lock.release()

    def writeto(self, address: int, buffer: Any, *, start: int = 0, end: int | None = None) -> None:
        a, b = _slice(buffer, start, end)
        self.bus.i2c_rdwr(i2c_msg.write(address, bytes(buffer[a:b])))

    def readfrom_into(
        self, address: int, buffer: Any, *, start: int = 0, end: int | None = None
    ) -> None:
        a, b = _slice(buffer, start, end)
        msg = i2c_msg.read(address, b - a)
        self.bus.i2c_rdwr(msg)
        buffer[a:b] = bytes(msg)

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: Any,
        buffer_in: Any,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None:
        oa, ob = _slice(buffer_out, out_start, out_end)
        ia, ib = _slice(buffer_in, in_start, in_end)
        write = i2c_msg.write(address, bytes(buffer_out[oa:ob]))
        read = i2c_msg.read(address, ib - ia)
        self.bus.i2c_rdwr(write, read)
        buffer_in[ia:ib] = bytes(read)

    def scan(self) -> list[int]:
        """Addresses that acknowledge a one-byte read, like `i2cdetect -r`."""
        found = []
        for address in SCAN_RANGE:
            try:
                self.bus.i2c_rdwr(i2c_msg.read(address, 1))
            except OSError:
                continue
            found.append(address)
        return found

    def deinit(self) -> None:
        """Nothing to release: the owner closes the bus."""
