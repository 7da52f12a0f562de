"""The edge agent: sample sensors to the durable queue, batch, publish, acknowledge, report."""

from __future__ import annotations

import contextlib
import logging
import os
import queue as stdqueue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import chantier
from chantier.names import topic
from device.batcher import BACKLOG_MAX_BYTES, Envelope, batch_due, reading_dict
from device.clock import Clock, SystemClock, os_boot_id, probe_for
from device.config import AgentConfig
from device.health import SENSOR_FAILING, SENSOR_OK, SensorStatus, health_message
from device.queue import (
    PRIORITY_BACKLOG,
    PRIORITY_LIVE,
    PRIORITY_URGENT,
    Batch,
    DurableQueue,
    NewReading,
)
from device.schedule import RateLimiter, Ticker
from device.sensors.base import Measurement, Sensor, check_measurement
from device.urgency import Urgency, default_urgency

log = logging.getLogger("chantier.agent")

EventSink = Callable[[str, dict[str, Any]], None]


class AgentError(RuntimeError):
    """The agent cannot go on (a bug or a broken state directory); systemd restarts it."""


# Batches in flight at once: enough to fill 100 publishes/s at a 100 ms round trip.
WINDOW = 16
# Readings waiting beyond this many normal budgets are an outage backlog: send them in big
# batches, separately from the live readings.
BACKLOG_FACTOR = 4
# Unsent backlog batches formed ahead of the sender; forming lazily keeps them large.
BACKLOG_AHEAD = 2
SENSOR_BACKOFF_MAX_S = 60.0
REFUSED_BACKOFF_S = (5.0, 300.0)
FAILED_RETRY_S = 1.0
STOP_ACK_WAIT_S = 2.0
STOP_CLIENT_S = 3.0
STATUS_EVERY_S = 5.0


@dataclass
class _InFlight:
    batch_id: int
    seq: int
    boot: str
    size: int
    sent_mono: float
    readings: int


@dataclass
class _Counters:
    readings: int = 0
    urgent: int = 0
    batches_formed: int = 0
    batches_published: int = 0
    batches_acked: int = 0
    batches_refused: int = 0
    batches_failed: int = 0
    readings_acked: int = 0
    health_published: int = 0
    sensor_errors: int = 0
    restamped: int = 0
    readings_lost: int = 0
    missed_ticks: int = 0
    refusals: dict[int, int] = field(default_factory=dict)


class Agent:
    """One device agent; `run(stop)` blocks until `stop` is set, then shuts down in bounds."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        sensors: Sequence[Sensor] | None = None,
        publisher: Any = None,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        urgency: Urgency | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock(probe_for(config.clock_sync))
        if sensors is None:
            from device.sensors.factory import build_sensors

            sensors = build_sensors(config)
        self.sensors = list(sensors)
        self._publisher = publisher
        self._on_event = on_event
        self.urgency = urgency or default_urgency(config.equipment, config.rules_file)
        # os.urandom, not secrets: secrets pulls in OpenSSL's hashlib, 3.6 MB of resident memory
        self.boot = os.urandom(4).hex()
        self.os_boot = os_boot_id()
        self.envelope = Envelope(
            config.thing, config.site, config.equipment, self.boot, config.run_id
        )
        self.telemetry_topic = topic(config.site, config.thing, "telemetry", config.topic_prefix)
        self.health_topic = topic(config.site, config.thing, "health", config.topic_prefix)
        self.status = {s.name: SensorStatus(s.name) for s in self.sensors}
        self.counters = _Counters()
        self._queue: DurableQueue | None = None
        self._outcomes: stdqueue.SimpleQueue[tuple[int, Any]] = stdqueue.SimpleQueue()
        self._wake = threading.Event()
        self._inflight: dict[int, _InFlight] = {}
        self._retry_at: dict[int, float] = {}
        self._refused_count: dict[int, int] = {}
        self._limiter = RateLimiter()
        self._connected = False
        self._connected_since: int | None = None
        self._started_mono = time.monotonic()
        self._backlog_split = 0
        self._urgent_pending = True  # checked once at start: urgent readings of a past run
        self._last_publish_ms: int | None = None
        self._last_ack_ms: int | None = None
        self._was_synced = False
        self._status_dirty = True
        self._lock = threading.Lock()
        self._health_seq = 0
        self._limit_wait = 0.0
        self._fatal: BaseException | None = None
        # the loop stamps this on every pass; the systemd watchdog only pets a live loop
        self.heartbeat = time.monotonic()

    # -- events -------------------------------------------------------------------------------
    def _emit(self, kind: str, level: int = logging.INFO, **details: Any) -> None:
        log.log(level, kind, extra={"event": kind, **details})
        if self._on_event is not None:
            try:
                self._on_event(kind, details)
            except Exception:
                log.exception("on_event callback failed", extra={"event": kind})

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
                "queue-set-aside",
                logging.ERROR,
                path=str(q.set_aside),
                reason=q.set_aside_reason,
            )
        orphans = q.stamp_orphans(self.os_boot)
        if orphans:
            self._emit("orphans-stamped", logging.WARNING, readings=orphans)
        # everything left by an earlier run is backlog
        self._backlog_split = q.max_reading_id()
        publisher = self._publisher
        if publisher is None:
            from device.mqtt import MqttPublisher, PublisherError

            try:
                publisher = self._build_publisher(MqttPublisher)
            except PublisherError:
                q.close()
                raise
        elif hasattr(publisher, "set_on_connection"):
            publisher.set_on_connection(self._on_connection)
        self._publisher = publisher
        self._run_loop(stop, publisher)

    def _build_publisher(self, factory: Any) -> Any:
        cfg = self.config
        return factory(
            endpoint=cfg.endpoint,
            port=cfg.port,
            cert=cfg.cert,
            key=cfg.key,
            ca=cfg.ca,
            client_id=cfg.thing,
            on_connection=self._on_connection,
            min_backoff_ms=int(cfg.reconnect_min_s * 1000),
            max_backoff_ms=int(max(cfg.reconnect_min_s, cfg.reconnect_max_s) * 1000),
        )

    def _run_loop(self, stop: threading.Event, publisher: Any) -> None:
        cfg = self.config
        q = self._queue
        assert q is not None
        self._emit(
            "started",
            boot=self.boot,
            thing=cfg.thing,
            version=chantier.__version__,
            queue_depth=q.depth,
            sensors=[s.name for s in self.sensors],
        )
        sampler_stop = threading.Event()
        sampler = threading.Thread(
            target=self._sample_loop, args=(sampler_stop,), name="sampler", daemon=True
        )
        publisher.start()
        sampler.start()
        health = Ticker(time.monotonic(), cfg.health_interval_s)
        status_due = 0.0
        clean = False
        try:
            while not stop.is_set():
                if self._fatal is not None:
                    raise AgentError(f"sampler stopped: {self._fatal!r}") from self._fatal
                now = self.heartbeat = time.monotonic()
                self._drain_outcomes()
                self._expire_inflight(now)
                self._restamp_if_synced()
                if self._connected or publisher.connected():
                    self._form_batches()
                    self._send(now)
                    if now >= health.due:
                        self._publish_health()
                        health.fire(now)
                if now >= status_due:
                    self._save_status()
                    status_due = now + STATUS_EVERY_S
                self._wake.wait(self._next_wait())
                self._wake.clear()
            clean = True
        finally:
            self._shutdown(sampler, sampler_stop, flush=clean)

    # -- connection ---------------------------------------------------------------------------
    def _on_connection(self, up: bool, why: str) -> None:
        if up == self._connected:
            if not up:  # another failed attempt while offline: not news
                log.debug("connect-failed", extra={"event": "connect-failed", "reason": why})
            return
        self._connected = up
        if up:
            self._connected_since = int(self.clock.wall() * 1000)
            self._emit("connected", endpoint=self.config.endpoint, port=self.config.port)
        else:
            self._connected_since = None
            self._emit("disconnected", logging.WARNING, reason=why)
        self._wake.set()

    # -- sampling -----------------------------------------------------------------------------
    def _sample_loop(self, stop: threading.Event) -> None:
        try:
            self._sample_until(stop)
        except Exception as exc:
            # a bug, not a sensor fault: let the main loop end the run so systemd restarts it
            log.exception("sampler failed", extra={"event": "sampler-failed"})
            self._fatal = exc
            self._wake.set()

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

    def config_for(self, name: str) -> Any:
        for sensor in self.config.sensors:
            if sensor.name == name:
                return sensor
        # sensors passed in code without a [[sensors]] table sample at the default rate
        from device.config import SensorConfig

        return SensorConfig(name=name)

    def _read_one(
        self, sensor: Sensor, now: float, retry_at: dict[str, float]
    ) -> NewReading | None:
        status = self.status[sensor.name]
        wall_ms = int(self.clock.wall() * 1000)
        try:
            m = check_measurement(sensor.read())
        except Exception as exc:  # any driver failure is this sensor's, not the agent's
            status.errors += 1
            status.consecutive_errors += 1
            status.last_error = f"{type(exc).__name__}: {exc}"
            status.last_error_at = wall_ms
            interval = self.config.sensor_interval(self.config_for(sensor.name))
            backoff = min(SENSOR_BACKOFF_MAX_S, interval * 2 ** (status.consecutive_errors - 1))
            retry_at[sensor.name] = now + backoff
            self.counters.sensor_errors += 1
            if status.status != SENSOR_FAILING or status.consecutive_errors in (2, 5, 10, 50):
                self._emit(
                    "sensor-error",
                    logging.WARNING,
                    sensor=sensor.name,
                    error=status.last_error,
                    retry_in_s=round(backoff, 2),
                    consecutive=status.consecutive_errors,
                )
            if status.status != SENSOR_FAILING:
                status.status = SENSOR_FAILING
                self._status_dirty = True
            return None
        if status.status != SENSOR_OK:
            if status.status == SENSOR_FAILING:
                self._emit("sensor-recovered", sensor=sensor.name, after=status.consecutive_errors)
            status.status = SENSOR_OK
            self._status_dirty = True
        status.consecutive_errors = 0
        status.readings += 1
        status.last_reading_at = wall_ms
        return self._new_reading(sensor.name, m, wall_ms)

    def _new_reading(self, name: str, m: Measurement, wall_ms: int) -> NewReading:
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

    def _commit(self, readings: list[NewReading]) -> None:
        assert self._queue is not None
        before = self._queue.dropped_since_open
        try:
            self._queue.add(readings)
        except (sqlite3.Error, OSError) as exc:
            # disk full or failing card: keep sampling, say loudly what could not be kept
            self.counters.readings_lost += len(readings)
            self._emit("queue-error", logging.ERROR, error=str(exc), lost=len(readings))
            return
        dropped = self._queue.dropped_since_open - before
        self.counters.readings += len(readings)
        if dropped:
            self._emit(
                "readings-dropped",
                logging.WARNING,
                dropped=dropped,
                since_boot=self._queue.dropped_since_open,
                reason="queue full: oldest readings dropped",
            )
        if any(r.urgent for r in readings):
            self._urgent_pending = True
            self.counters.urgent += sum(r.urgent for r in readings)
            self._emit(
                "urgent",
                sensors=[r.sensor for r in readings if r.urgent],
                temperature=[r.temperature for r in readings if r.urgent],
            )
        self._wake.set()

    # -- time ---------------------------------------------------------------------------------
    def _restamp_if_synced(self) -> None:
        if not self.clock.synced():
            self._was_synced = False
            return
        if self._was_synced:
            return
        assert self._queue is not None
        offset = int(self.clock.wall() * 1000) - int(self.clock.monotonic() * 1000)
        n = self._queue.restamp(self.os_boot, offset)
        self._was_synced = True
        if n:
            self.counters.restamped += n
            self._emit("restamped", readings=n)

    # -- batching -----------------------------------------------------------------------------
    def _form_batches(self) -> None:
        q = self._queue
        assert q is not None
        cfg = self.config
        if not self.clock.synced():
            # a batch's sentAt must come from a synced clock as well; wait for it
            return
        now_ms = int(self.clock.monotonic() * 1000)
        sent_at = int(self.clock.wall() * 1000)
        if self._urgent_pending:
            self._urgent_pending = False
            while self._form(PRIORITY_URGENT, sent_at, cfg.batch_max_bytes, urgent_only=True):
                pass
        # The split is fixed when the backlog is found (at start, or when an outage left more
        # than a few batches waiting): readings after it are live and keep flowing at their
        # normal pace while the backlog drains in large batches.
        if not self._backlog_split and q.pending().bytes > BACKLOG_FACTOR * cfg.batch_max_bytes:
            self._backlog_split = q.max_reading_id()
            self._emit("backlog", readings=q.depth)
        split = self._backlog_split
        if split:
            while q.count_unsent(PRIORITY_BACKLOG) < BACKLOG_AHEAD:
                if not self._form(PRIORITY_BACKLOG, sent_at, BACKLOG_MAX_BYTES, up_to_id=split):
                    self._backlog_split = 0
                    break
        for _ in range(BACKLOG_AHEAD * 4):
            live = q.pending(newer_than_id=split)
            age = None if live.oldest_mono_ms is None else (now_ms - live.oldest_mono_ms) / 1000
            if not batch_due(live.bytes, age, False, cfg.batch_max_bytes, cfg.batch_max_age_s):
                break
            if not self._form(PRIORITY_LIVE, sent_at, cfg.batch_max_bytes, after_id=split):
                break

    def _form(
        self,
        priority: int,
        sent_at: int,
        budget: int,
        *,
        urgent_only: bool = False,
        after_id: int = 0,
        up_to_id: int | None = None,
    ) -> Batch | None:
        assert self._queue is not None
        batch = self._queue.form_batch(
            self.envelope,
            sent_at,
            budget,
            priority=priority,
            urgent_only=urgent_only,
            after_id=after_id,
            up_to_id=up_to_id,
        )
        if batch is not None:
            self.counters.batches_formed += 1
        return batch

    # -- publishing ---------------------------------------------------------------------------
    def _send(self, now: float) -> None:
        q = self._queue
        assert q is not None and self._publisher is not None
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        waiting = [bid for bid, at in self._retry_at.items() if at > now]
        for bid in [bid for bid, at in self._retry_at.items() if at <= now]:
            del self._retry_at[bid]
        for batch in q.unsent(exclude=[*self._inflight, *waiting], limit=room):
            delay = self._limiter.delay(time.monotonic(), len(batch.payload))
            if delay > 0:
                self._limit_wait = delay
                break
            self._limiter.take(time.monotonic(), len(batch.payload))
            self._publish_batch(batch)

    def _publish_batch(self, batch: Batch) -> None:
        assert self._publisher is not None
        self._inflight[batch.id] = _InFlight(
            batch.id, batch.seq, batch.boot, len(batch.payload), time.monotonic(), batch.readings
        )
        self.counters.batches_published += 1
        self._last_publish_ms = int(self.clock.wall() * 1000)
        self._emit(
            "published",
            logging.DEBUG,
            seq=batch.seq,
            boot=batch.boot,
            readings=batch.readings,
            bytes=len(batch.payload),
            priority=("urgent", "live", "backlog")[batch.priority],
            attempt=batch.attempts + 1,
        )
        self._publisher.publish(
            self.telemetry_topic,
            batch.payload,
            lambda outcome, bid=batch.id: self._outcome(bid, outcome),
        )

    def _outcome(self, batch_id: int, outcome: Any) -> None:
        self._outcomes.put((batch_id, outcome))
        self._wake.set()

    def _drain_outcomes(self) -> None:
        q = self._queue
        assert q is not None
        while True:
            try:
                batch_id, outcome = self._outcomes.get_nowait()
            except stdqueue.Empty:
                return
            if batch_id < 0:
                if outcome.status == "acked":
                    self.counters.health_published += 1
                continue
            flight = self._inflight.pop(batch_id, None)
            if flight is None:
                continue  # already expired and re-sent; the queue decides
            details = {"seq": flight.seq, "boot": flight.boot, "readings": flight.readings}
            if outcome.status == "acked":
                q.ack(batch_id)
                self._refused_count.pop(batch_id, None)
                self.counters.batches_acked += 1
                self.counters.readings_acked += flight.readings
                self._last_ack_ms = int(self.clock.wall() * 1000)
                self._emit("acked", logging.DEBUG, **details)
            elif outcome.status == "refused":
                n = self._refused_count.get(batch_id, 0) + 1
                self._refused_count[batch_id] = n
                low, high = REFUSED_BACKOFF_S
                self._retry_at[batch_id] = time.monotonic() + min(high, low * 2 ** (n - 1))
                self.counters.batches_refused += 1
                code = outcome.code
                self.counters.refusals[code] = self.counters.refusals.get(code, 0) + 1
                self._emit("refused", logging.ERROR, code=code, reason=outcome.reason, **details)
                q.mark_attempt(batch_id)
            else:
                self._retry_at[batch_id] = time.monotonic() + FAILED_RETRY_S
                self.counters.batches_failed += 1
                self._emit("publish-failed", logging.WARNING, reason=outcome.reason, **details)
                q.mark_attempt(batch_id)

    def _expire_inflight(self, now: float) -> None:
        # the client has its own ack timeout; this only guards against a lost callback
        for bid, flight in list(self._inflight.items()):
            if now - flight.sent_mono > 60.0:
                del self._inflight[bid]
                self.counters.batches_failed += 1
                self._emit("publish-timeout", logging.WARNING, seq=flight.seq, boot=flight.boot)

    def _next_wait(self) -> float:
        wait = 1.0
        if self._limit_wait:
            wait = min(wait, self._limit_wait)
            self._limit_wait = 0.0
        if self._retry_at:
            wait = min(wait, max(0.01, min(self._retry_at.values()) - time.monotonic()))
        return max(0.01, wait)

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
            sent_at=int(self.clock.wall() * 1000),
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
        from chantier.telemetry import encode_message

        assert self._publisher is not None
        payload = encode_message(self.health())
        self._health_seq -= 1
        hid = self._health_seq
        self._publisher.publish(
            self.health_topic, payload, lambda outcome: self._outcome(hid, outcome)
        )
        self._emit("health", logging.DEBUG, bytes=len(payload))

    def _save_status(self) -> None:
        q = self._queue
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
                    "lastPublishMs": self._last_publish_ms,
                    "lastAckMs": self._last_ack_ms,
                    "savedAtMs": int(time.time() * 1000),
                    "clockSynced": self.clock.synced(),
                    "sensors": [s.as_dict() for s in self.status.values()],
                },
            )
        self._status_dirty = False

    # -- shutdown -----------------------------------------------------------------------------
    def _flush_partial_batch(self) -> None:
        """Send the live readings of a batch not yet due, so a stop does not hold them back."""
        # They are on disk either way; sending them now spares the cloud a gap of up to
        # batch_max_age_s until the agent runs again (a maintenance stop can be long).
        sent_at = int(self.clock.wall() * 1000)
        while self._form(
            PRIORITY_LIVE, sent_at, self.config.batch_max_bytes, after_id=self._backlog_split
        ):
            pass
        self._send(time.monotonic())

    def _shutdown(
        self, sampler: threading.Thread, sampler_stop: threading.Event, *, flush: bool
    ) -> None:
        sampler_stop.set()
        sampler.join(timeout=5.0)
        if flush and self._connected and self.clock.synced():
            self._flush_partial_batch()
        # acks already on their way are worth a short wait: fewer re-sends after restart
        deadline = time.monotonic() + STOP_ACK_WAIT_S
        while self._inflight and time.monotonic() < deadline:
            self._drain_outcomes()
            self._wake.wait(0.05)
            self._wake.clear()
        self._drain_outcomes()
        stopped = True
        if self._publisher is not None:
            stopped = self._publisher.stop(STOP_CLIENT_S)
        self._save_status()
        for sensor in self.sensors:
            with contextlib.suppress(Exception):
                sensor.close()
        if self._queue is not None:
            self._queue.close()
        self._emit(
            "stopped",
            client_stopped=stopped,
            queue_depth=self._queue.depth if self._queue else 0,
            readings=self.counters.readings,
            acked=self.counters.batches_acked,
        )
