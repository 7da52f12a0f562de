"""States that stop data (no connection, clock not synchronised, queue filling, disk low or
full): one warning line when each begins, a reminder while it lasts, one info line when it ends,
and what `chantier agent status` shows meanwhile."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from device.events import Emit

# A state that lasts is said again this often, so the journal of the last hour always has it.
REMIND_S = 3600.0


@dataclass
class _Active:
    since_ms: int
    text: str
    remind_at: float


class Condition:
    """One state that stops data, reported on its edges (and reminded while it lasts)."""

    def __init__(
        self,
        emit: Emit,
        begin: str,
        end: str,
        *,
        level: int = logging.WARNING,
        remind_s: float = REMIND_S,
    ) -> None:
        self._emit = emit
        self.begin = begin
        self.end = end
        self.level = level
        self.remind_s = remind_s
        self._active: _Active | None = None

    @property
    def active(self) -> bool:
        return self._active is not None

    def update(
        self, active: bool, now: float, wall_ms: int, text: str = "", **details: Any
    ) -> None:
        """Report the state: `text` says what is wrong while active, what happened when it ends."""
        current = self._active
        if active and current is None:
            self._active = _Active(wall_ms, text, now + self.remind_s)
            self._emit(self.begin, self.level, text=text, **details)
        elif active and current is not None:
            current.text = text
            if now >= current.remind_at:
                current.remind_at = now + self.remind_s
                self._emit(self.begin, self.level, text=f"still: {text}", **details)
        elif not active and current is not None:
            self._active = None
            self._emit(self.end, logging.INFO, text=text, **details)

    def as_dict(self) -> dict[str, Any] | None:
        """For the status file: since when, and what is wrong (None when all is well)."""
        if self._active is None:
            return None
        return {"event": self.begin, "since": self._active.since_ms, "text": self._active.text}
