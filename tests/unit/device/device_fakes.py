"""In-memory publisher and sensors for agent tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from device.sensors.base import Measurement, SensorError
from device.transport import (
    ACKED,
    CONNECT_FAILED,
    CONNECTED,
    DISCONNECTED,
    FAILED,
    REFUSED,
    STOPPED,
    ConnectionListener,
    LinkChange,
    PublishOutcome,
)


class FakePublisher:
    """Acks (or refuses, or fails) publishes on a background thread, like the CRT client."""

    def __init__(self, mode: str = ACKED, code: int | None = None) -> None:
        self.mode = mode
        self.code = code
        self.up = True
        self.sent: list[tuple[str, bytes]] = []
        self.stopped = False
        self._lock = threading.Lock()
        self._on_connection: ConnectionListener | None = None
        # when set, start() reports a failed attempt with this client error instead
        self.connect_error: str | None = None

    def set_on_connection(self, callback: ConnectionListener) -> None:
        self._on_connection = callback

    def start(self) -> None:
        if self._on_connection is None:
            return
        if self.connect_error is not None:
            self.up = False
            self._on_connection(LinkChange(CONNECT_FAILED, self.connect_error, "refused"))
        elif self.up:
            self._on_connection(LinkChange(CONNECTED))

    def connected(self) -> bool:
        return self.up

    def set_up(self, up: bool, error: str = "AWS_IO_SOCKET_CLOSED") -> None:
        self.up = up
        if self._on_connection:
            self._on_connection(LinkChange(CONNECTED) if up else LinkChange(DISCONNECTED, error))

    def fail_attempt(self, error: str) -> None:
        """One more failed reconnection attempt, as the client reports it."""
        if self._on_connection:
            self._on_connection(LinkChange(CONNECT_FAILED, error, "test"))

    def publish(
        self, topic: str, payload: bytes, on_done: Callable[[PublishOutcome], None]
    ) -> None:
        with self._lock:
            self.sent.append((topic, payload))
        if not self.up:
            outcome = PublishOutcome(FAILED, "offline")
        elif self.mode == REFUSED:
            outcome = PublishOutcome(REFUSED, "not authorised", self.code)
        else:
            outcome = PublishOutcome(self.mode)
        threading.Timer(0.001, on_done, args=(outcome,)).start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        self.stopped = True
        if self._on_connection and self.up:
            self._on_connection(LinkChange(STOPPED, "AWS_ERROR_MQTT5_USER_REQUESTED_STOP"))
        return True

    def telemetry(self) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.sent if t.endswith("/telemetry")]

    def health(self) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.sent if t.endswith("/health")]


class ScriptedSensor:
    """Returns given temperatures in turn; an Exception in the script is raised instead."""

    def __init__(self, name: str, script: list[Any], default: float = 20.0) -> None:
        self.name = name
        self.script = list(script)
        self.default = default
        self.calls = 0

    def read(self) -> Measurement:
        self.calls += 1
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, BaseException):
                raise item
            return Measurement(float(item), 50.0, 1000.0)
        return Measurement(self.default, 50.0, 1000.0)

    def close(self) -> None:
        pass


def failing(message: str = "no answer") -> SensorError:
    return SensorError(message)
