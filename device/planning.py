"""Batch planning: which readings leave in which batch, and when (report by exception).

Live readings leave in one batch when the batch is full (its byte budget), when its oldest
reading reaches `batch_max_age_s` (the first batch after a start: within a minute), or early
when a value moved past its deadband since the last batch: at most once per
`early_min_interval_s`, and within a budget (`EarlyBudget`) so that a value that keeps moving
does not send a batch every few minutes all day. A reading that crosses an alert level leaves
at once, alone. A backlog left by an outage or a previous run drains in large batches of its
own, so live readings keep their pace meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from device.batcher import BACKLOG_MAX_BYTES, Envelope, batch_due
from device.counters import AgentCounters
from device.events import Emit
from device.queue import (
    PRIORITY_BACKLOG,
    PRIORITY_LIVE,
    PRIORITY_URGENT,
    Batch,
    DurableQueue,
    NewReading,
)

# Readings waiting beyond this many normal budgets are an outage backlog: send them in big
# batches, separately from the live readings.
BACKLOG_FACTOR = 4
# Unsent backlog batches formed ahead of the sender; forming lazily keeps them large.
BACKLOG_AHEAD = 2
FIELDS = ("temperature", "humidity", "pressure")
# The first live batch after a start leaves within a minute, whatever the profile: whoever
# just installed or restarted the agent sees its data arrive without waiting 15 minutes.
FIRST_BATCH_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class Cadence:
    """When live readings leave: byte budget, age limit, deadbands and their rate limits."""

    budget: int
    max_age_s: float
    deadbands: Mapping[str, float]  # field -> band; 0 switches the field off
    early_min_interval_s: float
    # The early budget: this many early batches in a row (0: none), then one per refill
    # period (0: no budget, the spacing alone limits them).
    early_burst: int
    early_refill_s: float


class EarlyBudget:
    """When a moved value may leave early: a token bucket on top of the spacing.

    An early batch needs `min_interval_s` since the last batch of any kind and a token. The
    bucket holds `burst` tokens and starts full; one comes back every `refill_s`. A value that
    starts moving after a quiet spell therefore leaves every `min_interval_s` for `burst`
    batches, then at most once per `refill_s`. Batches that leave for another reason (age,
    full budget, an alert) take no token and are never held back."""

    def __init__(self, min_interval_s: float, burst: int, refill_s: float, start_ms: int) -> None:
        self._spacing_ms = min_interval_s * 1000
        self._burst = burst
        self._refill_ms = refill_s * 1000
        self._tokens = float(burst)
        self._tokens_at = start_ms
        self._last_ms = start_ms  # the start counts as a batch: the first early one waits too

    def tokens(self, now_ms: int) -> float:
        """Tokens in the bucket at `now_ms` (fractions count toward the next)."""
        if not self._refill_ms:
            return float(self._burst)
        gained = max(0, now_ms - self._tokens_at) / self._refill_ms
        return min(float(self._burst), self._tokens + gained)

    def wait_s(self, now_ms: int) -> float | None:
        """Seconds until an early batch may leave (None: never, the budget is zero)."""
        if self._burst <= 0:
            return None
        spacing = self._last_ms + self._spacing_ms - now_ms
        missing = 1.0 - self.tokens(now_ms)
        refill = missing * self._refill_ms if missing > 0 else 0.0
        return max(0.0, spacing, refill) / 1000

    def left(self, now_ms: int, early: bool) -> None:
        """A live batch left at `now_ms`; an early one spends a token."""
        self._last_ms = now_ms
        if early and self._refill_ms:
            self._tokens = max(0.0, self.tokens(now_ms) - 1.0)
            self._tokens_at = now_ms


class Deadband:
    """Whether a sensor's values moved past their band since the reference (last batch)."""

    def __init__(self, bands: Mapping[str, float]) -> None:
        self._bands = {f: b for f, b in bands.items() if f in FIELDS and b > 0}
        self._reference: dict[str, dict[str, float]] = {}
        self._latest: dict[str, dict[str, float]] = {}

    def observe(self, sensor: str, values: Mapping[str, float | None]) -> bool:
        """Record the newest values of `sensor`; True when one moved past its band."""
        present = {f: float(v) for f, v in values.items() if f in self._bands and v is not None}
        self._latest[sensor] = present
        reference = self._reference.setdefault(sensor, {})
        moved = False
        for field, value in present.items():
            if field not in reference:
                reference[field] = value  # a field's first value is its reference
            elif abs(value - reference[field]) > self._bands[field]:
                moved = True
        return moved

    def published(self) -> None:
        """The newest values went out: they are the reference from now on."""
        for sensor, values in self._latest.items():
            self._reference[sensor] = dict(values)


class BatchPlanner:
    """Forms batches in the durable queue: urgent first, then the backlog, then live ones."""

    def __init__(
        self,
        queue: DurableQueue,
        envelope: Envelope,
        cadence: Cadence,
        counters: AgentCounters,
        emit: Emit,
        started_ms: int,
    ) -> None:
        """`started_ms` (monotonic) counts as the last batch: the first early one waits too."""
        self._queue = queue
        self._envelope = envelope
        self.cadence = cadence
        self._counters = counters
        self._emit = emit
        self._deadband = Deadband(cadence.deadbands)
        self._lock = threading.Lock()  # observe() runs on the sampling thread
        self._moved = False
        self._urgent_pending = True  # checked once at start: urgent readings of a past run
        # Everything left by an earlier run is backlog.
        self._backlog_split = queue.max_reading_id()
        self._early = EarlyBudget(
            cadence.early_min_interval_s, cadence.early_burst, cadence.early_refill_s, started_ms
        )
        self._live_formed = False

    def observe(self, readings: Iterable[NewReading]) -> None:
        """Readings just committed: note urgent ones and values that moved past a deadband."""
        with self._lock:
            for r in readings:
                if r.urgent:
                    self._urgent_pending = True
                values = {"temperature": r.temperature, "humidity": r.humidity}
                values["pressure"] = r.pressure
                if self._deadband.observe(r.sensor, values):
                    self._moved = True

    def early_wait_s(self, now_ms: int) -> float | None:
        """Seconds until a moved value may leave early (None when nothing waits for that)."""
        if not self._moved:
            return None
        return self._early.wait_s(now_ms)

    def next_live_in_s(self, now_ms: int) -> float | None:
        """Seconds until the pending live readings leave by age or early (None: none pending)."""
        live = self._queue.pending(newer_than_id=self._backlog_split)
        if live.oldest_mono_ms is None:
            return None
        c = self.cadence
        max_age = c.max_age_s if self._live_formed else min(c.max_age_s, FIRST_BATCH_MAX_AGE_S)
        wait = max(0.0, (live.oldest_mono_ms + max_age * 1000 - now_ms) / 1000)
        early = self.early_wait_s(now_ms)
        return wait if early is None else min(wait, early)

    def form(self, now_ms: int, sent_at: int) -> None:
        """Form every batch due at monotonic `now_ms`, stamped `sent_at` (a synced wall time)."""
        with self._lock:
            urgent, self._urgent_pending = self._urgent_pending, False
        if urgent:
            while self._form(PRIORITY_URGENT, sent_at, self.cadence.budget, urgent_only=True):
                pass
        self._form_backlog(sent_at)
        for _ in range(BACKLOG_AHEAD * 4):
            reason = self._live_due(now_ms)
            if reason is None or not self._form_live(now_ms, sent_at, reason):
                break

    def flush(self, now_ms: int, sent_at: int) -> None:
        """Form every live reading into batches now, due or not (a clean stop)."""
        while self._form_live(now_ms, sent_at, "stop"):
            pass

    def _form_backlog(self, sent_at: int) -> None:
        q = self._queue
        # The split is fixed when the backlog is found (at start, or when an outage left more
        # than a few batches waiting): readings after it are live and keep flowing at their
        # normal pace while the backlog drains in large batches.
        if not self._backlog_split and q.pending().bytes > BACKLOG_FACTOR * self.cadence.budget:
            self._backlog_split = q.max_reading_id()
            self._emit("backlog", readings=q.depth)
        split = self._backlog_split
        if split:
            while q.count_unsent(PRIORITY_BACKLOG) < BACKLOG_AHEAD:
                if not self._form(PRIORITY_BACKLOG, sent_at, BACKLOG_MAX_BYTES, up_to_id=split):
                    self._backlog_split = 0
                    break

    def _live_due(self, now_ms: int) -> str | None:
        live = self._queue.pending(newer_than_id=self._backlog_split)
        if live.oldest_mono_ms is None:
            return None
        age = (now_ms - live.oldest_mono_ms) / 1000
        c = self.cadence
        max_age = c.max_age_s if self._live_formed else min(c.max_age_s, FIRST_BATCH_MAX_AGE_S)
        if batch_due(live.bytes, age, False, c.budget, max_age):
            return "full" if live.bytes >= c.budget else "age"
        return "moved" if self.early_wait_s(now_ms) == 0.0 else None

    def _form_live(self, now_ms: int, sent_at: int, reason: str) -> bool:
        batch = self._form(
            PRIORITY_LIVE, sent_at, self.cadence.budget, after_id=self._backlog_split
        )
        if batch is None:
            return False
        with self._lock:
            self._moved = False
            self._deadband.published()
        self._early.left(now_ms, early=reason == "moved")
        self._live_formed = True
        if reason == "moved":
            self._counters.early_batches += 1
        return True

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
        batch = self._queue.form_batch(
            self._envelope,
            sent_at,
            budget,
            priority=priority,
            urgent_only=urgent_only,
            after_id=after_id,
            up_to_id=up_to_id,
        )
        if batch is not None:
            self._counters.batches_formed += 1
        return batch
