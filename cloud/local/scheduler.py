"""Runs the template's scheduled functions on the local stack, as EventBridge would in AWS.

Only ``rate(N unit)`` expressions run locally (the template uses nothing else). The
environment variable ``CHANTIER_LOCAL_SCHEDULE_SCALE`` multiplies every period, so tests and
demos see scheduled work within seconds: ``0.02`` turns ``rate(1 minute)`` into 1.2 s. The
default is 1 (the template's own periods).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cloud.local.stackinfo import ACCOUNT_ID, REGION
from cloud.local.template import ScheduleSpec

log = logging.getLogger(__name__)

SCALE_ENV = "CHANTIER_LOCAL_SCHEDULE_SCALE"
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
Invoke = Callable[[str, Any], Any]


class ScheduleError(ValueError):
    """A schedule expression or scale the local scheduler cannot run."""


def rate_seconds(expression: str) -> float:
    """Period of a ``rate(...)`` expression in seconds."""
    match = _RATE.match(expression.strip())
    if match is None:
        raise ScheduleError(
            f"schedule {expression!r}: the local stack runs rate(N minute|hour|day) only"
        )
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    if count < 1:
        raise ScheduleError(f"schedule {expression!r}: expected a rate of at least 1 {unit}")
    return float(count * _UNIT_S[unit])


def scale_from_env(env: Mapping[str, str]) -> float:
    """The period multiplier from ``CHANTIER_LOCAL_SCHEDULE_SCALE`` (default 1)."""
    raw = env.get(SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not 0 < scale <= 1000:
        raise ScheduleError(f"{SCALE_ENV}={raw!r}: expected a number above 0 (1 = real periods)")
    return scale


def scheduled_event(spec: ScheduleSpec, now_s: float) -> dict[str, Any]:
    """The event EventBridge sends a scheduled target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{spec.logical_id}"],
        "detail": {},
    }


class LocalScheduler:
    """One thread that invokes each scheduled function once per (scaled) period."""

    def __init__(self, schedules: Sequence[ScheduleSpec], invoke: Invoke, scale: float = 1.0):
        if scale <= 0:
            raise ScheduleError(f"schedule scale {scale!r}: expected a number above 0")
        self._entries = [(spec, rate_seconds(spec.expression) * scale) for spec in schedules]
        self._invoke = invoke
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._runs: dict[str, int] = {spec.logical_id: 0 for spec in schedules}
        self._failures: dict[str, int] = {spec.logical_id: 0 for spec in schedules}

    def start(self) -> None:
        if self._thread is not None or not self._entries:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 35.0) -> None:
        """Stop after the invocation in progress, if any (a Lambda timeout is 30 s)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("scheduler thread still busy after %.0f s; left behind", timeout_s)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per schedule: (invocations, failed invocations)."""
        with self._lock:
            return {lid: (self._runs[lid], self._failures[lid]) for lid in self._runs}

    def _run(self) -> None:
        # Like EventBridge, the first run comes one period after the rule exists.
        start = time.monotonic()
        due = [start + period for _, period in self._entries]
        while not self._stop.is_set():
            wait = max(0.0, min(due) - time.monotonic())
            if self._stop.wait(wait):
                return
            now = time.monotonic()
            for index, (spec, period) in enumerate(self._entries):
                if due[index] > now:
                    continue
                # Skip missed periods rather than bursting to catch up after a slow run.
                due[index] += period * max(1, int((now - due[index]) // period) + 1)
                self._fire(spec)

    def _fire(self, spec: ScheduleSpec) -> None:
        failed = False
        try:
            self._invoke(spec.function_arn, scheduled_event(spec, time.time()))
        except Exception:
            failed = True  # neither processed nor kept; the next period does the same work anyway
            log.exception("scheduled invocation of %s failed", spec.function_arn)
        with self._lock:
            self._runs[spec.logical_id] += 1
            self._failures[spec.logical_id] += int(failed)
