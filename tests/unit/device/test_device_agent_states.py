"""Every state that stops data is one warning line with its cause, and shows in `agent status`."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from support.field_guide import row_for
from unit.device.device_fakes import FakePublisher
from unit.device.test_device_agent import Clock, Running, make_config, wait_for

from chantier.cli import main
from device.bootstrap import build_agent
from device.urgency import NeverUrgent


@pytest.fixture(autouse=True)
def quick_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    # the agent looks at its states at every status save (5 s in service)
    monkeypatch.setattr("device.agent.STATUS_EVERY_S", 0.05)


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def in_the_guide(record: logging.LogRecord) -> bool:
    """The line has its row in docs/field-install.md's troubleshooting table."""
    return row_for(str(record.event), record.getMessage()) is not None  # type: ignore[attr-defined]


def agent_with(tmp_path: Path, pub: FakePublisher, clock: Clock | None = None, **over: Any) -> Any:
    return build_agent(
        make_config(tmp_path, **over), transport=pub, clock=clock or Clock(), urgency=NeverUrgent()
    )


def test_first_failed_connection_is_a_warning_with_its_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "chantier.agent")
    pub = FakePublisher()
    pub.connect_error = "AWS_IO_SOCKET_CONNECTION_REFUSED"
    agent = agent_with(tmp_path, pub)
    with Running(agent):
        wait_for(lambda: bool(lines(caplog, "connect-failed")))
        for _ in range(5):  # the client keeps trying: the same cause is not news
            pub.fail_attempt("AWS_IO_SOCKET_CONNECTION_REFUSED")
        pub.fail_attempt("AWS_IO_TLS_ERROR_READ_FAILURE")  # a new cause is
        pub.set_up(True)
        wait_for(lambda: bool(lines(caplog, "connected")))
        pub.set_up(False, "AWS_ERROR_MQTT5_PING_RESPONSE_TIMEOUT")
        pub.set_up(True)
    first, second = lines(caplog, "connect-failed")
    assert first.levelno == logging.WARNING
    assert first.getMessage() == (
        "cannot connect to 127.0.0.1:8883: connection refused: nothing accepts connections on "
        "127.0.0.1:8883; check port (8883 for MQTT over TLS) and endpoint; readings wait on "
        "disk, retrying with backoff"
    )
    assert "it does not accept this device's certificate" in second.getMessage()
    assert in_the_guide(first) and in_the_guide(second)
    assert "(7 attempts)" in second.getMessage()
    connected = lines(caplog, "connected")
    assert connected[0].getMessage() == "connected to 127.0.0.1:8883 after 7 failed attempts"
    lost, stopping = lines(caplog, "disconnected")
    assert lost.levelno == logging.WARNING and in_the_guide(lost)
    assert "connection to 127.0.0.1:8883 lost: the broker stopped answering keep-alives" in (
        lost.getMessage()
    )
    # a stop the agent asked for is news, not trouble
    assert stopping.levelno == logging.INFO
    assert stopping.getMessage() == "disconnected from 127.0.0.1:8883: the agent is stopping"
    assert not [r for r in caplog.records if "USER_REQUESTED_STOP" in r.getMessage()]


def test_unsynchronised_clock_says_what_the_agent_does_meanwhile(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "chantier.agent")
    clock = Clock(synced=False)
    pub = FakePublisher()
    agent = agent_with(tmp_path, pub, clock, clock_sync="kernel")
    with Running(agent):
        wait_for(lambda: bool(lines(caplog, "clock-not-synced")))
        wait_for(lambda: agent.stats()["readings"] >= 5)
        clock.is_synced = True
        wait_for(lambda: bool(lines(caplog, "clock-synced")))
    (warning,) = lines(caplog, "clock-not-synced")
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith(
        "clock not synchronised (clock_sync = kernel): readings are kept on disk"
    )
    assert "nothing is published until then; check timedatectl" in warning.getMessage()
    assert in_the_guide(warning)


def test_queue_filling_warns_once_and_drops_are_not_said_every_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "chantier.agent")
    pub = FakePublisher()
    pub.connect_error = "AWS_IO_DNS_INVALID_NAME"
    agent = agent_with(tmp_path, pub, queue_max_readings=20, sample_interval_s=0.005)
    with Running(agent):
        wait_for(lambda: agent.stats()["dropped"] >= 40)
        wait_for(lambda: bool(lines(caplog, "queue-filling")))
    (filling,) = lines(caplog, "queue-filling")
    assert filling.levelno == logging.WARNING
    assert "of 20 readings): readings are not leaving (no connection: the endpoint " in (
        filling.getMessage()
    )
    (dropped,) = lines(caplog, "readings-dropped")
    assert in_the_guide(filling) and in_the_guide(dropped)


def test_disk_low_and_write_failures_are_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, "chantier.agent")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("device.agent.shutil.disk_usage", lambda path: usage(1, 1, 5 * 2**20))
    from device.queue import DurableQueue

    real_add = DurableQueue.add
    broken = {"on": True}

    def add(self: DurableQueue, readings: list[Any]) -> None:
        if broken["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        real_add(self, readings)

    monkeypatch.setattr(DurableQueue, "add", add)
    agent = agent_with(tmp_path, FakePublisher())
    with Running(agent):
        wait_for(lambda: agent.stats()["readings_lost"] >= 20)
        broken["on"] = False
        wait_for(lambda: bool(lines(caplog, "queue-writable")))
        wait_for(lambda: bool(lines(caplog, "disk-low")))
    (low,) = lines(caplog, "disk-low")
    assert low.levelno == logging.WARNING and "only 5 MB free" in low.getMessage()
    (failed,) = lines(caplog, "queue-write-failed")
    assert failed.levelno == logging.ERROR
    assert ": disk full (database or disk is full); 2 readings lost so far" in failed.getMessage()
    assert in_the_guide(low) and in_the_guide(failed)


def test_status_shows_connection_clock_queue_and_sensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = FakePublisher()
    pub.connect_error = "AWS_IO_SOCKET_CONNECTION_REFUSED"
    clock = Clock(synced=False)
    agent = agent_with(tmp_path, pub, clock)
    state = tmp_path / "state"
    with Running(agent):
        wait_for(lambda: agent.stats()["readings"] >= 10)
        time.sleep(0.2)  # a status save after the readings
        assert main(["agent", "status", "--state-dir", str(state)]) == 0
        running = capsys.readouterr().out
        assert main(["agent", "status", "--state-dir", str(state), "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
    assert "agent            running (pid " in running
    assert "connection       cannot connect to 127.0.0.1:8883 since " in running
    assert "failed attempts): connection refused: nothing accepts connections" in running
    assert "                 check port (8883 for MQTT over TLS) and endpoint" in running
    assert "last error       " in running and "AWS_IO_SOCKET_CONNECTION_REFUSED" in running
    assert "clock            NOT synchronised (clock_sync = auto)" in running
    assert "oldest reading   " in running and " s ago)" in running
    assert "sensor engine     ok, " in running
    assert "attention        clock-not-synced since " in running
    assert document["connection"]["state"] == "cannot-connect"
    assert document["connection"]["lastErrorAt"] > 0
    assert document["clock"] == {"synced": False, "mode": "auto"}
    assert document["queue"]["depth"] >= 10 and document["queue"]["oldestReadingAgeS"] >= 0
    assert {s["sensorId"]: s["status"] for s in document["sensors"]} == {
        "engine": "ok",
        "cabin": "ok",
    }
    assert main(["agent", "status", "--state-dir", str(state)]) == 0
    stopped = capsys.readouterr().out
    assert "agent            not running (" in stopped


def test_a_sensor_that_stops_answering_is_said_with_its_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from device.sensors.base import Measurement
    from device.sensors.bme280 import Bme280Sensor
    from device.sensors.emulator import Bme280Emulator, EmulatedBus

    caplog.set_level(logging.INFO, "chantier.agent")
    bus = EmulatedBus({0x76: Bme280Emulator(source=lambda: Measurement(60.0, 20.0, 1000.0))})
    engine = Bme280Sensor("engine", lambda: bus, 0x76, bus_label="1")
    agent = build_agent(
        make_config(tmp_path, sample_interval_s=0.05),
        sensors=[engine],
        transport=FakePublisher(),
        clock=Clock(),
        urgency=NeverUrgent(),
    )
    with Running(agent):
        wait_for(lambda: agent.stats()["sensors"]["engine"]["readings"] >= 2)
        bus.disappear(0x76)
        wait_for(lambda: bool(lines(caplog, "sensor-error")))
        failing = agent.stats()["attention"]
        bus.come_back(0x76)
        wait_for(lambda: bool(lines(caplog, "sensor-recovered")), timeout=5)
    assert any(a.startswith("sensor engine gives no reading: ") for a in failing)
    assert agent.stats()["attention"] == []
    first = lines(caplog, "sensor-error")[0]
    assert first.levelno == logging.WARNING
    assert first.getMessage().startswith(
        "sensor engine gives no reading: SensorError: BME280 engine at 0x76 on bus 1: I2C error "
        "121: no ACK (wiring, address or power); retrying in 0.05 s, the other sensors keep running"
    )
    assert in_the_guide(first)
