"""Stopping simulated agents: an agent still stopping when counted is said, not hidden."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from commands.simulator.agents import Results, ThreadRunner
from commands.simulator.runner import SimulationSummary, print_summary


class SlowStoppingAgent:
    """Stands in for an agent whose stop takes `linger_s` after it is told."""

    def __init__(self, thing: str, linger_s: float, released: threading.Event) -> None:
        self.config = SimpleNamespace(thing=thing)
        self._linger_s = linger_s
        self._released = released

    def run(self, stop: threading.Event) -> None:
        stop.wait(5)
        if self._linger_s:
            self._released.wait(self._linger_s)

    def stats(self) -> dict[str, Any]:
        return {"readings": 1, "queue_depth": 1}


def test_agents_still_stopping_when_counted_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import device.bootstrap

    released = threading.Event()
    lingering = {"slow-1", "slow-2"}

    def build(config: Any, on_event: Any) -> SlowStoppingAgent:
        return SlowStoppingAgent(config.thing, 5.0 if config.thing in lingering else 0.0, released)

    monkeypatch.setattr(device.bootstrap, "build_agent", build)
    runner = ThreadRunner()
    names = ["quick-1", "slow-1", "slow-2", "quick-2"]
    runner.start([SimpleNamespace(thing=n) for n in names], [0.0] * 4, threading.Event())
    try:
        runner.stop(0.2)
        results = runner.results()
        assert results.still_running == 2
        assert set(results.stats) == set(names)
    finally:
        released.set()
    runner.stop(5)
    assert runner.results().still_running == 0


def test_merged_results_add_up_the_agents_still_running() -> None:
    one, two = Results(still_running=1), Results(still_running=2)
    one.merge(two)
    assert one.still_running == 3


def test_summary_says_when_agents_had_not_stopped() -> None:
    out = io.StringIO()
    print_summary(SimulationSummary(run_id="r", status="COMPLETED", agents_not_stopped=7), out)
    assert "7 agents had not stopped when counted" in out.getvalue()
    out = io.StringIO()
    print_summary(SimulationSummary(run_id="r", status="COMPLETED"), out)
    assert "had not stopped" not in out.getvalue()
