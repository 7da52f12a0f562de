"""kill -9 of the whole `chantier stack up` at a random moment of a run, then `chantier stack
up` again in the same state folder: the agents keep running and every reading they took lands
in S3, in exactly one object (a batch delivered again finds its object there)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import boto3
import pytest
from support.alert_stack import wait_for
from support.stack_process import stack_up
from support.survival import (
    check_every_reading_landed_once,
    provisioned_fleet,
    wait_for_landings,
)

from cloud.local.stackinfo import pid_alive
from device import sending as sending_module

pytestmark = [pytest.mark.functional, pytest.mark.timeout(300)]
SITE = "crash-site"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents refused while the new stack comes up retry within a second, not minutes."""
    monkeypatch.setattr(sending_module, "REFUSED_BACKOFF_S", (0.2, 1.0))


def test_every_reading_lands_once_across_a_kill_9_of_the_whole_stack(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"KILL_SEED={seed}")  # shown with a failure: the same moments again
    state, log = tmp_path / "state", tmp_path / "stack.log"
    first, info = stack_up(state, log)
    second = None
    try:
        with provisioned_fleet(state, info, SITE, 3, seed) as fleet:
            time.sleep(rng.uniform(1.0, 4.0))
            killed_ms = int(time.time() * 1000)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            # Mosquitto gets SIGTERM when the stack dies and saves its queue before leaving.
            assert wait_for(lambda: not pid_alive(info.broker_pid), 20), "mosquitto outlived it"
            time.sleep(rng.uniform(0.0, 2.0))  # devices find no broker meanwhile
            second, again = stack_up(state, log)
            assert again.broker_port == info.broker_port, "devices would not find the broker"
            behind = fleet.wait_back(60, since_ms=killed_ms)
            assert not behind, (
                f"agents not reconnected and drained 60 s after the stack came back "
                f"(seed {seed}): {behind}"
            )
            assert fleet.settle(), (
                f"agents kept readings after the stack came back (seed {seed}): "
                f"{[a.stats() for a in fleet.agents]}"
            )
        s3 = boto3.client("s3", **again.boto3_kwargs("s3"))
        # Bounded: a lost reading fails the check below, after at most this wait.
        wait_for_landings(s3, again.raw_bucket, SITE, fleet, 30)
        figures = check_every_reading_landed_once(s3, again.raw_bucket, SITE, fleet)
        print(f"seed {seed}: {figures}")
        assert figures["taken"] > 50, figures
        assert "3 thing(s) registered again" in log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
