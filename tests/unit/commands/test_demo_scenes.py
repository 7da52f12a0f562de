"""The demo's scenes: one per fault of the design, fitted to the fleet and the duration."""

from __future__ import annotations

from pathlib import Path

import pytest

from chantier.alerts.rules import load_rules
from commands.demo_scenes import (
    DEMO_FOR_S,
    DEMO_OFFLINE_S,
    demo_rules,
    explain,
    plan,
    weather_clock,
)
from commands.simulator.fleet import fleet_names
from device.sensors.simulated import DAY_S


def test_every_fault_of_the_design_has_a_scene_on_the_default_site() -> None:
    scenes, skipped = plan(fleet_names(6), 110.0)
    assert {s.fault for s in scenes} == {
        "overheat", "freeze", "condensation", "dropout", "network-cut"
    }  # fmt: skip
    assert skipped == []
    assert len({s.thing for s in scenes}) == 5  # one machine each, comp-01 stays calm


def test_missing_machines_and_short_runs_say_what_is_left_out() -> None:
    scenes, skipped = plan(fleet_names(3), 60.0)
    assert [s.name for s in scenes] == ["overheat"]
    assert any("needs a concrete-mixer" in line for line in skipped)
    assert any("network cut: needs --duration 95" in line for line in skipped)


def test_demo_rules_shorten_durations_and_the_words_use_them(tmp_path: Path) -> None:
    path = demo_rules(tmp_path / "rules.json")
    rules = load_rules(path)
    assert all(r.for_s <= DEMO_FOR_S for rs in rules.profiles.values() for r in rs)
    offline = rules.find("crane", "offline")
    assert offline is not None and offline.minutes * 60 == DEMO_OFFLINE_S
    scenes, _ = plan(fleet_names(6), 110.0)
    words = {s.name: explain(s, rules, load_rules()) for s in scenes}
    assert "warning at ≥ 75, critical at ≥ 82, once held 8 s" in words["overheat"]
    assert "(120 s in the real rules)" in words["freeze"]
    assert "30 s of silence" in words["network cut"]


@pytest.mark.parametrize("real_hour", [0.5, 3.0, 11.0, 22.9])
def test_the_demo_weather_is_a_late_morning_whatever_the_hour(real_hour: float) -> None:
    now = [20_000 * DAY_S + real_hour * 3600.0]
    clock = weather_clock(11.0, now=lambda: now[0])
    assert (clock() % DAY_S) / 3600.0 == pytest.approx(11.0)
    now[0] += 90.0  # then it runs at the real pace
    assert (clock() % DAY_S) / 3600.0 == pytest.approx(11.0 + 90.0 / 3600.0)
