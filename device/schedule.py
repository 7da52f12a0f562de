"""Fixed-rate deadlines on a monotonic clock, when health goes out, and the publish rate
limiter; pure logic."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

# IoT Core per-connection limits (publishes per second, bytes per second).
MAX_PUBLISHES_PER_S = 100.0
MAX_BYTES_PER_S = 512 * 1024
# How far a periodic health message moves to ride with a batch. Above the first batch's
# offset (it leaves a minute after the start, the health grid starts at the start) plus a
# sample interval, so the two fall into step at the first period and stay there.
HEALTH_JOIN_S = 120.0


class Ticker:
    """Deadlines start + k*interval of one periodic task, counting ticks missed when late.

    Deadlines come from the start, never from the last wake-up, so a slow read or a late
    wake-up does not shift every later sample (no drift)."""

    def __init__(self, start: float, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"interval {interval!r} is not positive: expected seconds > 0")
        self.start = start
        self.interval = interval
        self.due = start
        self.missed = 0
        self._k = 0

    def fire(self, now: float) -> None:
        """Called when the task ran at `now`: move to the next deadline after it."""
        k = max(self._k + 1, math.floor((now - self.start) / self.interval) + 1)
        self.missed += k - self._k - 1
        self._k = k
        self.due = self.start + k * self.interval


class HealthSchedule:
    """When a health message goes out.

    - Every `interval` s; the first waits until every sensor was tried, or FIRST_WAIT_S, so it
      says how the sensors are rather than that they start.
    - At once, but at most once per `early_min_s`, when what people act on in it changed: the
      caller's `state` (sensor status, readings dropped, the clock) differs from the last sent.
    - As a heartbeat, when neither a batch nor a health message left for `heartbeat_s`: a
      machine without readings (sensors gone, clock not synchronised) is still heard from as
      often as a steady one, within the cloud's offline rule.

    A periodic one rides with a batch: due within `join_s` after a batch left, it goes right
    after that batch; falling due while a batch will leave within `wait_s` (default `join_s`;
    the agent waits up to a batch age, so an hourly message always finds one), it waits for
    it. The cloud then refreshes the machine's last seen once for the two messages, not twice
    (docs/cost.md). It waits only for a batch that is coming, which itself tells the cloud
    the machine is alive; with no batch in sight it goes on time. Both windows are at most
    half the interval."""

    FIRST_WAIT_S = 10.0
    # A heartbeat waits at most this long for a batch about to leave (an aged batch leaves a
    # sample interval after heartbeat_s): well within the offline rule's minute of margin.
    HEARTBEAT_JOIN_S = 30.0

    def __init__(
        self,
        start: float,
        interval: float,
        early_min_s: float,
        heartbeat_s: float | None = None,
        join_s: float = HEALTH_JOIN_S,
        wait_s: float | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval {interval!r} is not positive: expected seconds > 0")
        self._interval = interval
        self._next = start + interval
        self._join_s = min(join_s, interval / 2)
        self._wait_s = min(join_s if wait_s is None else wait_s, interval / 2)
        self._start = start
        self._early_min_s = early_min_s
        self._heartbeat_s = heartbeat_s
        self._state: Hashable = None
        self._last: float | None = None
        self._batch_at = -math.inf

    def due(
        self,
        now: float,
        state: Hashable,
        all_tried: bool,
        *,
        batch_left: bool = False,
        batch_in_s: Callable[[], float | None] = lambda: None,
    ) -> bool:
        """`state`: what people act on, compared with the last sent; `batch_left`: a batch was
        just formed; `batch_in_s()`: seconds until the next one leaves (None: none pending),
        asked only when the periodic message or a heartbeat is due."""
        if batch_left:
            self._batch_at = now
        if self._last is None:
            return all_tried or now - self._start >= self.FIRST_WAIT_S
        if batch_left and now >= self._next - self._join_s:
            return True
        if now >= self._next and self._waited(now - self._next, self._wait_s, batch_in_s):
            return True
        if self._heartbeat_s is not None:
            quiet = now - max(self._last, self._batch_at) - self._heartbeat_s
            if quiet >= 0 and self._waited(quiet, self.HEARTBEAT_JOIN_S, batch_in_s):
                return True
        return state != self._state and now - self._last >= self._early_min_s

    @staticmethod
    def _waited(late: float, join: float, batch_in_s: Callable[[], float | None]) -> bool:
        """Whether a message `late` s past due goes now rather than wait for a coming batch."""
        if late >= join:
            return True
        coming = batch_in_s()
        return coming is None or coming > join

    def sent(self, now: float, state: Hashable) -> None:
        self._state = state
        self._last = now
        if now >= self._next - self._join_s:
            # the periodic one went (perhaps early, with a batch): the next is an interval on
            self._next = now + self._interval


@dataclass
class RateLimiter:
    """Token buckets for publishes/s and bytes/s; `delay` says how long until a send fits."""

    publishes_per_s: float = MAX_PUBLISHES_PER_S
    bytes_per_s: float = MAX_BYTES_PER_S
    burst_s: float = 0.2
    _count: float = 0.0
    _bytes: float = 0.0
    _at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is None:
            self._count = self.publishes_per_s * self.burst_s
            self._bytes = self.bytes_per_s * self.burst_s
        else:
            dt = max(0.0, now - self._at)
            self._count = min(
                self.publishes_per_s * self.burst_s, self._count + dt * self.publishes_per_s
            )
            self._bytes = min(
                max(self.bytes_per_s * self.burst_s, 0.0), self._bytes + dt * self.bytes_per_s
            )
        self._at = now

    def delay(self, now: float, size: int) -> float:
        """Seconds to wait before `size` bytes may be sent (0 when it may go now)."""
        self._refill(now)
        need_count = max(0.0, 1.0 - self._count) / self.publishes_per_s
        # a message larger than the burst only needs the bucket full, then runs it negative
        need_bytes = max(0.0, min(size, self.bytes_per_s * self.burst_s) - self._bytes)
        return max(need_count, need_bytes / self.bytes_per_s)

    def take(self, now: float, size: int) -> None:
        self._refill(now)
        self._count -= 1.0
        self._bytes -= size
