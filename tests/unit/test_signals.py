"""SIGTERM and SIGINT set the stop event every long-running process waits on."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from chantier.signals import STOP_SIGNALS, stop_on_signals


@pytest.fixture(autouse=True)
def restore_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_sets_the_event_and_is_named(signum: signal.Signals) -> None:
    heard: list[str] = []
    stop = stop_on_signals(on_signal=heard.append)
    assert not stop.is_set()
    os.kill(os.getpid(), signum)
    assert stop.wait(5)
    assert heard == [signum.name]


def test_the_given_event_is_the_one_set() -> None:
    mine = threading.Event()
    assert stop_on_signals(mine) is mine
    os.kill(os.getpid(), signal.SIGTERM)
    assert mine.wait(5)
