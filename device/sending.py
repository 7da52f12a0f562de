"""Sending: publish formed batches within a window and the per-connection rate limits, and
settle each one by its outcome: acked batches leave the queue, refused and failed ones wait.

Outcomes arrive on the transport's threads; they are queued and applied on the agent's loop,
so the durable queue is only ever written from one thread.
"""

from __future__ import annotations

import functools
import logging
import queue as stdqueue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device.counters import AgentCounters
from device.events import Emit
from device.queue import Batch, DurableQueue
from device.schedule import RateLimiter
from device.transport import ACKED, REFUSED, PublishOutcome, Transport

# Batches in flight at once: enough to fill 100 publishes/s at a 100 ms round trip.
WINDOW = 16
REFUSED_BACKOFF_S = (5.0, 300.0)
FAILED_RETRY_S = 1.0
# The client has its own ack timeout; this only guards against a lost callback.
LOST_CALLBACK_S = 60.0
PRIORITY_NAMES = ("urgent", "live", "backlog")


@dataclass
class _InFlight:
    batch_id: int
    seq: int
    boot: str
    sent_mono: float
    readings: int


class Sender:
    """Publishes the queue's unsent batches on `topic` and applies their outcomes."""

    def __init__(
        self,
        queue: DurableQueue,
        transport: Transport,
        topic: str,
        counters: AgentCounters,
        emit: Emit,
        wake: threading.Event,
        wall_ms: Callable[[], int],
    ) -> None:
        self._queue = queue
        self._transport = transport
        self._topic = topic
        self._counters = counters
        self._emit = emit
        self._wake = wake
        self._wall_ms = wall_ms
        self._outcomes: stdqueue.SimpleQueue[tuple[int, PublishOutcome]] = stdqueue.SimpleQueue()
        self._inflight: dict[int, _InFlight] = {}
        self._retry_at: dict[int, float] = {}
        self._refused_count: dict[int, int] = {}
        self._limiter = RateLimiter()
        self._limit_wait = 0.0
        self._health_seq = 0
        self.last_publish_ms: int | None = None
        self.last_ack_ms: int | None = None

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def send(self, now: float) -> None:
        """Publish unsent batches while the window and the rate limits allow."""
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        waiting = [bid for bid, at in self._retry_at.items() if at > now]
        for bid in [bid for bid, at in self._retry_at.items() if at <= now]:
            del self._retry_at[bid]
        for batch in self._queue.unsent(exclude=[*self._inflight, *waiting], limit=room):
            delay = self._limiter.delay(time.monotonic(), len(batch.payload))
            if delay > 0:
                self._limit_wait = delay
                break
            self._limiter.take(time.monotonic(), len(batch.payload))
            self._publish(batch)

    def publish_health(self, topic: str, payload: bytes) -> None:
        """Health messages are not queued: a lost one is replaced by the next."""
        self._health_seq -= 1
        hid = self._health_seq
        self._transport.publish(topic, payload, functools.partial(self._outcome, hid))

    def _publish(self, batch: Batch) -> None:
        self._inflight[batch.id] = _InFlight(
            batch.id, batch.seq, batch.boot, time.monotonic(), batch.readings
        )
        self._counters.batches_published += 1
        self.last_publish_ms = self._wall_ms()
        self._emit(
            "published",
            logging.DEBUG,
            seq=batch.seq,
            boot=batch.boot,
            readings=batch.readings,
            bytes=len(batch.payload),
            priority=PRIORITY_NAMES[batch.priority],
            attempt=batch.attempts + 1,
        )
        self._transport.publish(
            self._topic, batch.payload, functools.partial(self._outcome, batch.id)
        )

    def _outcome(self, batch_id: int, outcome: PublishOutcome) -> None:
        self._outcomes.put((batch_id, outcome))
        self._wake.set()

    def settle(self) -> None:
        """Apply every outcome received so far (on the agent's loop thread)."""
        while True:
            try:
                batch_id, outcome = self._outcomes.get_nowait()
            except stdqueue.Empty:
                return
            if batch_id < 0:
                if outcome.status == ACKED:
                    self._counters.health_published += 1
                continue
            flight = self._inflight.pop(batch_id, None)
            if flight is None:
                continue  # already expired and re-sent; the queue decides
            if outcome.status == ACKED:
                self._acked(batch_id, flight)
            elif outcome.status == REFUSED:
                self._refused(batch_id, flight, outcome)
            else:
                self._retry_at[batch_id] = time.monotonic() + FAILED_RETRY_S
                self._counters.batches_failed += 1
                self._emit(
                    "publish-failed",
                    logging.WARNING,
                    text=f"batch {flight.seq} not delivered: {outcome.reason}; it stays queued "
                    "and is sent again",
                    reason=outcome.reason,
                    **_details(flight),
                )
                self._queue.mark_attempt(batch_id)

    def _acked(self, batch_id: int, flight: _InFlight) -> None:
        self._queue.ack(batch_id)
        self._refused_count.pop(batch_id, None)
        self._counters.batches_acked += 1
        self._counters.readings_acked += flight.readings
        self.last_ack_ms = self._wall_ms()
        self._emit("acked", logging.DEBUG, **_details(flight))

    def _refused(self, batch_id: int, flight: _InFlight, outcome: PublishOutcome) -> None:
        n = self._refused_count.get(batch_id, 0) + 1
        self._refused_count[batch_id] = n
        low, high = REFUSED_BACKOFF_S
        backoff = min(high, low * 2 ** (n - 1))
        self._retry_at[batch_id] = time.monotonic() + backoff
        self._counters.batches_refused += 1
        code = outcome.code
        if code is not None:
            self._counters.refusals[code] = self._counters.refusals.get(code, 0) + 1
        self._emit(
            "refused",
            logging.ERROR,
            text=f"batch {flight.seq} refused: {outcome.reason}; it stays queued and is sent "
            f"again in {backoff:g} s",
            code=code,
            reason=outcome.reason,
            retry_in_s=backoff,
            **_details(flight),
        )
        self._queue.mark_attempt(batch_id)

    def expire(self, now: float) -> None:
        """Forget publishes whose outcome never came, so their batches are sent again."""
        for bid, flight in list(self._inflight.items()):
            if now - flight.sent_mono > LOST_CALLBACK_S:
                del self._inflight[bid]
                self._counters.batches_failed += 1
                self._emit("publish-timeout", logging.WARNING, seq=flight.seq, boot=flight.boot)

    def next_wait(self, bound: float) -> float:
        """How long the loop may sleep before the sender has something to do (at most bound)."""
        wait = bound
        if self._limit_wait:
            wait = min(wait, self._limit_wait)
            self._limit_wait = 0.0
        if self._retry_at:
            wait = min(wait, max(0.01, min(self._retry_at.values()) - time.monotonic()))
        return max(0.01, wait)


def _details(flight: _InFlight) -> dict[str, Any]:
    return {"seq": flight.seq, "boot": flight.boot, "readings": flight.readings}
