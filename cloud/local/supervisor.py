"""Restarts a child process of the local stack that died, so a broker crash is an outage, not
the end of the stack."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud.local.processes import ChildProcess, ProcessStartError

log = logging.getLogger(__name__)


@dataclass
class Watched:
    process: ChildProcess
    restart: Callable[[], None]
    restarts: int = 0
    last_exit: int | None = None


@dataclass
class Supervisor:
    """Checks its children every `period_s` and restarts any that exited without being asked."""

    period_s: float = 0.2
    on_restart: Callable[[str, int], None] = lambda name, code: None
    _watched: list[Watched] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, process: ChildProcess, restart: Callable[[], None]) -> None:
        self._watched.append(Watched(process, restart))

    def restarts(self) -> dict[str, int]:
        return {w.process.name: w.restarts for w in self._watched}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stack-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop watching (before the children are stopped on purpose)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for watched in self._watched:
                code = watched.process.exited()
                if code is None or self._stop.is_set():
                    continue
                watched.last_exit = code
                log.warning(
                    "%s exited with code %s: restarting it (see %s)",
                    watched.process.name,
                    code,
                    watched.process.log_path,
                )
                try:
                    watched.restart()
                except (OSError, ProcessStartError) as exc:
                    log.error("%s could not be restarted: %s", watched.process.name, exc)
                    continue
                watched.restarts += 1
                self.on_restart(watched.process.name, watched.process.pid)
