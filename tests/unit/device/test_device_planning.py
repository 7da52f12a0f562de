"""Batch planning, report by exception: full, old enough, moved past a deadband, or alerting."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from device.batcher import Envelope
from device.counters import AgentCounters
from device.planning import BatchPlanner, Cadence, Deadband, EarlyBudget
from device.queue import PRIORITY_LIVE, PRIORITY_URGENT, DurableQueue, NewReading

ENV = Envelope("exc-01", "lyon-part-dieu", "excavator", "9c1e0f7a")
T0 = 1_763_733_600_000
START_MS = 1_000_000  # monotonic milliseconds when the planner starts
BANDS = {"temperature": 1.0, "humidity": 3.0, "pressure": 1.0}


def test_deadband_flags_a_move_past_the_band_since_the_last_batch() -> None:
    band = Deadband(BANDS)
    assert not band.observe("engine", {"temperature": 60.0, "humidity": 40.0, "pressure": 1000})
    assert not band.observe("engine", {"temperature": 61.0, "humidity": 42.9, "pressure": 999.5})
    assert band.observe("engine", {"temperature": 61.2, "humidity": 40.0, "pressure": 1000})
    band.published()  # 61.2 is now the reference
    assert not band.observe("engine", {"temperature": 60.5, "humidity": 40.0, "pressure": 1000})
    assert band.observe("engine", {"temperature": 60.1, "humidity": 40.0, "pressure": 1000})
    # each sensor has its own reference; a missing field never counts as a move
    assert not band.observe("cabin", {"temperature": 20.0, "humidity": None, "pressure": None})
    assert not band.observe("cabin", {"temperature": 20.0, "humidity": None, "pressure": 1002})
    assert band.observe("cabin", {"temperature": 20.0, "humidity": None, "pressure": 1003.5})


def test_a_band_of_zero_switches_the_field_off() -> None:
    band = Deadband({"temperature": 0.0, "humidity": 3.0, "pressure": 0.0})
    band.observe("engine", {"temperature": 20.0, "humidity": 40.0, "pressure": 1000.0})
    assert not band.observe("engine", {"temperature": 90.0, "humidity": 40.0, "pressure": 900})
    assert band.observe("engine", {"temperature": 20.0, "humidity": 44.0, "pressure": 1000})


class Plan:
    """A planner over a real durable queue, driven by explicit monotonic times."""

    def __init__(self, tmp_path: Path, **cadence: Any) -> None:
        values: dict[str, Any] = {
            "budget": 4800,
            "max_age_s": 900.0,
            "deadbands": BANDS,
            "early_min_interval_s": 60.0,
            "early_burst": 3,
            "early_refill_s": 0.0,  # no budget: the spacing alone (the budget's own tests set it)
        }
        values.update(cadence)
        self.queue = DurableQueue(tmp_path)
        self.counters = AgentCounters()
        self.events: list[str] = []
        self.planner = BatchPlanner(
            self.queue,
            ENV,
            Cadence(**values),
            self.counters,
            lambda kind, level=0, **details: self.events.append(kind),
            START_MS,
        )

    def take(self, at_s: float, temperature: float, urgent: bool = False) -> None:
        mono = START_MS + int(at_s * 1000)
        reading = NewReading(
            sensor="engine",
            ts=T0 + mono,
            mono_ms=mono,
            os_boot="b1",
            wall_ms=T0 + mono,
            temperature=temperature,
            humidity=40.0,
            pressure=1000.0,
            urgent=urgent,
        )
        self.queue.add([reading])
        self.planner.observe([reading])

    def form(self, at_s: float) -> list[list[float]]:
        """Form what is due at `at_s`; the temperatures of each batch formed, in order."""
        before = {b.id for b in self.queue.unsent(limit=1000)}
        self.planner.form(START_MS + int(at_s * 1000), T0 + START_MS + int(at_s * 1000))
        new = [b for b in self.queue.unsent(limit=1000) if b.id not in before]
        return [[r["temperature"] for r in json.loads(b.payload)["readings"]] for b in new]


def test_a_steady_machine_sends_a_batch_when_its_oldest_reading_is_old_enough(
    tmp_path: Path,
) -> None:
    plan = Plan(tmp_path, budget=100_000)
    sizes = []
    for second in range(0, 2000, 5):
        plan.take(second, 20.0 + (second % 10) / 100)
        sizes += [len(batch) for batch in plan.form(second + 0.5)]
    # the first within a minute of the start (someone may be watching), then every 15 min
    assert sizes == [13, 181, 181]  # 65 s .. 965 s, then 970 s .. 1870 s
    assert plan.counters.early_batches == 0


def test_a_moving_value_leaves_early_but_at_most_once_per_interval(tmp_path: Path) -> None:
    plan = Plan(tmp_path)
    plan.take(0, 60.0)
    plan.take(10, 61.5)  # moved past 1 °C, but the first minute counts as a batch interval
    assert plan.form(10) == []
    assert plan.planner.early_wait_s(START_MS + 10_000) == pytest.approx(50.0)
    assert plan.form(60) == [[60.0, 61.5]]
    plan.take(61, 63.0)  # moved again at once: waits for the rate limit
    assert plan.form(61) == []
    plan.take(90, 63.2)
    assert plan.form(121) == [[63.0, 63.2]]
    assert plan.counters.early_batches == 1  # the first one was due by age as well
    plan.take(130, 63.3)  # within the band of the last batch: waits for its age
    assert plan.form(1000) == []
    assert plan.planner.early_wait_s(START_MS + 1_000_000) is None
    assert plan.form(1031) == [[63.3]]


def test_a_full_budget_leaves_at_once(tmp_path: Path) -> None:
    plan = Plan(tmp_path, budget=1024, deadbands={})
    for i in range(30):
        plan.take(i, 20.0)
    batches = plan.form(30)
    assert batches and all(len(b) > 1 for b in batches)
    assert sum(len(b) for b in batches) <= 30


def test_a_reading_crossing_a_level_leaves_alone_and_at_once(tmp_path: Path) -> None:
    plan = Plan(tmp_path)
    plan.take(0, 70.0)
    plan.take(1, 83.0, urgent=True)
    assert plan.form(1) == [[83.0]]
    [urgent] = plan.queue.unsent(limit=10)
    assert urgent.priority == PRIORITY_URGENT
    assert plan.form(60) == [[70.0]]
    assert {b.priority for b in plan.queue.unsent(limit=10)} == {PRIORITY_URGENT, PRIORITY_LIVE}


def test_a_stop_sends_what_is_not_yet_due(tmp_path: Path) -> None:
    plan = Plan(tmp_path)
    plan.take(0, 20.0)
    plan.take(1, 20.1)
    assert plan.form(2) == []
    plan.planner.flush(START_MS + 2_000, T0 + START_MS + 2_000)
    assert len(plan.queue.unsent(limit=10)) == 1


def batch_times(plan: Plan, start_s: int, end_s: int, temperature: Any) -> list[tuple[int, int]]:
    """Read every 5 s from start_s to end_s, forming as the agent does; (time, early) per batch."""
    out = []
    for second in range(start_s, end_s, 5):
        plan.take(second, temperature(second))
        early = plan.counters.early_batches
        for _ in plan.form(second + 0.5):
            out.append((second, plan.counters.early_batches - early))
    return out


def test_a_value_that_keeps_moving_spends_its_early_budget_then_leaves_once_per_refill(
    tmp_path: Path,
) -> None:
    plan = Plan(
        tmp_path, budget=100_000, early_min_interval_s=300.0, early_burst=3, early_refill_s=900.0
    )
    # An hour steady: aged batches only (the first within a minute), the bucket stays full.
    assert batch_times(plan, 0, 3600, lambda s: 20.0) == [(60, 0), (965, 0), (1870, 0), (2775, 0)]
    # Then the engine starts: 0.1 °C every 5 s, past the 1 °C band every minute, for an hour.
    moving = batch_times(plan, 3600, 7200, lambda s: 20.0 + (s - 3600) / 50)
    times = [at for at, _ in moving]
    assert all(early for _, early in moving)
    # The burst every 5 minutes, spaced from the last aged batch (2775 s), the fourth one
    # paid by what came back meanwhile: four batches in the move's first 20 minutes ...
    assert times[:4] == [3655, 3955, 4255, 4555]
    # ... then one per refill period, never longer.
    assert [b - a for a, b in itertools.pairwise(times[3:])] == [900, 900]
    # The engine holds its temperature: the move's last readings leave with its next token,
    # then aged batches only while the bucket fills again ...
    quiet = batch_times(plan, 7200, 7200 + 2 * 3600, lambda s: 91.9)
    assert [early for _, early in quiet] == [1] + [0] * (len(quiet) - 1)
    # ... so the next move gets its burst again.
    again = [at for at, _ in batch_times(plan, 14400, 15600, lambda s: 91.9 + (s - 14400) / 50)]
    assert [b - a for a, b in itertools.pairwise(again)] == [300, 300, 300]


def test_the_budget_never_holds_back_aged_full_or_alert_batches(tmp_path: Path) -> None:
    plan = Plan(tmp_path, budget=100_000, early_burst=1, early_refill_s=86_400.0)
    moving = batch_times(plan, 0, 2000, lambda s: 20.0 + s / 50)
    # the first batch (a minute), the one early batch of the budget, then the age limit
    assert moving == [(60, 0), (120, 1), (1025, 0), (1930, 0)]
    assert plan.planner.early_wait_s(START_MS + 2_000_000) == pytest.approx(86_400 - 1_880, abs=1)
    plan.take(2001, 85.0, urgent=True)
    assert plan.form(2001) == [[85.0]]  # an alert leaves at once, budget or not
    full = Plan(tmp_path / "full", budget=1024, early_burst=0, early_refill_s=900.0)
    for i in range(30):
        full.take(i, 20.0 + i)
    assert full.form(30)  # a full batch leaves at once as well


def test_an_early_budget_of_zero_sends_no_early_batch(tmp_path: Path) -> None:
    plan = Plan(tmp_path, budget=100_000, early_burst=0, early_refill_s=900.0)
    assert batch_times(plan, 0, 1000, lambda s: 20.0 + s / 10) == [(60, 0), (965, 0)]
    assert plan.planner.early_wait_s(START_MS + 1_000_000) is None


def test_the_early_budget_refills_one_token_per_period_up_to_its_burst() -> None:
    budget = EarlyBudget(min_interval_s=300.0, burst=2, refill_s=600.0, start_ms=0)
    assert budget.wait_s(0) == pytest.approx(300.0)  # the start counts as a batch
    budget.left(300_000, early=True)
    budget.left(600_000, early=True)
    assert budget.tokens(600_000) == pytest.approx(0.5)  # 2 - 2 + 600 s of refill
    assert budget.wait_s(600_000) == pytest.approx(300.0)  # half a period to the next token
    budget.left(700_000, early=False)  # an aged batch takes no token but restarts the spacing
    assert budget.wait_s(700_000) == pytest.approx(300.0)
    assert budget.tokens(10_000_000) == 2.0  # never more than the burst
    unlimited = EarlyBudget(min_interval_s=60.0, burst=1, refill_s=0.0, start_ms=0)
    unlimited.left(60_000, early=True)
    assert unlimited.wait_s(60_000) == pytest.approx(60.0)  # refill 0: the spacing alone
