"""SIGTERM and SIGINT as a request to stop: every long-running process stops the same way."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(
    stop: threading.Event | None = None, on_signal: Callable[[str], None] | None = None
) -> threading.Event:
    """Set `stop` (a new event unless one is given) on SIGTERM or SIGINT, and return it.

    `on_signal` is called first with the signal's name (e.g. to say the process is stopping).
    Call from the main thread, as Python handles signals only there.
    """
    event = stop if stop is not None else threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if on_signal is not None:
            on_signal(signal.Signals(signum).name)
        event.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    return event
