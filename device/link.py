"""The agent's view of its link to the broker: state, last error and its cause in words.

The first failed connection is a warning (not only a lost one), a new cause is a new warning,
a cause that lasts is repeated once an hour, and the attempts in between are debug lines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from device.conditions import REMIND_S
from device.diagnosis import Diagnosis, diagnose
from device.events import Emit
from device.transport import CONNECT_FAILED, CONNECTED, DISCONNECTED, LinkChange

STARTING, UP, DOWN, FAILING = "connecting", "connected", "disconnected", "cannot-connect"


class LinkState:
    """Follows the transport's link changes (on its threads) and reports them."""

    def __init__(
        self,
        emit: Emit,
        *,
        host: str,
        port: int,
        thing: str,
        clock_synced: Callable[[], bool],
        wall_ms: Callable[[], int],
        monotonic: Callable[[], float],
        remind_s: float = REMIND_S,
    ) -> None:
        self._emit = emit
        self.host, self.port, self.thing = host, port, thing
        self._clock_synced = clock_synced
        self._wall_ms = wall_ms
        self._monotonic = monotonic
        self._remind_s = remind_s
        self._lock = threading.Lock()
        self.state = STARTING
        self.since_ms = wall_ms()
        self.failed_attempts = 0
        self.last_error: str | None = None
        self.last_error_at: int | None = None
        self.diagnosis: Diagnosis | None = None
        self._said: str | None = None  # the error the last warning explained
        self._remind_at = 0.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def on_change(self, change: LinkChange) -> None:
        with self._lock:
            if change.phase == CONNECTED:
                self._connected()
            elif change.phase == CONNECT_FAILED:
                self._failed(change)
            elif change.phase == DISCONNECTED:
                self._lost(change)
            else:  # stopped because the agent asked
                self.state = DOWN
                self._emit(
                    "disconnected", text=f"disconnected from {self.where}: the agent is stopping"
                )

    def _connected(self) -> None:
        was, attempts = self.state, self.failed_attempts
        text = f"connected to {self.where}"
        if was in (FAILING, DOWN) and attempts:
            text += f" after {attempts} failed attempts"
        self.state, self.since_ms = UP, self._wall_ms()
        self.failed_attempts, self._said = 0, None
        self._emit("connected", text=text, endpoint=self.host, port=self.port)

    def _explain(self, change: LinkChange) -> Diagnosis:
        self.last_error = f"{change.error}: {change.detail}" if change.error else change.detail
        self.last_error_at = self._wall_ms()
        self.diagnosis = diagnose(
            change.error,
            change.detail,
            host=self.host,
            port=self.port,
            thing=self.thing,
            clock_synced=self._clock_synced(),
        )
        return self.diagnosis

    def _failed(self, change: LinkChange) -> None:
        diagnosis = self._explain(change)
        self.failed_attempts += 1
        now = self._monotonic()
        if self.state != FAILING:
            self.state, self.since_ms = FAILING, self._wall_ms()
        new_cause = change.error != self._said
        if not new_cause and now < self._remind_at:
            logging.getLogger("chantier.agent").debug(
                "connect attempt failed",
                extra={"event": "connect-retry", "error": change.error, "detail": change.detail},
            )
            return
        prefix = "still " if not new_cause else ""
        attempts = f" ({self.failed_attempts} attempts)" if self.failed_attempts > 1 else ""
        self._said, self._remind_at = change.error, now + self._remind_s
        self._emit(
            "connect-failed",
            logging.WARNING,
            text=f"{prefix}cannot connect to {self.where}{attempts}: {diagnosis.cause}; "
            f"check {diagnosis.check}; readings wait on disk, retrying with backoff",
            error=change.error,
            detail=change.detail,
            attempts=self.failed_attempts,
        )

    def _lost(self, change: LinkChange) -> None:
        diagnosis = self._explain(change)
        self.state, self.since_ms, self._said = DOWN, self._wall_ms(), change.error
        self._remind_at = self._monotonic() + self._remind_s
        self._emit(
            "disconnected",
            logging.WARNING,
            text=f"connection to {self.where} lost: {diagnosis.cause}; reconnecting with "
            "backoff, readings wait on disk",
            error=change.error,
            detail=change.detail,
        )

    def as_dict(self) -> dict[str, Any]:
        """For the status file and `chantier agent status`."""
        with self._lock:
            diagnosis = self.diagnosis if self.state != UP else None
            return {
                "state": self.state,
                "endpoint": self.where,
                "since": self.since_ms,
                "failedAttempts": self.failed_attempts,
                "lastError": self.last_error,
                "lastErrorAt": self.last_error_at,
                "cause": diagnosis.cause if diagnosis else None,
                "check": diagnosis.check if diagnosis else None,
            }
