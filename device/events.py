"""The agent's events: each is a log line and, for the demo, simulator and systemd, a callback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("chantier.agent")

EventSink = Callable[[str, dict[str, Any]], None]


class Emit(Protocol):
    """emit(kind, level, text=..., **details): what every part of the agent reports through."""

    def __call__(
        self, kind: str, level: int = logging.INFO, *, text: str = "", **details: Any
    ) -> None: ...


class EventLog:
    """Logs each event, its text as the message (else its kind), then hands it to the sink."""

    def __init__(self, sink: EventSink | None = None) -> None:
        self._sink = sink

    def __call__(
        self, kind: str, level: int = logging.INFO, *, text: str = "", **details: Any
    ) -> None:
        log.log(level, text or kind, extra={"event": kind, **details})
        if self._sink is not None:
            try:
                self._sink(kind, {**details, "text": text} if text else details)
            except Exception:
                log.exception("on_event callback failed", extra={"event": kind})
