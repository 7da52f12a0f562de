"""The agent as a real process: SIGKILL at random moments, a broker outage; nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from functional.device.device_broker import (
    Broker,
    Collector,
    Pki,
    agent_toml,
    check_delivery,
    queue_snapshot,
    start_agent,
    wait_until,
)

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

FAST = (
    "sample_interval_s = 0.02\nbatch_max_age_s = 0.3\nhealth_interval_s = 2\n"
    "reconnect_min_s = 0.1\nreconnect_max_s = 1\n"
)


def graceful_stop(process: subprocess.Popen[bytes], bound_s: float = 10.0) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(bound_s) == 0, "SIGTERM must end the agent with exit 0"
    return time.monotonic() - started


def started_runs(log: Path) -> int:
    """How many agent runs logged their start (one JSON line each)."""
    return log.read_text().count('"event": "started"') if log.exists() else 0


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def test_sigkill_at_random_moments_loses_nothing(
    tmp_path: Path, broker: Broker, pki: Pki, collector: Collector
) -> None:
    seed = int(os.environ.get("KILL_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    cert, key = pki.issue("exc-01")
    state = tmp_path / "state"
    config = agent_toml(
        tmp_path / "agent.toml",
        broker=broker,
        thing="exc-01",
        cert=cert,
        key=key,
        state_dir=state,
        extra=FAST,
    )
    log = tmp_path / "agent.log"
    on_disk: set = set()
    kills = 20
    for _ in range(kills):
        before = started_runs(log)
        process = start_agent(config, log)
        try:
            if rng.random() < 0.25:
                time.sleep(rng.uniform(0.0, 0.6))  # somewhere in start-up
            else:
                # somewhere in the running agent, whatever the machine's load
                wait_until(lambda before=before: started_runs(log) > before, 15)
                time.sleep(rng.uniform(0.0, 1.0))
        finally:
            kill(process)
        on_disk |= queue_snapshot(state)
    process = start_agent(config, log)
    try:
        # let the last run drain what the killed ones left
        assert wait_until(lambda: len(collector.telemetry()) > kills, 20)
        time.sleep(2.0)
    finally:
        took = graceful_stop(process)
    still = queue_snapshot(state)
    assert took < 8
    batches, readings = check_delivery(collector, on_disk, still)
    assert readings > 100, f"seed {seed}: only {readings} readings arrived"
    assert on_disk - still, "the test never saw a queued reading: it proves nothing"
    print(
        f"seed {seed}: {kills} kills, {batches} batches, {readings} readings, "
        f"{len(on_disk)} seen on disk, {len(still)} left queued"
    )


def test_broker_outage_loses_nothing(
    tmp_path: Path, broker: Broker, pki: Pki, collector: Collector
) -> None:
    cert, key = pki.issue("exc-02")
    state = tmp_path / "state"
    config = agent_toml(
        tmp_path / "agent.toml",
        broker=broker,
        thing="exc-02",
        cert=cert,
        key=key,
        state_dir=state,
        extra=FAST,
    )
    process = start_agent(config, tmp_path / "agent.log")
    try:
        assert wait_until(lambda: len(collector.telemetry()) >= 2, 15)
        broker.stop()
        time.sleep(3.0)
        during = queue_snapshot(state)
        assert len(during) > 100  # readings kept piling up on disk during the outage
        broker.start()
        before = len(collector.telemetry())
        assert wait_until(lambda: len(collector.telemetry()) > before + 2, 20)
        time.sleep(2.0)
    finally:
        graceful_stop(process)
    still = queue_snapshot(state)
    _, readings = check_delivery(collector, during, still)
    assert readings >= len(during - still)
