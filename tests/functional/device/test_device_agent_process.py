"""`chantier agent run` as a process: emulated BME280s, schema-valid output, clean SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from functional.device.device_broker import (
    PYTHON,
    REPO,
    Broker,
    Collector,
    Pki,
    agent_toml,
    start_agent,
    wait_until,
)

from chantier.telemetry import schema_text

pytestmark = [pytest.mark.functional, pytest.mark.timeout(90)]

EMULATED = (
    '[[sensors]]\nname = "engine"\ndriver = "bme280"\nbus = "emulated"\naddress = 0x76\n'
    "seed = 5\noversampling_temperature = 2\noversampling_pressure = 4\niir_filter = 4\n"
    'faults = [{kind = "overheat", start_s = 1, duration_s = 60}]\n\n'
    '[[sensors]]\nname = "cabin"\ndriver = "bme280"\nbus = "emulated"\naddress = 0x77\n'
    'seed = 6\nmode = "normal"\n'
)


def test_emulated_bme280_agent_publishes_valid_messages_and_stops_cleanly(
    tmp_path: Path, broker: Broker, pki: Pki, collector: Collector
) -> None:
    cert, key = pki.issue("exc-03")
    state = tmp_path / "state"
    config = agent_toml(
        tmp_path / "agent.toml",
        broker=broker,
        thing="exc-03",
        cert=cert,
        key=key,
        state_dir=state,
        extra="sample_interval_s = 0.1\nbatch_max_age_s = 30\nhealth_interval_s = 1\n",
        sensors=EMULATED,
    )
    log = tmp_path / "agent.log"
    process = start_agent(config, log)
    try:
        # the overheat crosses the shipped engine-overheat levels: published before 30 s
        assert wait_until(
            lambda: any(
                r["sensorId"] == "engine" and r["temperature"] >= 75
                for _, m in collector.telemetry()
                for r in m["readings"]
            ),
            20,
        ), log.read_text()[-2000:]
        assert wait_until(lambda: len(collector.health()) >= 2, 10)
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert time.monotonic() - started < 10
    telemetry_schema = json.loads(schema_text())
    health_schema = json.loads(schema_text("health-1.schema.json"))
    for _, message in collector.telemetry():
        jsonschema.validate(message, telemetry_schema)
    for message in collector.health():
        jsonschema.validate(message, health_schema)
        assert {s["sensorId"]: s["status"] for s in message["sensors"]} == {
            "engine": "ok",
            "cabin": "ok",
        }
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    events = [line.get("event") for line in lines]
    assert "started" in events and "urgent" in events and events[-1] == "stopped"
    status = subprocess.run(
        [PYTHON, "-m", "chantier.cli", "agent", "status", "--config", str(tmp_path / "agent.toml")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert status.returncode == 0, status.stderr
    assert "sensor engine" in status.stdout and "ok" in status.stdout


def test_sigterm_while_the_broker_is_unreachable_exits_0_in_bounds(
    tmp_path: Path, pki: Pki
) -> None:
    never_started = Broker(tmp_path, pki)  # nothing listens on its port
    cert, key = pki.issue("exc-04")
    config = agent_toml(
        tmp_path / "agent.toml",
        broker=never_started,
        thing="exc-04",
        cert=cert,
        key=key,
        state_dir=tmp_path / "state",
        extra="sample_interval_s = 0.05\n",
    )
    process = start_agent(config, tmp_path / "agent.log")
    try:
        assert wait_until(lambda: (tmp_path / "state" / "queue.db").exists(), 15)
        time.sleep(1.5)
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    assert time.monotonic() - started < 8
    status = subprocess.run(
        [PYTHON, "-m", "chantier.cli", "agent", "status", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert json.loads(status.stdout)["depth"] > 10  # every reading taken is still on disk
