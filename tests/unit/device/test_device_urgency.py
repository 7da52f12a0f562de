"""Urgent publishing: a crossing leaves at once, noise on the same level does not every second."""

from __future__ import annotations

from device.urgency import RulesUrgency


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _margin(temperature: float, margin: float) -> dict[str, float]:
    """A reading whose dew-point margin is about `margin` (Magnus, as the rules compute it)."""
    import math

    a, b = 17.625, 243.04
    dew = temperature - margin
    humidity = 100.0 * math.exp(a * dew / (b + dew) - a * temperature / (b + temperature))
    return {"temperature": temperature, "humidity": humidity}


def test_noise_around_one_level_is_urgent_once_a_minute() -> None:
    clock = Clock()
    urgency = RulesUrgency("site-cabin", clock=clock)
    urgent = []
    # 60 readings, one a second, hovering around the condensation info level (3.0)
    for second in range(60):
        clock.now = float(second)
        margin = 3.0 + (0.05 if second % 2 else -0.05)
        urgent.append(urgency.urgent("ambient", _margin(8.0, margin)))
    # the first reading, the first move each way: then quiet for the rest of the minute
    assert urgent[:3] == [True, True, True] and not any(urgent[3:])
    clock.now = 63.0  # a minute after the last urgent move down: news again
    assert urgency.urgent("ambient", _margin(8.0, 2.95)) is True


def test_a_new_level_or_the_clear_level_is_urgent_at_once() -> None:
    clock = Clock()
    urgency = RulesUrgency("excavator", clock=clock)
    assert urgency.urgent("engine", {"temperature": 70.0}) is False
    assert urgency.urgent("engine", {"temperature": 76.0}) is True  # warning level
    clock.now = 1.0
    assert urgency.urgent("engine", {"temperature": 83.0}) is True  # critical: another bound
    clock.now = 2.0
    assert urgency.urgent("engine", {"temperature": 71.0}) is True  # below clear (72)
