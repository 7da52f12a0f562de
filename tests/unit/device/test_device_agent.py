"""The agent loop with an in-memory publisher: nothing lost, refusals, outages, alerts, clock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from unit.device.device_fakes import FakePublisher, ScriptedSensor, failing

from chantier.telemetry import schema_text
from device.agent import Agent
from device.bootstrap import build_agent
from device.clock import FakeClock
from device.config import SensorConfig, config_from_mapping
from device.sensors.base import Measurement
from device.transport import REFUSED
from device.urgency import NeverUrgent

TELEMETRY = json.loads(schema_text())
HEALTH = json.loads(schema_text("health-1.schema.json"))


class Clock:
    """Real monotonic time, a settable sync state, wall time = monotonic + offset."""

    def __init__(self, synced: bool = True) -> None:
        self.is_synced = synced
        self.offset = 1_763_733_600.0 - time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.monotonic() + self.offset

    def synced(self) -> bool:
        return self.is_synced


class CountingSensor:
    """Temperature 0.01, 0.02, ...: each reading is distinct."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def read(self) -> Measurement:
        self.count += 1
        return Measurement(round(self.count / 100, 2), 50.0, 1000.0)

    def close(self) -> None:
        pass


def make_config(tmp_path: Path, **over: Any) -> Any:
    data: dict[str, Any] = {
        "thing": "exc-01",
        "site": "lyon-part-dieu",
        "equipment": "excavator",
        "endpoint": "127.0.0.1",
        "cert": "c.pem",
        "key": "k.pem",
        "ca": "ca.pem",
        "state_dir": str(tmp_path / "state"),
        "sample_interval_s": 0.02,
        "batch_max_age_s": 0.2,
        "health_interval_s": 0.3,
        "sensors": [{"name": "engine", "seed": 1}, {"name": "cabin", "seed": 2}],
    }
    data.update(over)
    return config_from_mapping(data, source="test.toml", env={})


class Running:
    """An agent running in a thread, stopped (with a bound) when the block ends."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=agent.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "agent did not stop within 10 s"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def readings_of(payloads: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for p in payloads:
        message = json.loads(p)
        jsonschema.validate(message, TELEMETRY)
        out.extend(message["readings"])
    return out


def test_every_reading_published_and_acked(tmp_path: Path) -> None:
    pub = FakePublisher()
    events: list[str] = []
    agent = build_agent(
        make_config(tmp_path),
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
        on_event=lambda kind, details: events.append(kind),
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["batches_acked"] >= 3)
    stats = agent.stats()
    got = readings_of(pub.telemetry())
    assert stats["readings"] == len(got) + stats["queue_depth"]
    assert stats["batches_acked"] == len(pub.telemetry())
    assert {"connected", "published", "acked"} <= set(events)
    assert pub.stopped
    topics = {t for t, _ in pub.sent}
    assert "dt/chantier/lyon-part-dieu/exc-01/telemetry" in topics
    assert {r["sensorId"] for r in got} == {"engine", "cabin"}
    seqs = [json.loads(p)["seq"] for p in pub.telemetry()]
    assert seqs == sorted(set(seqs))


def test_stop_sends_the_partial_batch_instead_of_holding_it_until_the_next_start(
    tmp_path: Path,
) -> None:
    pub = FakePublisher()
    agent = build_agent(
        make_config(tmp_path, batch_max_age_s=60.0),
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["readings"] >= 10)
        assert pub.telemetry() == []  # nothing due for a minute
    stats = agent.stats()
    assert len(pub.telemetry()) == 1
    assert len(readings_of(pub.telemetry())) == stats["readings"]
    assert stats["batches_acked"] == 1 and stats["queue_depth"] == 0


def test_refused_publish_is_not_an_ack(tmp_path: Path) -> None:
    pub = FakePublisher(mode=REFUSED, code=135)
    refused: list[dict[str, Any]] = []
    agent = build_agent(
        make_config(tmp_path),
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
        on_event=lambda k, d: refused.append(d) if k == "refused" else None,
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["batches_refused"] >= 1)
    stats = agent.stats()
    assert stats["batches_acked"] == 0
    assert stats["queue_depth"] == stats["readings"]  # nothing left the queue
    assert refused[0]["code"] == 135


def test_outage_backlog_replayed_in_big_batches_newest_not_starved(tmp_path: Path) -> None:
    pub = FakePublisher()
    pub.up = False
    config = make_config(tmp_path, sample_interval_s=0.005, batch_max_bytes=1000)
    # every reading distinct, so a reading sent in two batches shows
    sensors = [CountingSensor("engine"), CountingSensor("cabin")]
    agent = build_agent(
        config, sensors=sensors, transport=pub, clock=Clock(), urgency=NeverUrgent()
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["readings"] >= 300)
        assert pub.telemetry() == []
        pub.set_up(True)
        wait_for(lambda: agent.stats()["queue_depth"] < 40, timeout=10)
        taken = agent.stats()["readings"]
    payloads = pub.telemetry()
    sizes = [len(p) for p in payloads]
    assert max(sizes) > 4 * config.batch_max_bytes  # backlog went in large batches
    names = [(json.loads(p)["boot"], json.loads(p)["seq"]) for p in payloads]
    assert len(names) == len(set(names)), names
    got = readings_of(payloads)
    assert len(got) + agent.stats()["queue_depth"] == agent.stats()["readings"] >= taken
    assert len({(r["sensorId"], r["temperature"]) for r in got}) == len(got)


def test_failing_sensor_reported_retried_others_keep_running(tmp_path: Path) -> None:
    pub = FakePublisher()
    flaky = ScriptedSensor("engine", [failing("I2C NACK")] * 3)
    steady = ScriptedSensor("cabin", [])
    events: list[tuple[str, dict[str, Any]]] = []
    agent = build_agent(
        make_config(tmp_path),
        sensors=[flaky, steady],
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
        on_event=lambda k, d: events.append((k, d)),
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["sensors"]["engine"]["status"] == "failing")
        health = agent.health()
        jsonschema.validate(health, HEALTH)
        engine = next(s for s in health["sensors"] if s["sensorId"] == "engine")
        assert engine["status"] == "failing" and "I2C NACK" in engine["lastError"]
        wait_for(lambda: agent.stats()["sensors"]["engine"]["status"] == "ok")
    assert steady.calls > flaky.calls  # backoff: the failing one was asked less often
    kinds = [k for k, _ in events]
    assert "sensor-error" in kinds and "sensor-recovered" in kinds
    assert any(d.get("sensor") == "engine" for k, d in events if k == "sensor-error")


def test_crossing_reading_leaves_at_once(tmp_path: Path) -> None:
    class Hot:
        def urgent(self, sensor: str, reading: dict[str, Any]) -> bool:
            return reading["temperature"] >= 80

    pub = FakePublisher()
    engine = ScriptedSensor("engine", [20, 21, 22, 84])
    config = make_config(tmp_path, batch_max_age_s=3600, sensors=[{"name": "engine"}])
    agent = build_agent(config, sensors=[engine], transport=pub, clock=Clock(), urgency=Hot())
    with Running(agent):
        wait_for(lambda: any(r["temperature"] == 84 for r in readings_of(pub.telemetry())), 2)
    [first] = [json.loads(p) for p in pub.telemetry()][:1]
    assert [r["temperature"] for r in first["readings"]] == [84.0]


def test_unsynced_readings_restamped_once_synced(tmp_path: Path) -> None:
    pub = FakePublisher()
    clock = Clock(synced=False)
    clock.offset -= 10 * 365 * 86400  # the Pi believes it is ten years ago
    agent = build_agent(make_config(tmp_path), transport=pub, clock=clock, urgency=NeverUrgent())
    with Running(agent):
        wait_for(lambda: agent.stats()["readings"] >= 20)
        time.sleep(0.3)
        assert pub.telemetry() == []  # nothing leaves with an unsynchronised stamp
        clock.offset += 10 * 365 * 86400
        clock.is_synced = True
        wait_for(lambda: agent.stats()["restamped"] >= 20)
        wait_for(lambda: len(pub.telemetry()) >= 1)
    now_ms = clock.wall() * 1000
    got = readings_of(pub.telemetry())
    assert all(now_ms - 30_000 < r["ts"] <= now_ms for r in got)
    assert all(json.loads(p)["clockSynced"] for p in pub.telemetry())


def test_health_published_and_valid(tmp_path: Path) -> None:
    pub = FakePublisher()
    agent = build_agent(make_config(tmp_path), transport=pub, clock=Clock(), urgency=NeverUrgent())
    with Running(agent):
        wait_for(lambda: len(pub.health()) >= 2)
    for payload in pub.health():
        message = json.loads(payload)
        jsonschema.validate(message, HEALTH)
    assert message["thing"] == "exc-01" and message["dropped"]["sinceBoot"] == 0


def test_fake_clock_drives_stamps(tmp_path: Path) -> None:
    clock = FakeClock(wall=1_763_733_600.0, synced=True)
    agent = build_agent(
        make_config(tmp_path),
        sensors=[ScriptedSensor("engine", [])],
        transport=FakePublisher(),
        clock=clock,
        urgency=NeverUrgent(),
    )
    reading = agent.sampler.new_reading(
        "engine", ScriptedSensor("engine", []).read(), 1_763_733_600_000
    )
    assert reading.ts == 1_763_733_600_000 and reading.mono_ms == 1_000_000
    clock.is_synced = False
    assert agent.sampler.new_reading("engine", ScriptedSensor("x", []).read(), 5).ts is None


@pytest.mark.parametrize("interval", [0.02])
def test_sensor_config_defaults_in_code(tmp_path: Path, interval: float) -> None:
    config = make_config(tmp_path, sample_interval_s=interval)
    assert config.sensor_interval(SensorConfig(name="x")) == interval


def test_bme280_that_disappears_is_reported_and_the_other_keeps_running(tmp_path: Path) -> None:
    from device.sensors.base import Measurement
    from device.sensors.bme280 import Bme280Sensor
    from device.sensors.emulator import Bme280Emulator, EmulatedBus

    bus = EmulatedBus(
        {
            0x76: Bme280Emulator(source=lambda: Measurement(60.0, 20.0, 1000.0)),
            0x77: Bme280Emulator(source=lambda: Measurement(18.0, 55.0, 1000.0)),
        }
    )
    engine = Bme280Sensor("engine", lambda: bus, 0x76, bus_label="emulated")
    cabin = Bme280Sensor("cabin", lambda: bus, 0x77, bus_label="emulated")
    pub = FakePublisher()
    agent = build_agent(
        make_config(tmp_path, sample_interval_s=0.05),
        sensors=[engine, cabin],
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["sensors"]["engine"]["readings"] >= 2)
        bus.disappear(0x76)
        wait_for(lambda: agent.stats()["sensors"]["engine"]["status"] == "failing")
        cabin_before = agent.stats()["sensors"]["cabin"]["readings"]
        wait_for(lambda: agent.stats()["sensors"]["cabin"]["readings"] >= cabin_before + 5)
        health = agent.health()
        engine_health = next(s for s in health["sensors"] if s["sensorId"] == "engine")
        assert "0x76" in engine_health["lastError"]
        bus.come_back(0x76)
        wait_for(lambda: agent.stats()["sensors"]["engine"]["status"] == "ok", timeout=5)
    got = readings_of(pub.telemetry())
    assert {r["sensorId"] for r in got} == {"engine", "cabin"}
    assert all(
        r["temperature"] == pytest.approx(60.0, abs=0.02) for r in got if r["sensorId"] == "engine"
    )


def test_driver_bug_in_one_sensor_does_not_stop_the_others(tmp_path: Path) -> None:
    broken = ScriptedSensor("engine", [TypeError("driver bug")] * 1000)
    steady = ScriptedSensor("cabin", [])
    agent = build_agent(
        make_config(tmp_path),
        sensors=[broken, steady],
        transport=FakePublisher(),
        clock=Clock(),
        urgency=NeverUrgent(),
    )
    with Running(agent) as running:
        wait_for(lambda: agent.stats()["sensors"]["cabin"]["readings"] >= 10)
        assert running.thread.is_alive()
    engine = agent.stats()["sensors"]["engine"]
    assert engine["status"] == "failing" and "TypeError: driver bug" in engine["lastError"]


def test_corrupt_queue_set_aside_reported_in_health(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "queue.db").write_bytes(b"\x00garbage" * 512)
    events: list[tuple[str, dict[str, Any]]] = []
    pub = FakePublisher()
    agent = build_agent(
        make_config(tmp_path),
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
        on_event=lambda k, d: events.append((k, d)),
    )
    with Running(agent):
        wait_for(lambda: len(pub.health()) >= 1)
    health = json.loads(pub.health()[0])
    assert health["queue"]["setAside"] and "corrupt" in health["queue"]["setAside"]
    assert any(k == "queue-set-aside" for k, _ in events)
    assert Path(health["queue"]["setAside"]).exists()


def test_a_failing_sensor_is_reported_in_health_without_waiting_its_turn(tmp_path: Path) -> None:
    pub = FakePublisher()
    flaky = ScriptedSensor("engine", [20.0, 20.0] + [OSError("bus error")] * 3 + [20.0] * 500)
    config = make_config(
        tmp_path, health_interval_s=3600, health_early_min_s=0, sensors=[{"name": "engine"}]
    )
    agent = build_agent(
        config, sensors=[flaky], transport=pub, clock=Clock(), urgency=NeverUrgent()
    )
    with Running(agent):
        wait_for(lambda: len(pub.health()) >= 3)
    statuses = [json.loads(p)["sensors"][0]["status"] for p in pub.health()]
    # at start, then at once when the sensor fails and when it recovers: not an hour later
    assert statuses[1:3] == ["failing", "ok"]


def test_the_periodic_health_message_goes_right_after_a_batch(tmp_path: Path) -> None:
    pub = FakePublisher()
    config = make_config(
        tmp_path,
        batch_max_age_s=0.6,
        health_interval_s=0.6,
        deadband_temperature=0,
        deadband_humidity=0,
        deadband_pressure=0,
    )
    agent = build_agent(config, transport=pub, clock=Clock(), urgency=NeverUrgent())
    with Running(agent):
        wait_for(lambda: len(pub.health()) >= 5, timeout=15)
    kinds = [topic.rsplit("/", 1)[1] for topic, _ in pub.sent]
    health_at = [i for i, kind in enumerate(kinds) if kind == "health"]
    # The first waits only for the sensors; every later one follows a batch at once.
    assert len(health_at) >= 5
    assert all(kinds[i - 1] == "telemetry" for i in health_at[1:]), kinds


def test_a_machine_whose_clock_is_not_synchronised_is_still_heard_from(tmp_path: Path) -> None:
    pub = FakePublisher()
    # Nothing leaves while the clock is not synchronised; health is hourly, and nothing in it
    # changes: only the heartbeat (every batch_max_age_s of silence) says the machine is alive.
    config = make_config(
        tmp_path, batch_max_age_s=1.0, health_interval_s=3600, health_early_min_s=3600
    )
    agent = build_agent(config, transport=pub, clock=Clock(synced=False), urgency=NeverUrgent())
    with Running(agent):
        wait_for(lambda: len(pub.health()) >= 3, timeout=10)
    assert pub.telemetry() == []
    assert all(not json.loads(p)["clock"]["synced"] for p in pub.health())


def test_readings_dropped_during_an_outage_are_reported_as_soon_as_it_ends(
    tmp_path: Path,
) -> None:
    pub = FakePublisher()
    config = make_config(
        tmp_path,
        queue_max_readings=10,
        batch_max_age_s=60.0,
        health_interval_s=3600,
        health_early_min_s=0.5,
    )
    agent = build_agent(config, transport=pub, clock=Clock(), urgency=NeverUrgent())
    with Running(agent):
        wait_for(lambda: len(pub.health()) >= 1)
        pub.set_up(False)
        wait_for(lambda: agent.stats()["dropped"] > 0)
        time.sleep(0.6)
        pub.set_up(True)
        # the data-loss alert needs this one: not an hour (or a batch age) later
        wait_for(lambda: any(json.loads(p)["dropped"]["sinceBoot"] for p in pub.health()))


def test_a_batch_due_by_age_leaves_on_time_between_readings(tmp_path: Path) -> None:
    # Sensors read once a minute: no reading wakes the loop when the batch comes of age.
    pub = FakePublisher()
    agent = build_agent(
        make_config(tmp_path, sample_interval_s=60.0, batch_max_age_s=0.5),
        transport=pub,
        clock=Clock(),
        urgency=NeverUrgent(),
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["readings"] >= 2)
        taken = time.monotonic()
        wait_for(lambda: agent.stats()["batches_acked"] >= 1, timeout=2.0)
        waited = time.monotonic() - taken
    assert waited < 1.5, f"the batch left {waited:.2f} s after its readings (due after 0.5 s)"
    assert len(readings_of(pub.telemetry())) >= 2
