"""The demo as a user runs it: the `chantier` command, its output and its exit code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
CHANTIER = Path(sys.executable).with_name("chantier")


def _run(args: list[str], tmp_path: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHANTIER), *args, "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


FAULT_ALERTS = {
    "overheat": "exc-01/engine/engine-overheat",
    "freeze": "mixer-01/drum/freeze-risk",
    "condensation": "cabin-01/ambient/condensation",
    "sensor failure": "gen-01/enclosure/sensor-fault-reported",
    "network cut": "crane-01/*/offline",
}


def test_demo_shows_every_fault_explained_and_a_summary(tmp_path: Path) -> None:
    result = _run(["demo", "--seed", "11"], tmp_path, 400)
    out = result.stdout
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"provisioned exc-01 \(excavator\)", out)
    assert re.search(r"-> crane-01 published batch \d+", out)
    assert re.search(r"<- landed s3://…/raw/site=demo-lyon/thing=gen-01/date=\d{4}-\d\d-\d\d/", out)
    for name, alert in FAULT_ALERTS.items():
        # explained as it starts, its alert opens and clears, the summary says so
        assert re.search(rf"\*\* {name} on {alert.split('/')[0]}", out), name
        assert f"alert {alert}: NORMAL -> ACTIVE" in out, name
        assert re.search(rf"{re.escape(alert)}: opened at \d+ s, cleared at \d+ s", out), name
    assert "crane-01 disconnected" in out and "network cut on crane-01 is over" in out
    summary = out[out.index("summary") :]
    published = int(re.search(r"batches published (\d+)", summary).group(1))  # type: ignore[union-attr]
    acked = int(re.search(r"acknowledged (\d+)", summary).group(1))  # type: ignore[union-attr]
    landed = int(re.search(r"raw objects in S3 (\d+)", summary).group(1))  # type: ignore[union-attr]
    assert published > 30 and acked == published and landed == acked
    # The stack left nothing running and removed its description file.
    assert not (tmp_path / "state" / "stack.json").exists()
    # Private keys are 0600 (the CA's, the broker's and each device's).
    keys = list((tmp_path / "state").rglob("*.key"))
    assert keys and all(k.stat().st_mode & 0o077 == 0 for k in keys)


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(CHANTIER), "demo", "--duration", "120", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        seen = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            seen += line
            if "machines running" in line:
                break
        assert "machines running" in seen, seen
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert "summary" in out, out + err
    assert process.returncode in (0, 1)
    assert not (tmp_path / "state" / "stack.json").exists()
    broker_pid = tmp_path / "state" / "broker" / "mosquitto.pid"
    if broker_pid.exists():
        pid = int(broker_pid.read_text().strip() or 0)
        assert pid == 0 or not Path(f"/proc/{pid}").exists(), "mosquitto still runs"


def test_keep_leaves_the_stack_and_dashboard_up_until_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [str(CHANTIER), "demo", "--devices", "1", "--duration", "3", "--keep",
         "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        seen = ""
        while time.monotonic() < deadline and "stays up" not in seen:
            seen += process.stdout.readline()
        assert "summary" in seen and "stays up (--keep)" in seen, seen
        status = _run(["stack", "status"], tmp_path, 30)
        assert status.returncode == 0 and "dashboard" in status.stdout, status.stderr
        time.sleep(2)
        assert process.poll() is None, "the demo ended though --keep was given"
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode in (0, 1)
    assert not (state / "stack.json").exists()
