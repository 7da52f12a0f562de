"""Wall clock, monotonic clock and whether the wall clock is synchronised."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
# adjtimex(2) returns TIME_ERROR while the kernel considers the clock unsynchronised
# (STA_UNSYNC set by default until an NTP daemon disciplines it).
TIME_ERROR = 5
# Once seen synced, a Pi stays synced for the life of the process unless told otherwise;
# re-checking once a minute catches a daemon that loses its servers.
RECHECK_S = 60.0


class Clock(Protocol):
    """Time sources the agent needs; a fake one makes tests instant."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    def synced(self) -> bool: ...


def kernel_synced() -> bool | None:
    """Kernel view through adjtimex (read-only call); None when it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # larger than struct timex; modes=0 reads only
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


def systemd_synced(flag: Path = TIMESYNCD_FLAG) -> bool | None:
    """systemd-timesyncd touches this file at its first successful sync."""
    if not flag.parent.exists():
        return None
    return flag.exists()


def probe_for(mode: str) -> Callable[[], bool]:
    """The sync test for a config `clock_sync` mode."""
    if mode == "assume-synced":
        return lambda: True
    if mode == "systemd":
        return lambda: bool(systemd_synced())
    if mode == "kernel":
        return lambda: bool(kernel_synced())

    def auto() -> bool:
        return bool(systemd_synced()) or bool(kernel_synced())

    return auto


class SystemClock:
    """The real clocks; sync state probed at most once per RECHECK_S."""

    def __init__(self, probe: Callable[[], bool] | None = None, recheck_s: float = RECHECK_S):
        self._probe = probe or probe_for("auto")
        self._recheck_s = recheck_s
        self._checked_at: float | None = None
        self._state = False

    def monotonic(self) -> float:
        # CLOCK_BOOTTIME keeps counting through suspend, so readings stay correctly spaced
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def wall(self) -> float:
        return time.time()

    def synced(self) -> bool:
        now = time.monotonic()
        if self._checked_at is None or now - self._checked_at >= self._recheck_s:
            self._state = bool(self._probe())
            self._checked_at = now
        return self._state


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, wall: float = 1_763_733_600.0, mono: float = 1000.0, synced: bool = True):
        self.mono = mono
        self.wall_offset = wall - mono
        self.is_synced = synced

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.mono + self.wall_offset

    def synced(self) -> bool:
        return self.is_synced

    def advance(self, seconds: float) -> None:
        self.mono += seconds


def os_boot_id() -> str:
    """Kernel boot id: monotonic times are only comparable within one boot."""
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return f"unknown-{uuid.getnode():x}"
