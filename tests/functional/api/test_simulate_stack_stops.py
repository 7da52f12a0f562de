"""`chantier simulate` when the local stack stops under it: it says so and ends, no traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from support.alert_stack import wait_for
from support.stack_process import chantier, stack_up

pytestmark = pytest.mark.functional
LANDED = re.compile(r"[1-9][0-9]* landed in S3")  # a progress line once data flows


def test_a_run_whose_stack_stops_ends_at_once_and_says_why(tmp_path: Path) -> None:
    state = tmp_path / "state"
    stack, info = stack_up(state, tmp_path / "stack.log")
    sim_out = tmp_path / "simulate.out"
    try:
        with sim_out.open("wb") as out:
            simulate = subprocess.Popen(
                chantier(
                    "simulate", "--state-dir", str(state), "--devices", "2", "--duration", "300"
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            assert wait_for(lambda: LANDED.search(sim_out.read_text()), 90, poll_s=0.2), (
                sim_out.read_text()[-3000:]
            )
            stack.send_signal(signal.SIGTERM)
            stack.wait(timeout=60)
            # The run was for 300 s: it ends within a progress tick and the agents' stop.
            code = simulate.wait(timeout=60)
        finally:
            if simulate.poll() is None:
                simulate.kill()
                simulate.wait(timeout=10)
    finally:
        if stack.poll() is None:
            os.kill(stack.pid, signal.SIGKILL)
            stack.wait(timeout=10)
    text = sim_out.read_text()
    assert code == 1, text
    assert f"the local stack (process {info.pid}) stopped during the run" in text, text
    assert "before the stack stopped; not checked again" in text, text
    assert "Traceback" not in text, text
