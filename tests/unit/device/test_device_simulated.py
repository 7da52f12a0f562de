"""Simulated machines: deterministic, physically plausible, faults on time."""

from __future__ import annotations

import itertools

import pytest

from chantier.telemetry import RANGES
from device.config import FaultConfig
from device.sensors.base import SensorError
from device.sensors.simulated import PROFILES, SimulatedSensor

NOON = 1_763_726_400.0  # 2025-11-21 12:00 UTC


class Sim:
    """Simulated time for a sensor: elapsed seconds and a wall clock that follow it."""

    def __init__(self, wall0: float = NOON) -> None:
        self.t = 0.0
        self.wall0 = wall0

    def elapsed(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.wall0 + self.t


def sensor(name: str, profile: str, sim: Sim, **kw: object) -> SimulatedSensor:
    return SimulatedSensor(name, profile, elapsed=sim.elapsed, wall=sim.wall, **kw)  # type: ignore[arg-type]


def series(s: SimulatedSensor, sim: Sim, seconds: float, step: float) -> list:
    out = []
    while sim.t <= seconds:
        out.append(s.read())
        sim.t += step
    return out


def test_same_seed_same_values_different_seed_differs() -> None:
    a, b, c = Sim(), Sim(), Sim()
    ra = series(sensor("engine", "excavator", a, seed=3), a, 3600, 60)
    rb = series(sensor("engine", "excavator", b, seed=3), b, 3600, 60)
    rc = series(sensor("engine", "excavator", c, seed=4), c, 3600, 60)
    assert ra == rb
    assert ra != rc


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_values_stay_in_sensor_ranges_over_days(profile: str) -> None:
    sim = Sim()
    for name in ("engine", "cabin", "ambient"):
        for m in series(sensor(name, profile, sim, seed=11), sim, 5 * 86400, 600):
            assert RANGES["temperature"][0] <= m.temperature <= RANGES["temperature"][1]
            assert RANGES["humidity"][0] <= m.humidity <= RANGES["humidity"][1]
            assert RANGES["pressure"][0] <= m.pressure <= RANGES["pressure"][1]
        sim.t = 0.0


def test_engine_warms_under_load_and_cools_at_idle() -> None:
    sim = Sim()
    s = sensor("engine", "excavator", sim, seed=1)
    start = s.read().temperature
    sim.t = 1400  # near the end of the first work period (1500 s)
    warm = s.read().temperature
    sim.t = 2099  # end of the idle period (600 s)
    cooled = s.read().temperature
    assert warm > start + 30
    assert cooled < warm - 10


def test_humidity_moves_against_temperature_over_a_day() -> None:
    sim = Sim(wall0=NOON - 12 * 3600)  # midnight
    s = sensor("ambient", "site-cabin", sim, seed=5, placement="ambient")
    values = series(s, sim, 86400, 1800)
    hottest = max(values, key=lambda m: m.temperature)
    coldest = min(values, key=lambda m: m.temperature)
    assert hottest.humidity < coldest.humidity


def test_overheat_fault_crosses_alert_level_within_twenty_seconds() -> None:
    sim = Sim()
    s = sensor(
        "engine", "excavator", sim, faults=[FaultConfig("overheat", start_s=10, duration_s=30)]
    )
    before = series(s, sim, 9, 1)
    assert max(m.temperature for m in before) < 60
    sim.t = 19
    assert s.read().temperature >= 82  # critical engine-overheat level of the shipped rules
    sim.t = 45
    assert s.read().temperature < 60  # fault over: back to the model


def test_freeze_stuck_dropout_spikes_storm() -> None:
    sim = Sim()
    s = sensor(
        "ambient",
        "concrete-mixer",
        sim,
        placement="ambient",
        faults=[
            FaultConfig("freeze", start_s=0, duration_s=20),
            FaultConfig("stuck", start_s=30, duration_s=10),
            FaultConfig("dropout", start_s=50, duration_s=5),
        ],
    )
    sim.t = 10
    assert s.read().temperature == pytest.approx(-8.0, abs=0.3)
    sim.t = 30
    first = s.read()
    sim.t = 39
    assert s.read() == first
    sim.t = 52
    with pytest.raises(SensorError, match="dropout"):
        s.read()
    sim.t = 56
    s.read()

    sim2 = Sim()
    spiky = sensor(
        "engine", "generator", sim2, faults=[FaultConfig("spikes", probability=0.5, value=30)]
    )
    values = [m.temperature for m in series(spiky, sim2, 100, 1)]
    jumps = [abs(b - a) for a, b in itertools.pairwise(values)]
    assert max(jumps) > 20

    sim3 = Sim()
    stormy = sensor(
        "ambient",
        "crane",
        sim3,
        faults=[FaultConfig("storm", start_s=0, duration_s=3 * 3600, value=20)],
    )
    p0 = stormy.read().pressure
    sim3.t = 3 * 3600 - 1
    assert stormy.read().pressure < p0 - 15


def test_kept_draws_give_the_values_of_fresh_ones() -> None:
    # One sensor read through many duty cycles and storm periods, back and forth, against a
    # new sensor for every moment: remembering the last draw must not change any value.
    sim = Sim()
    kept = sensor("engine", "compressor", sim, seed=9)
    moments = [0.0, 100.0, 899.0, 900.0, 950.0, 10 * 86400.0, 3.0, 20 * 86400.0, 20 * 86400.5]
    for t in moments:
        fresh = sensor("engine", "compressor", Sim(), seed=9)
        assert kept.working(t) == fresh.working(t)
        assert kept.pressure(NOON + t) == fresh.pressure(NOON + t)
