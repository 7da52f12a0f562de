"""The shipped systemd unit: its sandbox rating, the files it names, the agent under its limits."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest
from functional.device.device_broker import (
    PYTHON,
    REPO,
    Broker,
    Collector,
    Pki,
    agent_toml,
    wait_until,
)
from support.installs import build_wheel

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

UNIT = REPO / "device" / "systemd" / "chantier-agent.service"
VENV_ON_PI = "/opt/chantier/venv/"
MAX_EXPOSURE = 3.0
# prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): what MemoryDenyWriteExecute=yes enforces
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_exposure_is_at_most_3(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    shutil.copy(UNIT, unit)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_wheel_installs_the_documentation_the_unit_names(tmp_path: Path) -> None:
    """Documentation= and the install guide's unit path exist once the wheel is installed."""
    unit_text = UNIT.read_text()
    documentation = re.search(r"^Documentation=file:(\S+)$", unit_text, re.MULTILINE)
    assert documentation and documentation.group(1).startswith(VENV_ON_PI)
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        data = {
            name.split(".data/data/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if ".data/data/" in name
        }
    documented = documentation.group(1).removeprefix(VENV_ON_PI)
    assert data[documented] == (REPO / "docs" / "field-install.md").read_bytes()
    assert data["share/chantier-agent/chantier-agent.service"] == UNIT.read_bytes()
    guide = (REPO / "docs" / "field-install.md").read_text()
    assert VENV_ON_PI + "share/chantier-agent/chantier-agent.service" in guide


SET_MDWE = f"ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0)"


def _mdwe_available() -> bool:
    probe = subprocess.run([PYTHON, "-c", f"import ctypes, sys; sys.exit({SET_MDWE})"], timeout=30)
    return probe.returncode == 0


def test_agent_publishes_with_write_execute_memory_refused(
    tmp_path: Path, broker: Broker, pki: Pki, collector: Collector
) -> None:
    """MemoryDenyWriteExecute=yes holds for the whole agent: TLS client, SQLite, I2C driver."""
    if not _mdwe_available():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or newer)")
    cert, key = pki.issue("exc-08")
    config = agent_toml(
        tmp_path / "agent.toml",
        broker=broker,
        thing="exc-08",
        cert=cert,
        key=key,
        state_dir=tmp_path / "state",
        extra="sample_interval_s = 0.1\nbatch_max_age_s = 1\nhealth_interval_s = 1\n",
        sensors='[[sensors]]\nname = "engine"\ndriver = "bme280"\nbus = "emulated"\n',
    )
    under_mdwe = (
        "import ctypes, runpy, sys\n"
        f"if {SET_MDWE}:\n"
        "    sys.exit('PR_SET_MDWE refused')\n"
        "sys.argv = ['chantier', 'agent', 'run', '--config', sys.argv[1]]\n"
        "runpy.run_module('chantier.cli', run_name='__main__')\n"
    )
    log = tmp_path / "agent.log"
    with open(log, "wb") as err:
        process = subprocess.Popen([PYTHON, "-c", under_mdwe, str(config)], stderr=err, cwd=REPO)
    try:
        assert wait_until(
            lambda: len(collector.telemetry()) >= 2 and len(collector.health()) >= 1, 30
        ), log.read_text()[-2000:]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log.read_text()[-2000:]
