"""Sampling: read every sensor at its own fixed rate and hand the readings on, on one thread.

A failing sensor is retried with exponential backoff and reported, never allowed to stop the
others; a bug in this loop ends the run (systemd restarts the agent) instead of going quiet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from device.batcher import reading_dict
from device.clock import Clock
from device.config import AgentConfig, SensorConfig
from device.counters import AgentCounters
from device.events import Emit
from device.health import SENSOR_FAILING, SENSOR_OK, SENSOR_STARTING, SensorStatus
from device.queue import NewReading
from device.schedule import Ticker
from device.sensors.base import Measurement, Sensor, check_measurement
from device.urgency import Urgency

log = logging.getLogger("chantier.agent")

SENSOR_BACKOFF_MAX_S = 60.0
# Repeated failures of a sensor already reported as failing are logged again only at these.
REPEAT_REPORT_AT = (2, 5, 10, 50)


class Sampler:
    """Reads the sensors on deadlines of the monotonic clock; `commit` receives each pass."""

    def __init__(
        self,
        config: AgentConfig,
        sensors: Sequence[Sensor],
        clock: Clock,
        urgency: Urgency,
        os_boot: str,
        counters: AgentCounters,
        emit: Emit,
        commit: Callable[[list[NewReading]], None],
    ) -> None:
        self.config = config
        self.sensors = list(sensors)
        self.clock = clock
        self.urgency = urgency
        self.os_boot = os_boot
        self.counters = counters
        self._emit = emit
        self._commit = commit
        self.status = {s.name: SensorStatus(s.name) for s in self.sensors}
        self.fatal: BaseException | None = None
        # bumped when a sensor fails or recovers: health reports it without waiting its turn
        self.status_version = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: Callable[[], None] = lambda: None

    def start(self, wake: Callable[[], None]) -> None:
        """Sample on a thread of its own until `stop()`; `wake` runs when a sensor fails or
        recovers and when the loop breaks (then `fatal` holds why)."""
        self._wake = wake

        def loop() -> None:
            try:
                self._sample_until(self._stop)
            except Exception as exc:
                # a bug, not a sensor fault: let the agent end the run so systemd restarts it
                log.exception("sampler failed", extra={"event": "sampler-failed"})
                self.fatal = exc
                wake()

        self._thread = threading.Thread(target=loop, name="sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def close_sensors(self) -> None:
        for sensor in self.sensors:
            try:
                sensor.close()
            except Exception:
                log.debug("sensor close failed", extra={"sensor": sensor.name}, exc_info=True)

    def all_tried(self) -> bool:
        """Whether every sensor was read (or failed) at least once."""
        return all(s.status != SENSOR_STARTING for s in self.status.values())

    def config_for(self, name: str) -> SensorConfig:
        for sensor in self.config.sensors:
            if sensor.name == name:
                return sensor
        # sensors passed in code without a [[sensors]] table sample at the default rate
        return SensorConfig(name=name)

    def _sample_until(self, stop: threading.Event) -> None:
        start = time.monotonic()
        tickers = {
            s.name: Ticker(start, self.config.sensor_interval(self.config_for(s.name)))
            for s in self.sensors
        }
        retry_at = {s.name: 0.0 for s in self.sensors}
        while not stop.is_set():
            now = time.monotonic()
            taken: list[NewReading] = []
            for sensor in self.sensors:
                ticker = tickers[sensor.name]
                if ticker.due > now:
                    continue
                before = ticker.missed
                ticker.fire(now)
                self.counters.missed_ticks += ticker.missed - before
                if now < retry_at[sensor.name]:
                    continue
                reading = self._read_one(sensor, now, retry_at)
                if reading is not None:
                    taken.append(reading)
            if taken:
                self._commit(taken)
            wait = min(t.due for t in tickers.values()) - time.monotonic()
            if wait > 0:
                stop.wait(wait)

    def _read_one(
        self, sensor: Sensor, now: float, retry_at: dict[str, float]
    ) -> NewReading | None:
        status = self.status[sensor.name]
        wall_ms = int(self.clock.wall() * 1000)
        try:
            m = check_measurement(sensor.read())
        except Exception as exc:  # any driver failure is this sensor's, not the agent's
            self._failed(sensor.name, status, exc, wall_ms, now, retry_at)
            return None
        if status.status != SENSOR_OK:
            if status.status == SENSOR_FAILING:
                self._emit(
                    "sensor-recovered",
                    text=f"sensor {sensor.name} reads again after "
                    f"{status.consecutive_errors} failed attempts",
                    sensor=sensor.name,
                    after=status.consecutive_errors,
                )
                self.status_version += 1
                self._wake()
            status.status = SENSOR_OK
            status.consecutive_errors = 0
        status.readings += 1
        status.last_reading_at = wall_ms
        return self.new_reading(sensor.name, m, wall_ms)

    def _failed(
        self,
        name: str,
        status: SensorStatus,
        exc: Exception,
        wall_ms: int,
        now: float,
        retry_at: dict[str, float],
    ) -> None:
        status.errors += 1
        status.consecutive_errors += 1
        status.last_error = f"{type(exc).__name__}: {exc}"
        status.last_error_at = wall_ms
        interval = self.config.sensor_interval(self.config_for(name))
        backoff = min(SENSOR_BACKOFF_MAX_S, interval * 2 ** (status.consecutive_errors - 1))
        retry_at[name] = now + backoff
        self.counters.sensor_errors += 1
        if status.status != SENSOR_FAILING or status.consecutive_errors in REPEAT_REPORT_AT:
            again = (
                f" ({status.consecutive_errors} times in a row)"
                if status.consecutive_errors > 1
                else ""
            )
            self._emit(
                "sensor-error",
                logging.WARNING,
                text=f"sensor {name} gives no reading{again}: {status.last_error}; retrying in "
                f"{round(backoff, 2):g} s, the other sensors keep running",
                sensor=name,
                error=status.last_error,
                retry_in_s=round(backoff, 2),
                consecutive=status.consecutive_errors,
            )
        if status.status != SENSOR_FAILING:
            status.status = SENSOR_FAILING
            self.status_version += 1
            self._wake()

    def new_reading(self, name: str, m: Measurement, wall_ms: int) -> NewReading:
        """A reading of sensor `name` taken at `wall_ms`, stamped only if the clock is synced."""
        synced = self.clock.synced()
        ts = wall_ms if synced else None
        item = reading_dict(name, ts or wall_ms, m.temperature, m.humidity, m.pressure)
        try:
            urgent = bool(self.urgency.urgent(name, item))
        except Exception:
            # the edge check only speeds alerts up; the cloud evaluates every reading anyway
            log.exception("urgency check failed", extra={"event": "urgency-failed"})
            urgent = False
        return NewReading(
            sensor=name,
            ts=ts,
            mono_ms=int(self.clock.monotonic() * 1000),
            os_boot=self.os_boot,
            wall_ms=wall_ms,
            temperature=m.temperature,
            humidity=m.humidity,
            pressure=m.pressure,
            urgent=urgent,
        )
