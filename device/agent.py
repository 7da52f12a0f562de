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
import errno
import logging
import os
import shutil
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
from device.conditions import Condition
from device.config import AgentConfig
from device.counters import AgentCounters
from device.events import EventLog, EventSink
from device.health import SENSOR_FAILING, health_message
from device.link import UP, LinkState
from device.planning import BatchPlanner, Cadence
from device.queue import DurableQueue, NewReading
from device.sampling import Sampler
from device.schedule import HEALTH_JOIN_S, HealthSchedule
from device.sending import Sender
from device.sensors.base import Sensor
from device.transport import LinkChange, Transport
from device.urgency import Urgency


class AgentError(RuntimeError):
    """The agent cannot go on (a bug or a broken state directory); systemd restarts it."""


STOP_ACK_WAIT_S = 2.0
STOP_CLIENT_S = 3.0
STATUS_EVERY_S = 5.0
# The loop wakes for every committed reading, an ack or a link change, and otherwise sleeps
# until the next batch is due by age: passes with nothing to do cost a Pi's CPU and SD card
# reads, and a simulated fleet's cores. Still at least every few seconds for timeouts and
# health, and at most once a second while a due batch cannot be formed yet.
LOOP_WAIT_MAX_S = 5.0
LOOP_WAIT_DUE_S = 1.0
STOP_POLL_S = 1.0  # how soon a stop request is seen while the loop sleeps
# The queue is said to be filling from this share of queue_max_readings, and no longer once
# back under the lower one.
QUEUE_FILLING, QUEUE_RELIEVED = 0.8, 0.5
# Below this much free space on the state folder's disk, say so before writes start failing.
DISK_LOW_BYTES = 64 * 1024 * 1024
DROPS_REPORT_EVERY_S = 600.0
# A machine with nothing to send is heard from every batch_max_age_s, but not more often than
# this: a batch age of 0 (each reading at once) must not mean a health message every pass.
HEARTBEAT_MIN_S = 1.0


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
        self.link = LinkState(
            self._emit,
            host=config.endpoint,
            port=config.port,
            thing=config.thing,
            clock_synced=clock.synced,
            wall_ms=self._wall_ms,
            monotonic=time.monotonic,
        )
        # states that stop data, each one warning when it begins (see device/conditions.py)
        self._clock_state = Condition(self._emit, "clock-not-synced", "clock-synced")
        self._queue_state = Condition(self._emit, "queue-filling", "queue-draining")
        self._disk_state = Condition(self._emit, "disk-low", "disk-ok")
        self._write_state = Condition(
            self._emit, "queue-write-failed", "queue-writable", level=logging.ERROR
        )
        self._lost_since_write_failed = 0
        self._drops_reported_at: float | None = None
        self._drops_unreported = 0
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
            "link": self.link.state,
            "attention": [a["text"] for a in self._attention()],
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
                text=f"the queue file could not be read ({q.set_aside_reason}): kept as "
                f"{q.set_aside} for inspection, a fresh queue started; check the SD card",
                path=str(q.set_aside),
                reason=q.set_aside_reason,
            )
        orphans = q.stamp_orphans(self.os_boot)
        if orphans:
            self._emit(
                "orphans-stamped",
                logging.WARNING,
                text=f"{orphans} readings taken before a reboot while the clock was not "
                "synchronised are sent with their best-known time",
                readings=orphans,
            )
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
        names = [s.name for s in self.sampler.sensors]
        self._emit(
            "started",
            text=f"started: thing {self.config.thing}, sensors {', '.join(names)}, "
            f"{q.depth} readings queued, version {chantier.__version__}",
            boot=self.boot,
            thing=self.config.thing,
            version=chantier.__version__,
            queue_depth=q.depth,
            sensors=names,
        )
        self.transport.start()
        self.sampler.start(wake=self._wake.set)
        cfg = self.config
        health = HealthSchedule(
            time.monotonic(),
            cfg.health_interval_s,
            cfg.health_early_min_s,
            heartbeat_s=max(cfg.batch_max_age_s, HEARTBEAT_MIN_S),
            wait_s=max(cfg.batch_max_age_s, HEALTH_JOIN_S),
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
                    formed = self.counters.batches_formed
                    if self.clock.synced():
                        planner.form(self._mono_ms(), self._wall_ms())
                    sender.send(now)
                    state = self._health_state()
                    if health.due(
                        now,
                        state,
                        self.sampler.all_tried(),
                        batch_left=self.counters.batches_formed != formed,
                        batch_in_s=lambda: (
                            planner.next_live_in_s(self._mono_ms()) if self.clock.synced() else None
                        ),
                    ):
                        self._publish_health()
                        health.sent(now, state)
                if now >= status_due:
                    self._watch(now)
                    self._save_status()
                    status_due = now + STATUS_EVERY_S
                self._sleep(stop, now + self._next_wait())
            clean = True
        finally:
            self._shutdown(flush=clean)

    def _health_state(self) -> tuple[int, int, bool]:
        """What people act on in a health message: a change sends one at once (sensor fault
        alerts, the data-loss alert, the clock on the dashboard)."""
        assert self._queue is not None
        return self.sampler.status_version, self._queue.dropped_since_open, self.clock.synced()

    def _mono_ms(self) -> int:
        return int(self.clock.monotonic() * 1000)

    def _wall_ms(self) -> int:
        return int(self.clock.wall() * 1000)

    def _sleep(self, stop: threading.Event, until: float) -> None:
        """Until `until` (monotonic), a wake or `stop`, whichever comes first."""
        while not stop.is_set():
            left = until - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, STOP_POLL_S)):
                break
        self._wake.clear()

    def _next_wait(self) -> float:
        assert self._sender is not None and self._planner is not None
        bound = LOOP_WAIT_MAX_S
        if self._connected and self.clock.synced():
            due = self._planner.next_live_in_s(self._mono_ms())
            if due is not None:
                bound = min(bound, due if due > 0 else LOOP_WAIT_DUE_S)
        return self._sender.next_wait(bound)

    # -- connection ---------------------------------------------------------------------------
    def _on_connection(self, change: LinkChange) -> None:
        self.link.on_change(change)
        if change.up != self._connected:
            self._connected = change.up
            self._connected_since = self._wall_ms() if change.up else None
        self._wake.set()

    # -- states that stop data ----------------------------------------------------------------
    def _watch(self, now: float) -> None:
        """Say when the clock, the queue or the disk stops data, and when it no longer does."""
        q = self._queue
        assert q is not None
        wall = self._wall_ms()
        synced = self.clock.synced()
        self._clock_state.update(
            not synced,
            now,
            wall,
            text=(
                f"clock not synchronised (clock_sync = {self.config.clock_sync}): readings are "
                f"kept on disk ({q.depth} waiting) and stamped once it is, nothing is published "
                "until then; check timedatectl (System clock synchronized: yes) and that an "
                "NTP server is reachable"
            )
            if not synced
            else "clock synchronised: queued readings are re-stamped and published",
        )
        limit = self.config.queue_max_readings
        share = q.depth / limit
        filling = share >= QUEUE_FILLING or (self._queue_state.active and share >= QUEUE_RELIEVED)
        self._queue_state.update(
            filling,
            now,
            wall,
            text=(
                f"queue {share:.0%} full ({q.depth} of {limit} readings): readings are not "
                f"leaving ({self._why_not_leaving(synced)}); when full, the oldest are dropped"
            )
            if filling
            else f"queue back to {share:.0%} of {limit} readings",
            depth=q.depth,
        )
        try:
            free = shutil.disk_usage(self.config.state_dir).free
        except OSError:
            return
        low = free < DISK_LOW_BYTES
        self._disk_state.update(
            low,
            now,
            wall,
            text=(
                f"only {free // 2**20} MB free on the disk of {self.config.state_dir}: new "
                "readings will be lost when it is full; free space on the card"
            )
            if low
            else f"{free // 2**20} MB free on the disk of {self.config.state_dir} again",
            free_mb=free // 2**20,
        )

    def _why_not_leaving(self, synced: bool) -> str:
        if not synced:
            return "the clock is not synchronised"
        if self.link.state != UP:
            cause = self.link.diagnosis.cause if self.link.diagnosis else "not connected yet"
            return f"no connection: {cause}"
        return "publishing is slower than sampling"

    def _attention(self) -> list[dict[str, Any]]:
        """What stops data now, for status: the link, clock, queue, disk and failing sensors."""
        found = []
        link = self.link.as_dict()
        if link["state"] != UP and link["cause"]:
            found.append(
                {"event": link["state"], "since": link["since"], "text": str(link["cause"])}
            )
        for state in (self._clock_state, self._queue_state, self._disk_state, self._write_state):
            if (active := state.as_dict()) is not None:
                found.append(active)
        for sensor in self.status.values():
            if sensor.status == SENSOR_FAILING:
                found.append(
                    {
                        "event": "sensor-error",
                        "since": sensor.last_error_at,
                        "text": f"sensor {sensor.name} gives no reading: {sensor.last_error}",
                    }
                )
        return found

    # -- readings -----------------------------------------------------------------------------
    def _commit(self, readings: list[NewReading]) -> None:
        """Put a sampling pass on disk, then tell the planner (on the sampling thread)."""
        q, planner = self._queue, self._planner
        assert q is not None and planner is not None
        before = q.dropped_since_open
        now = time.monotonic()
        try:
            q.add(readings)
        except (sqlite3.Error, OSError) as exc:
            # disk full or failing card: keep sampling, say loudly what could not be kept
            self.counters.readings_lost += len(readings)
            self._lost_since_write_failed += len(readings)
            full = "full" in str(exc) or getattr(exc, "errno", None) == errno.ENOSPC
            self._write_state.update(
                True,
                now,
                self._wall_ms(),
                text=f"cannot write readings to {self.config.state_dir}"
                f"{': disk full' if full else ''} ({exc}); {self._lost_since_write_failed} "
                "readings lost so far: free space on the card or replace it",
                lost=self._lost_since_write_failed,
            )
            return
        self._write_state.update(
            False,
            now,
            self._wall_ms(),
            text=f"readings are written again ({self._lost_since_write_failed} were lost)",
            lost=self._lost_since_write_failed,
        )
        self._lost_since_write_failed = 0
        dropped = q.dropped_since_open - before
        self.counters.readings += len(readings)
        if dropped:
            self._report_drops(dropped, now)
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

    def _report_drops(self, dropped: int, now: float) -> None:
        """A full queue drops on every pass: say so at once, then every few minutes."""
        self._drops_unreported += dropped
        last = self._drops_reported_at
        if last is not None and now - last < DROPS_REPORT_EVERY_S:
            return
        assert self._queue is not None
        self._emit(
            "readings-dropped",
            logging.WARNING,
            text=f"queue full ({self.config.queue_max_readings} readings): "
            f"{self._drops_unreported} oldest readings dropped"
            + (f" in the last {now - last:.0f} s" if last is not None else "")
            + f", {self._queue.dropped_since_open} since start; the loss is counted and "
            "reported in health",
            dropped=self._drops_unreported,
            since_boot=self._queue.dropped_since_open,
        )
        self._drops_reported_at, self._drops_unreported = now, 0

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
            self._emit(
                "restamped",
                text=f"{n} readings taken before the clock synchronised now carry their time",
                readings=n,
            )

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

    def _save_status(self, *, stopping: bool = False) -> None:
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
                    "stoppedAtMs": int(time.time() * 1000) if stopping else None,
                    "clockSynced": self.clock.synced(),
                    "clock": {"synced": self.clock.synced(), "mode": self.config.clock_sync},
                    "link": self.link.as_dict(),
                    "attention": self._attention(),
                    "queueMaxReadings": self.config.queue_max_readings,
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
        self._save_status(stopping=True)
        self.sampler.close_sensors()
        if self._queue is not None:
            self._queue.close()
        depth = self._queue.depth if self._queue else 0
        self._emit(
            "stopped",
            text=f"stopped: {self.counters.readings} readings taken, "
            f"{self.counters.batches_acked} batches acknowledged, {depth} readings kept on disk "
            "for the next start",
            client_stopped=stopped,
            queue_depth=depth,
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
        early_burst=config.early_burst,
        early_refill_s=config.early_refill_s,
    )
