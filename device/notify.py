"""systemd notifications: READY, WATCHDOG (only while the agent loop turns), STATUS, STOPPING."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

try:
    import sdnotify
except ImportError:  # off systemd the notifications are no-ops anyway
    sdnotify = None


class Notifier:
    """Talks to systemd when NOTIFY_SOCKET is set; silent otherwise."""

    def __init__(self) -> None:
        enabled = bool(os.environ.get("NOTIFY_SOCKET")) and sdnotify is not None
        self._sd = sdnotify.SystemdNotifier() if enabled and sdnotify is not None else None
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() else None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def notify(self, message: str) -> None:
        if self._sd is not None:
            self._sd.notify(message)

    def on_event(self, kind: str, details: dict[str, Any]) -> None:
        if kind == "started":
            self.notify("READY=1")
            self.notify(f"STATUS=started, {details.get('queue_depth', 0)} readings queued")
        elif kind in ("connected", "disconnected", "connect-failed", "clock-not-synced"):
            self.notify(f"STATUS={details.get('text') or kind}")
        elif kind == "stopped":
            self.notify("STATUS=stopped")

    def watch(self, agent: Any, stop: threading.Event) -> None:
        """Pet the watchdog while the agent loop is alive; say STOPPING once asked to stop."""
        period = (self.watchdog_s or 20.0) / 3

        def loop() -> None:
            stopping_sent = False
            while not self._done.wait(period):
                if stop.is_set() and not stopping_sent:
                    self.notify("STOPPING=1")
                    stopping_sent = True
                # a stuck loop must be restarted by systemd, so do not pet on its behalf
                if time.monotonic() - agent.heartbeat < period * 2:
                    self.notify("WATCHDOG=1")
                    s = agent.stats()
                    attention = s.get("attention") or []
                    self.notify(
                        f"STATUS={'online' if s['connected'] else 'offline'}, "
                        f"queue {s['queue_depth']}, acked {s['batches_acked']}, "
                        f"dropped {s['dropped']}" + (f"; {attention[0]}" if attention else "")
                    )

        self._thread = threading.Thread(target=loop, name="systemd-notify", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.notify("STOPPING=1")
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
