"""What the agent needs from its link to the broker; device/mqtt.py implements it over MQTT5.

The agent, its parts and their tests depend on this interface only, so they never import the
MQTT client library (tests pass an in-memory transport).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

ACKED, REFUSED, FAILED = "acked", "refused", "failed"


@dataclass(frozen=True)
class PublishOutcome:
    """What became of one publish: acked, refused by the broker (with its code) or failed."""

    status: str
    reason: str = ""
    code: int | None = None


OnDone = Callable[[PublishOutcome], None]

CONNECTED, CONNECT_FAILED, DISCONNECTED, STOPPED = (
    "connected",
    "connect-failed",
    "disconnected",
    "stopped",
)


@dataclass(frozen=True)
class LinkChange:
    """The link came up, an attempt failed, it went down, or it stopped because asked to."""

    phase: str
    # the client's name for what went wrong (AWS_IO_SOCKET_CONNECTION_REFUSED, CONNACK
    # NOT_AUTHORIZED, ...) and its own words
    error: str | None = None
    detail: str = ""

    @property
    def up(self) -> bool:
        return self.phase == CONNECTED


# Called on every change of the link, including each failed attempt.
ConnectionListener = Callable[[LinkChange], None]


class TransportError(RuntimeError):
    """The transport could not be built or started."""


class Transport(Protocol):
    """A QoS 1 publisher that reconnects by itself and reports each publish's outcome once."""

    def set_on_connection(self, listener: ConnectionListener) -> None: ...

    def start(self) -> None: ...

    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, on_done: OnDone) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> bool: ...
