"""`chantier agent run` as a technician meets it when something is wrong: each failure is one
warning line with its cause and what to check, `agent status` shows it, a stop is clean."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
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
from support.field_guide import row_for

from cloud.local.processes import free_port
from device.clock import kernel_synced, systemd_synced

pytestmark = [pytest.mark.functional, pytest.mark.timeout(90)]


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def events(log: Path, event: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(log) if line.get("event") == event]


def status(config: Path, *extra: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "chantier.cli", "agent", "status", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def in_the_guide(line: dict[str, Any]) -> bool:
    """The journal line has its row in docs/field-install.md's troubleshooting table."""
    return row_for(line["event"], line["message"]) is not None


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0, log.read_text()[-2000:]
    warnings = [line for line in log_lines(log) if line["level"] in ("WARNING", "ERROR")]
    assert not [w for w in warnings if "USER_REQUESTED_STOP" in json.dumps(w)]


def test_wrong_port_is_said_at_the_first_attempt(tmp_path: Path, pki: Pki) -> None:
    cert, key = pki.issue("exc-11")
    nobody = Broker(tmp_path, pki, port=free_port())  # never started
    config = agent_toml(
        tmp_path / "agent.toml", broker=nobody, thing="exc-11", cert=cert, key=key,
        state_dir=tmp_path / "state", extra="sample_interval_s = 0.2\n",
    )  # fmt: skip
    log = tmp_path / "agent.log"
    process = start_agent(config, log)
    try:
        assert wait_until(lambda: bool(events(log, "connect-failed")), 20), log.read_text()
        assert wait_until(lambda: "cannot connect" in status(config), 15)
        shown = status(config)
    finally:
        stop(process, log)
    (line,) = events(log, "connect-failed")
    assert line["level"] == "WARNING"
    assert line["message"].startswith(
        f"cannot connect to 127.0.0.1:{nobody.port}: connection refused: nothing accepts "
        f"connections on 127.0.0.1:{nobody.port}; check port (8883 for MQTT over TLS) and endpoint"
    )
    assert line["error"] == "AWS_IO_SOCKET_CONNECTION_REFUSED" and in_the_guide(line)
    assert f"connection       cannot connect to 127.0.0.1:{nobody.port} since " in shown
    assert "last error       " in shown and "AWS_IO_SOCKET_CONNECTION_REFUSED" in shown


def test_revoked_certificate_is_named_as_a_likely_cause(tmp_path: Path, pki: Pki) -> None:
    broker = Broker(tmp_path, pki, crl=True)
    cert, key = pki.issue("exc-12")
    pki.ca.revoke(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number)
    broker.start()
    try:
        config = agent_toml(
            tmp_path / "agent.toml", broker=broker, thing="exc-12", cert=cert, key=key,
            state_dir=tmp_path / "state", extra="sample_interval_s = 0.2\n",
        )  # fmt: skip
        log = tmp_path / "agent.log"
        process = start_agent(config, log)
        try:
            assert wait_until(lambda: bool(events(log, "connect-failed")), 30), log.read_text()
        finally:
            stop(process, log)
    finally:
        broker.stop()
    (line,) = events(log, "connect-failed")
    assert line["level"] == "WARNING"
    # TLS 1.3 says "refused" during or just after the handshake, depending on timing
    assert "accept this device's certificate" in line["message"]
    assert "whether the certificate was revoked or deactivated" in line["message"]
    assert "chantier provision show exc-12" in line["message"] and in_the_guide(line)
    assert not events(log, "connected")


def test_key_that_does_not_match_stops_the_start_with_one_clear_line(
    tmp_path: Path, pki: Pki
) -> None:
    cert, _ = pki.issue("exc-13")
    _, other_key = pki.issue("exc-14")
    config = agent_toml(
        tmp_path / "agent.toml", broker=Broker(tmp_path, pki), thing="exc-13", cert=cert,
        key=other_key, state_dir=tmp_path / "state",
    )  # fmt: skip
    log = tmp_path / "agent.log"
    process = start_agent(config, log)
    assert process.wait(30) == 1
    (line,) = log_lines(log)
    assert line["level"] == "ERROR" and line["event"] == "start-failed"
    assert line["message"].startswith(
        f"cannot start: private key {other_key} does not match certificate {cert}"
    )
    assert "Traceback" not in log.read_text() and in_the_guide(line)
    checked = subprocess.run(
        [PYTHON, "-m", "chantier.cli", "agent", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert checked.returncode == 1
    assert f"error: private key {other_key} does not match certificate {cert}" in checked.stderr


def _an_unsynchronised_mode() -> str | None:
    """A clock_sync mode that finds this machine's clock unsynchronised, if any does."""
    if not systemd_synced():
        return "systemd"  # no systemd-timesyncd flag (containers, hosts without timesyncd)
    if kernel_synced() is False:
        return "kernel"
    return None


def test_unsynchronised_clock_is_said_and_nothing_leaves(
    tmp_path: Path, broker: Broker, pki: Pki, collector: Collector
) -> None:
    mode = _an_unsynchronised_mode()
    if mode is None:
        pytest.skip("this machine's clock is synchronised for every clock_sync mode")
    cert, key = pki.issue("exc-15")
    config = agent_toml(
        tmp_path / "agent.toml", broker=broker, thing="exc-15", cert=cert, key=key,
        state_dir=tmp_path / "state",
        extra="sample_interval_s = 0.1\nbatch_max_age_s = 0.5\nprofile = \"live\"\n",
    )  # fmt: skip
    config.write_text(config.read_text().replace('"assume-synced"', f'"{mode}"'))
    log = tmp_path / "agent.log"
    process = start_agent(config, log)
    try:
        assert wait_until(lambda: bool(events(log, "clock-not-synced")), 20), log.read_text()
        assert wait_until(lambda: bool(events(log, "connected")), 20)
        time.sleep(2)  # batches would be due four times over by now
        shown = status(config)
        document = json.loads(status(config, "--json"))
    finally:
        stop(process, log)
    (line,) = events(log, "clock-not-synced")
    assert line["level"] == "WARNING"
    assert line["message"].startswith(f"clock not synchronised (clock_sync = {mode}): ")
    assert "nothing is published until then" in line["message"] and in_the_guide(line)
    assert collector.telemetry() == []
    assert f"clock            NOT synchronised (clock_sync = {mode})" in shown
    assert document["clock"]["synced"] is False and document["queue"]["depth"] > 0
