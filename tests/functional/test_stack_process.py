"""`chantier stack up` as a process: SIGKILL leaves no orphan and no file that blocks the next."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.alert_stack import wait_for
from support.stack_process import chantier, stack_up

from cloud.local.stackinfo import pid_alive

pytestmark = [pytest.mark.functional, pytest.mark.timeout(180)]


def test_sigkill_of_the_stack_ends_its_children_and_the_next_start_replaces_its_file(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    log = tmp_path / "stack.log"
    first, info = stack_up(state, log)
    try:
        assert pid_alive(info.broker_pid) and pid_alive(info.moto_pid)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert wait_for(lambda: not pid_alive(info.broker_pid), 10), "mosquitto outlived it"
        assert wait_for(lambda: not pid_alive(info.moto_pid), 10), "moto outlived it"

        status = subprocess.run(
            chantier("stack", "status", "--state-dir", str(state)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 1
        assert "not running" in status.stderr and str(info.pid) in status.stderr

        second, again = stack_up(state, log)
        try:
            assert again.pid == second.pid != info.pid
            assert "replacing" in log.read_text()
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0
        assert not (state / "stack.json").exists()
        assert not pid_alive(again.broker_pid) and not pid_alive(again.moto_pid)
    finally:
        if first.poll() is None:
            first.kill()


def test_a_stale_file_s_leftover_broker_is_ended(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # A process standing for a broker that survived its stack (no parent-death signal).
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "mosquitto"],
        stdin=subprocess.DEVNULL,
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    stale = {
        "state_dir": str(state),
        "aws_endpoint": "http://127.0.0.1:9",
        "broker_host": "127.0.0.1",
        "broker_port": 9,
        "ca_file": str(state / "ca.pem"),
        "raw_bucket": "b",
        "alerts_table": "a",
        "readings_table": "r",
        "runs_table": "u",
        "rule_name": "chantier_telemetry",
        "broker_pid": leftover.pid,
        "pid": dead.pid,
    }
    (state / "stack.json").write_text(json.dumps(stale))
    log = tmp_path / "stack.log"
    try:
        process, info = stack_up(state, log)
        try:
            # asked to stop first (a broker saves its queue), killed if it does not
            assert leftover.wait(20) in (-signal.SIGTERM, -signal.SIGKILL)
            assert "ended its leftover mosquitto" in log.read_text()
            assert info.pid == process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    finally:
        if leftover.poll() is None:
            os.kill(leftover.pid, signal.SIGKILL)
