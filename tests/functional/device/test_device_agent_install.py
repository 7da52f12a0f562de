"""The agent install a Pi gets (the wheel without extras) runs the agent without boto3.

The venv is fresh (no system site-packages) and holds the wheel; its dependencies are the
closure of what the wheel declares for the base install, linked from this environment, so the
test needs no download and fails if the agent imports anything the base install lacks.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from functional.device.device_broker import Broker, Collector, Pki, agent_toml, wait_until
from support.installs import (
    build_wheel,
    closure,
    link_distributions,
    venv_with_wheel,
    wheel_requirements,
)

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

EMULATED = '[[sensors]]\nname = "engine"\ndriver = "bme280"\nbus = "emulated"\naddress = 0x76\n'
NOT_IN_AGENT_INSTALL = ("boto3", "botocore", "aws_lambda_powertools", "pydantic", "cryptography")


@pytest.fixture(scope="module")
def agent_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agent-install")
    wheel = build_wheel(root / "dist")
    dependencies = closure(wheel_requirements(wheel))
    link_distributions(dependencies, root / "dependencies")
    return venv_with_wheel(root, wheel, root / "dependencies")


def chantier(agent_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(agent_bin / "chantier"), *args], capture_output=True, text=True, timeout=60
    )


def test_the_agent_install_leaves_out_the_cloud_and_the_admin_libraries(agent_bin: Path) -> None:
    for module in NOT_IN_AGENT_INSTALL:
        found = subprocess.run(
            [str(agent_bin / "python"), "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert found.returncode == 1 and "ModuleNotFoundError" in found.stderr, module


def test_agent_commands_run_in_the_agent_install(agent_bin: Path, tmp_path: Path, pki: Pki) -> None:
    helped = chantier(agent_bin, "agent", "--help")
    assert helped.returncode == 0 and "check-config" in helped.stdout
    cert, key = pki.issue("exc-01")
    _, stray_key = pki.issue("exc-02")
    config = tmp_path / "agent.toml"
    config.write_text(
        'thing = "exc-01"\nsite = "lyon"\nequipment = "excavator"\nendpoint = "127.0.0.1"\n'
        f'cert = "{cert}"\nkey = "{key}"\nca = "{pki.ca_path}"\n'
        f'state_dir = "{tmp_path / "state"}"\nclock_sync = "assume-synced"\n{EMULATED}'
    )
    checked = chantier(agent_bin, "agent", "check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "thing exc-01" in checked.stdout
    assert "engine (BME280 0x76 on emulated bus)" in checked.stdout
    # without cryptography, OpenSSL still tells a key that is not the certificate's
    assert "lacks the cryptography library" in checked.stdout
    config.write_text(config.read_text().replace(str(key), str(stray_key)))
    checked = chantier(agent_bin, "agent", "check-config", "--config", str(config))
    assert checked.returncode == 1
    assert f"error: private key {stray_key} does not match certificate {cert}" in checked.stderr


def test_other_roles_commands_say_which_install_they_need(agent_bin: Path) -> None:
    helped = chantier(agent_bin, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "chantier-connecte[admin]" in helped.stdout
    refused = chantier(agent_bin, "provision", "list")
    assert refused.returncode == 2
    assert "lacks the cryptography package" in refused.stderr
    assert "pip install 'chantier-connecte[admin]'" in refused.stderr
    keygen = chantier(agent_bin, "agent", "keygen", "--thing", "exc-01", "--out", "/nonexistent")
    assert keygen.returncode == 1
    assert "chantier-connecte[keygen]" in keygen.stderr


def test_the_agent_install_publishes_to_a_tls_broker_and_stops_on_sigterm(
    agent_bin: Path, tmp_path: Path, broker: Broker, pki: Pki, collector: Collector
) -> None:
    cert, key = pki.issue("exc-04")
    config = agent_toml(
        tmp_path / "agent.toml",
        broker=broker,
        thing="exc-04",
        cert=cert,
        key=key,
        state_dir=tmp_path / "state",
        extra="sample_interval_s = 0.1\nbatch_max_age_s = 1\n",
        sensors=EMULATED,
    )
    with open(tmp_path / "agent.log", "wb") as log:
        process = subprocess.Popen(
            [str(agent_bin / "chantier"), "agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        assert wait_until(lambda: len(collector.telemetry()) >= 1, 30), (
            tmp_path / "agent.log"
        ).read_text()[-2000:]
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    (_, message), *_ = collector.telemetry()
    assert message["thing"] == "exc-04" and message["readings"][0]["sensorId"] == "engine"
