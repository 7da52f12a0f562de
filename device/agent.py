"""The edge agent: its parts wired into one loop that samples, queues, batches, sends, reports.

- `Sampler` (device/sampling.py) reads the sensors on its own thread and commits each reading
  to the durable queue before anything else happens to it;
- `BatchPlanner` (device/planning.py) decides which readings leave in which batch, and when;
- `Sender` (device/sending.py) publishes batches through a `Transport` and settles outcomes.
The agent owns the queue's lifetime, the clock re-stamping, health and status, and a shutdown
that stays within its bounds. device/bootstrap.py builds it from a configuration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

import chantier
from chantier.names import topic
from chantier.telemetry import encode_message
from device.batcher import Envelope
from device.clock import Clock, os_boot_id
from device.config import AgentConfig
from device.counters import AgentCounters
from device.events import EventLog, EventSink
from device.health import health_message
from device.planning import BatchPlanner, Cadence
from device.queue import DurableQueue, NewReading
from device.sampling import Sampler
from device.schedule import HealthSchedule
from device.sending import Sender
from device.sensors.base import Sensor
from device.transport import Transport
from device.urgency import Urgency


class AgentError(RuntimeError):
    """The agent cannot go on (a bug or a broken state directory); systemd restarts it."""


STOP_ACK_WAIT_S = 2.0
STOP_CLIENT_S = 3.0
STATUS_EVERY_S = 5.0
LOOP_WAIT_MAX_S = 1.0


class Agent:
    """One device agent; `run(stop)` blocks until `stop` is set, then shuts down in bounds."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        sensors: Sequence[Sensor],
        transport: Transport,
        clock: Clock,
        urgency: Urgency,
        on_event: EventSink | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.transport = transport
        self._emit = EventLog(on_event)
        # os.urandom, not secrets: secrets pulls in OpenSSL's hashlib, 3.6 MB of resident memory
        self.boot = os.urandom(4).hex()
        self.os_boot = os_boot_id()
        self.envelope = Envelope(
            config.thing, config.site, config.equipment, self.boot, config.run_id
        )
        self.telemetry_topic = topic(config.site, config.thing, "telemetry", config.topic_prefix)
        self.health_topic = topic(config.site, config.thing, "health", config.topic_prefix)
        self.counters = AgentCounters()
        self._wake = threading.Event()
        self.sampler = Sampler(
            config, sensors, clock, urgency, self.os_boot, self.counters, self._emit, self._commit
        )
        self._queue: DurableQueue | None = None
        self._planner: BatchPlanner | None = None
        self._sender: Sender | None = None
        self._connected = False
        self._connected_since: int | None = None
        self._started_mono = time.monotonic()
        self._was_synced = False
        # the loop stamps this on every pass; the systemd watchdog only pets a live loop
        self.heartbeat = time.monotonic()
        transport.set_on_connection(self._on_connection)

    @property
    def status(self) -> dict[str, Any]:
        """Per-sensor status, by sensor name."""
        return self.sampler.status

    # -- public -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters since start, queue depth and drops: for the demo and the tests."""
        q = self._queue
        c = self.counters
        return {
            "boot": self.boot,
            "readings": c.readings,
            "urgent": c.urgent,
            "batches_formed": c.batches_formed,
            "early_batches": c.early_batches,
            "batches_published": c.batches_published,
            "batches_acked": c.batches_acked,
            "batches_refused": c.batches_refused,
            "batches_failed": c.batches_failed,
            "readings_acked": c.readings_acked,
            "health_published": c.health_published,
            "sensor_errors": c.sensor_errors,
            "restamped": c.restamped,
            "readings_lost": c.readings_lost,
            "queue_depth": q.depth if q else 0,
            "dropped": q.dropped_since_open if q else 0,
            "connected": self._connected,
            "sensors": {name: s.as_dict() for name, s in self.status.items()},
        }

    def run(self, stop: threading.Event) -> None:
        """Sample, queue and publish until `stop` is set; readings are on disk throughout."""
        cfg = self.config
        self._queue = q = DurableQueue(cfg.state_dir, cfg.queue_max_readings)
        if q.set_aside is not None:
            self._emit(
                "queue-set-aside", logging.ERROR, path=str(q.set_aside), reason=q.set_aside_reason
            )
        orphans = q.stamp_orphans(self.os_boot)
        if orphans:
            self._emit("orphans-stamped", logging.WARNING, readings=orphans)
        self._planner = BatchPlanner(
            q, self.envelope, cadence(cfg), self.counters, self._emit, self._mono_ms()
        )
        self._sender = Sender(
            q,
            self.transport,
            self.telemetry_topic,
            self.counters,
            self._emit,
            self._wake,
            lambda: int(self.clock.wall() * 1000),
        )
        self._run_loop(stop)

    def _run_loop(self, stop: threading.Event) -> None:
        q, planner, sender = self._queue, self._planner, self._sender
        assert q is not None and planner is not None and sender is not None
        self._emit(
            "started",
            boot=self.boot,
            thing=self.config.thing,
            version=chantier.__version__,
            queue_depth=q.depth,
            sensors=[s.name for s in self.sampler.sensors],
        )
        self.transport.start()
        self.sampler.start(wake=self._wake.set)
        health = HealthSchedule(
            time.monotonic(), self.config.health_interval_s, self.config.early_min_interval_s
        )
        status_due = 0.0
        clean = False
        try:
            while not stop.is_set():
                if self.sampler.fatal is not None:
                    raise AgentError(f"sampler stopped: {self.sampler.fatal!r}") from (
                        self.sampler.fatal
                    )
                now = self.heartbeat = time.monotonic()
                sender.settle()
                sender.expire(now)
                self._restamp_if_synced()
                if self._connected or self.transport.connected():
                    # a batch's sentAt must come from a synced clock as well; wait for it
                    if self.clock.synced():
                        planner.form(self._mono_ms(), self._wall_ms())
                    sender.send(now)
                    version = self.sampler.status_version
                    if health.due(now, version, self.sampler.all_tried()):
                        self._publish_health()
                        health.sent(now, version)
                if now >= status_due:
                    self._save_status()
                    status_due = now + STATUS_EVERY_S
                self._wake.wait(self._next_wait())
                self._wake.clear()
            clean = True
        finally:
            self._shutdown(flush=clean)

    def _mono_ms(self) -> int:
        return int(self.clock.monotonic() * 1000)

    def _wall_ms(self) -> int:
        return int(self.clock.wall() * 1000)

    def _next_wait(self) -> float:
        assert self._sender is not None and self._planner is not None
        bound = LOOP_WAIT_MAX_S
        early = self._planner.early_wait_s(self._mono_ms())
        if early is not None:
            bound = min(bound, early)
        return self._sender.next_wait(bound)

    # -- connection ---------------------------------------------------------------------------
    def _on_connection(self, up: bool, why: str) -> None:
        if up == self._connected:
            if not up:  # another failed attempt while offline: not news
                logging.getLogger("chantier.agent").debug(
                    "connect-failed", extra={"event": "connect-failed", "reason": why}
                )
            return
        self._connected = up
        if up:
            self._connected_since = self._wall_ms()
            self._emit("connected", endpoint=self.config.endpoint, port=self.config.port)
        else:
            self._connected_since = None
            self._emit("disconnected", logging.WARNING, reason=why)
        self._wake.set()

    # -- readings -----------------------------------------------------------------------------
    def _commit(self, readings: list[NewReading]) -> None:
        """Put a sampling pass on disk, then tell the planner (on the sampling thread)."""
        q, planner = self._queue, self._planner
        assert q is not None and planner is not None
        before = q.dropped_since_open
        try:
            q.add(readings)
        except (sqlite3.Error, OSError) as exc:
            # disk full or failing card: keep sampling, say loudly what could not be kept
            self.counters.readings_lost += len(readings)
            self._emit("queue-error", logging.ERROR, error=str(exc), lost=len(readings))
            return
        dropped = q.dropped_since_open - before
        self.counters.readings += len(readings)
        if dropped:
            self._emit(
                "readings-dropped",
                logging.WARNING,
                dropped=dropped,
                since_boot=q.dropped_since_open,
                reason="queue full: oldest readings dropped",
            )
        planner.observe(readings)
        urgent = [r for r in readings if r.urgent]
        if urgent:
            self.counters.urgent += len(urgent)
            self._emit(
                "urgent",
                sensors=[r.sensor for r in urgent],
                temperature=[r.temperature for r in urgent],
            )
        self._wake.set()

    def _restamp_if_synced(self) -> None:
        if not self.clock.synced():
            self._was_synced = False
            return
        if self._was_synced:
            return
        assert self._queue is not None
        offset = self._wall_ms() - self._mono_ms()
        n = self._queue.restamp(self.os_boot, offset)
        self._was_synced = True
        if n:
            self.counters.restamped += n
            self._emit("restamped", readings=n)

    # -- health and status --------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The health message as it would be published now."""
        q = self._queue
        stats = q.stats() if q else {}
        return health_message(
            thing=self.config.thing,
            site=self.config.site,
            equipment=self.config.equipment,
            boot=self.boot,
            run_id=self.config.run_id,
            sent_at=self._wall_ms(),
            version=chantier.__version__,
            uptime_s=time.monotonic() - self._started_mono,
            clock_synced=self.clock.synced(),
            clock_source=self.config.clock_sync,
            queue_depth=q.depth if q else 0,
            queue_batches=int(stats.get("batches", 0)),
            oldest_reading_ms=stats.get("oldest_reading_ms"),
            dropped_since_boot=q.dropped_since_open if q else 0,
            dropped_total=int(stats.get("dropped_total", 0)),
            queue_set_aside=str(q.set_aside) if q and q.set_aside else None,
            connected_since_ms=self._connected_since,
            sensors=list(self.status.values()),
        )

    def _publish_health(self) -> None:
        assert self._sender is not None
        payload = encode_message(self.health())
        self._sender.publish_health(self.health_topic, payload)
        self._emit("health", logging.DEBUG, bytes=len(payload))

    def _save_status(self) -> None:
        q, sender = self._queue, self._sender
        if q is None:
            return
        with contextlib.suppress(Exception):
            q.set_meta(
                "agent",
                {
                    "pid": os.getpid(),
                    "boot": self.boot,
                    "thing": self.config.thing,
                    "connected": self._connected,
                    "lastPublishMs": sender.last_publish_ms if sender else None,
                    "lastAckMs": sender.last_ack_ms if sender else None,
                    "savedAtMs": int(time.time() * 1000),
                    "clockSynced": self.clock.synced(),
                    "sensors": [s.as_dict() for s in self.status.values()],
                },
            )

    # -- shutdown -----------------------------------------------------------------------------
    def _shutdown(self, *, flush: bool) -> None:
        self.sampler.stop()
        sender, planner = self._sender, self._planner
        if flush and self._connected and self.clock.synced() and sender and planner:
            # Readings of a batch not yet due are on disk either way; sending them now spares
            # the cloud a gap of up to batch_max_age_s until the agent runs again.
            planner.flush(self._mono_ms(), self._wall_ms())
            sender.send(time.monotonic())
        if sender is not None:
            # acks already on their way are worth a short wait: fewer re-sends after restart
            deadline = time.monotonic() + STOP_ACK_WAIT_S
            while sender.in_flight and time.monotonic() < deadline:
                sender.settle()
                self._wake.wait(0.05)
                self._wake.clear()
            sender.settle()
        stopped = self.transport.stop(STOP_CLIENT_S)
        self._save_status()
        self.sampler.close_sensors()
        if self._queue is not None:
            self._queue.close()
        self._emit(
            "stopped",
            client_stopped=stopped,
            queue_depth=self._queue.depth if self._queue else 0,
            readings=self.counters.readings,
            acked=self.counters.batches_acked,
        )


def cadence(config: AgentConfig) -> Cadence:
    """When live readings leave, from the configuration."""
    return Cadence(
        budget=config.batch_max_bytes,
        max_age_s=config.batch_max_age_s,
        deadbands={
            "temperature": config.deadband_temperature,
            "humidity": config.deadband_humidity,
            "pressure": config.deadband_pressure,
        },
        early_min_interval_s=config.early_min_interval_s,
    )
