"""Fixed-rate deadlines without drift, and the publish rate limiter."""

from __future__ import annotations

import pytest

from device.schedule import MAX_BYTES_PER_S, MAX_PUBLISHES_PER_S, RateLimiter, Ticker


def test_deadlines_do_not_drift_with_late_wakeups() -> None:
    ticker = Ticker(start=100.0, interval=1.0)
    now = 100.0
    for _ in range(1000):
        now = ticker.due + 0.37  # every wake-up late by 370 ms
        ticker.fire(now)
    assert ticker.due == pytest.approx(100.0 + 1000 * 1.0)  # tick k at start + k, always
    assert ticker.missed == 0


def test_missed_ticks_are_counted_not_replayed() -> None:
    ticker = Ticker(start=0.0, interval=0.5)
    ticker.fire(0.0)
    ticker.fire(3.2)  # asleep for six ticks
    assert ticker.due == pytest.approx(3.5)
    assert ticker.missed == 5


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="expected seconds > 0"):
        Ticker(0.0, 0.0)


def simulate(limiter: RateLimiter, sizes: list[int]) -> float:
    """Send messages as fast as the limiter allows; return the simulated duration."""
    now = 0.0
    for size in sizes:
        wait = limiter.delay(now, size)
        now += wait
        assert limiter.delay(now, size) <= 1e-9
        limiter.take(now, size)
    return now


def test_publish_rate_limit() -> None:
    duration = simulate(RateLimiter(), [100] * 1000)
    assert 1000 / duration <= MAX_PUBLISHES_PER_S * 1.03
    assert duration == pytest.approx(1000 / MAX_PUBLISHES_PER_S, rel=0.05)


def test_byte_rate_limit_with_large_messages() -> None:
    sizes = [120_000] * 100
    duration = simulate(RateLimiter(), sizes)
    assert sum(sizes) / duration <= MAX_BYTES_PER_S * 1.05
    assert sum(sizes) / duration >= MAX_BYTES_PER_S * 0.8


def test_health_goes_out_on_its_interval_and_at_once_when_a_sensor_changes() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=900.0, early_min_s=60.0)
    assert not health.due(0.5, 0, all_tried=False)  # sensors not read yet: wait for them
    assert health.due(0.6, 0, all_tried=True)
    health.sent(0.6, 0)
    assert not health.due(100.0, 0, all_tried=True)
    assert health.due(100.0, 1, all_tried=True)  # a sensor failed
    health.sent(100.0, 1)
    assert not health.due(120.0, 2, all_tried=True)  # recovered, but within a minute
    assert health.due(160.0, 2, all_tried=True)
    health.sent(160.0, 2)
    assert not health.due(899.0, 2, all_tried=True)
    assert health.due(900.0, 2, all_tried=True)


def test_the_first_health_message_waits_for_the_sensors_at_most_ten_seconds() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=60.0, early_min_s=60.0)
    assert not health.due(9.9, 0, all_tried=False)
    assert health.due(10.0, 0, all_tried=False)


def test_a_periodic_health_message_rides_with_a_batch_and_stays_in_step() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=900.0, early_min_s=60.0, join_s=120.0)
    assert health.due(10.0, 0, all_tried=True)
    health.sent(10.0, 0)
    # Due at 900, but the aged batch leaves at 965 (the first batch left at 60 s): it waits.
    assert not health.due(900.0, 0, all_tried=True, batch_in_s=lambda: 65.0)
    assert health.due(965.0, 0, all_tried=True, batch_left=True, batch_in_s=lambda: 900.0)
    health.sent(965.0, 0)
    # An interval later the next aged batch is 5 s behind (a sample interval): it waits again.
    assert not health.due(1865.0, 0, all_tried=True, batch_in_s=lambda: 5.0)
    assert health.due(1870.0, 0, all_tried=True, batch_left=True, batch_in_s=lambda: 900.0)
    health.sent(1870.0, 0)
    # A batch leaving early (a value moved) takes it along when it is nearly due ...
    assert health.due(2700.0, 0, all_tried=True, batch_left=True, batch_in_s=lambda: 300.0)
    health.sent(2700.0, 0)
    # ... but not when it is far from due.
    assert not health.due(3000.0, 0, all_tried=True, batch_left=True, batch_in_s=lambda: 300.0)


def test_a_health_message_waits_for_a_batch_only_when_one_is_coming() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=900.0, early_min_s=60.0, join_s=120.0)
    health.sent(10.0, 0)
    # No readings pending (sensors gone): on time, it is the machine's only sign of life.
    assert health.due(900.0, 0, all_tried=True, batch_in_s=lambda: None)
    # A batch further off than the join window: on time as well.
    assert health.due(900.0, 0, all_tried=True, batch_in_s=lambda: 121.0)
    # A batch announced but never leaving (clock not synced): at most the window late.
    assert not health.due(1019.0, 0, all_tried=True, batch_in_s=lambda: 1.0)
    assert health.due(1020.0, 0, all_tried=True, batch_in_s=lambda: 1.0)
    # The window never exceeds half the interval (the live profile's 60 s).
    live = HealthSchedule(start=0.0, interval=60.0, early_min_s=60.0, join_s=120.0)
    live.sent(10.0, 0)
    assert not live.due(60.0, 0, all_tried=True, batch_in_s=lambda: 5.0)
    assert live.due(90.0, 0, all_tried=True, batch_in_s=lambda: 5.0)


def test_hourly_health_goes_at_once_when_what_people_act_on_changed() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=3600.0, early_min_s=900.0)
    steady = (0, 0, True)  # sensor status version, readings dropped, clock synced
    health.sent(10.0, steady)
    assert not health.due(3000.0, steady, all_tried=True)
    assert not health.due(500.0, (0, 120, True), all_tried=True)  # dropped, but 15 min not up
    assert health.due(910.0, (0, 120, True), all_tried=True)
    health.sent(910.0, (0, 120, True))
    assert health.due(1810.0, (0, 120, False), all_tried=True)  # the clock lost its sync
    health.sent(1810.0, (0, 120, False))
    # otherwise hourly, on the grid from the start
    assert not health.due(3599.0, (0, 120, False), all_tried=True)
    assert health.due(3600.0, (0, 120, False), all_tried=True)


def test_a_machine_that_sends_nothing_else_sends_a_heartbeat_every_batch_age() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=3600.0, early_min_s=900.0, heartbeat_s=900.0)
    health.sent(10.0, 0)
    # batches flowing every 15 minutes: no heartbeat
    assert not health.due(905.0, 0, all_tried=True, batch_left=True)
    # 15 minutes quiet, but the aged batch leaves a sample later: the heartbeat waits for it
    assert not health.due(1805.0, 0, all_tried=True, batch_in_s=lambda: 5.0)
    assert not health.due(1810.0, 0, all_tried=True, batch_left=True)
    # no readings any more (sensors gone, clock not synced): heard from every 15 minutes
    assert not health.due(2709.0, 0, all_tried=True, batch_in_s=lambda: None)
    assert health.due(2710.0, 0, all_tried=True, batch_in_s=lambda: None)
    health.sent(2710.0, 0)
    # a batch announced that never leaves delays a heartbeat by half a minute at most
    assert not health.due(3620.0, 0, all_tried=True, batch_in_s=lambda: 0.0)
    assert health.due(3640.0, 0, all_tried=True, batch_in_s=lambda: 0.0)


def test_an_hourly_health_message_waits_up_to_a_batch_age_for_its_batch() -> None:
    from device.schedule import HealthSchedule

    health = HealthSchedule(start=0.0, interval=3600.0, early_min_s=900.0, wait_s=900.0)
    health.sent(10.0, 0)
    # due at 3600; the next batch leaves in 10 minutes (an early batch moved the grid): wait
    assert not health.due(3600.0, 0, all_tried=True, batch_in_s=lambda: 600.0)
    assert health.due(4200.0, 0, all_tried=True, batch_left=True)
    health.sent(4200.0, 0)
    # but not for a batch further off than that, nor past it
    assert health.due(7800.0, 0, all_tried=True, batch_in_s=lambda: 901.0)
    health.sent(7800.0, 0)
    assert health.due(12300.0, 0, all_tried=True, batch_in_s=lambda: 1.0)
