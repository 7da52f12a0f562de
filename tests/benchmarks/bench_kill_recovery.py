"""Readings lost when the local stack is killed under a running fleet, and how long it is away.

Run: .venv/bin/python tests/benchmarks/bench_kill_recovery.py
     [--scenario broker|engine|stack|all] [--rounds 5] [--devices 3] [--seed N]
Prints one line per round and the totals (docs/performance.md records them).

Each round starts a stack in a fresh folder, provisions `--devices` machines and runs the real
agent for each in this process, fast (20 readings/s per sensor, a batch every 0.3 s), then
breaks the stack at random moments:
- broker: Mosquitto, with SIGKILL, three times 0.5-2 s apart (the stack restarts it);
- engine: the rules engine's connection to Mosquitto, cut three times 0.3-1.5 s apart (the
  stack runs in this process, so that its socket can be reached);
- stack: the whole `chantier stack up` (its own process), with SIGKILL, once after 1-4 s, then
  `chantier stack up` again in the same folder 0-2 s later.
The agents keep running throughout; they are stopped once they hold nothing unacknowledged,
then the round waits (up to 30 s) for the rules engine to land what the broker still held.
Lost = readings taken minus readings found in the bucket's objects; "re-sent" counts versions
beyond one per object (the ingest function writes a byte-identical re-delivery no more).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import boto3  # noqa: E402
from support.alert_stack import wait_for  # noqa: E402
from support.stack_process import stack_up  # noqa: E402
from support.survival import (  # noqa: E402
    EngineConnection,
    Fleet,
    landed_readings,
    provisioned_fleet,
    wait_for_landings,
)

from cloud.local.stack import LocalStack  # noqa: E402
from cloud.local.stackinfo import StackInfo, pid_alive  # noqa: E402
from device import sending  # noqa: E402

SITE = "kill-site"


def _kill_broker(state: Path, rng: random.Random) -> None:
    for _ in range(3):
        time.sleep(rng.uniform(0.5, 2.0))
        old = StackInfo.read(state).broker_pid
        os.kill(old, signal.SIGKILL)  # the stack restarts it and records its new pid
        wait_for(lambda o=old: StackInfo.read(state).broker_pid not in (0, o), 20, poll_s=0.05)


def _count(info: StackInfo, fleet: Fleet) -> dict[str, int]:
    s3 = boto3.client("s3", **info.boto3_kwargs("s3"))
    wait_for_landings(s3, info.raw_bucket, SITE, fleet, 30)
    taken = landed = objects = versions = 0
    for agent in fleet.agents:
        readings, versions_of_thing = landed_readings(s3, info.raw_bucket, SITE, agent.config.thing)
        taken += agent.stats()["readings"]
        landed += len(readings)
        versions += versions_of_thing
        prefix = f"raw/site={SITE}/thing={agent.config.thing}/"
        objects += s3.list_objects_v2(Bucket=info.raw_bucket, Prefix=prefix)["KeyCount"]
    return {
        "taken": taken,
        "landed": landed,
        "lost": taken - landed,
        "objects": objects,
        "resent": versions - objects,
    }


def engine_round(state: Path, devices: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with LocalStack(state) as stack:
        assert stack.info is not None
        engine = EngineConnection(stack)
        with provisioned_fleet(state, stack.info, SITE, devices, seed) as fleet:
            for _ in range(3):
                time.sleep(rng.uniform(0.3, 1.5))
                engine.cut(20)
            settled = fleet.settle(60)
        return {**_count(stack.info, fleet), "settled": settled, "away_s": 0.0}


def process_round(scenario: str, state: Path, log: Path, devices: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    processes = []
    try:
        process, info = stack_up(state, log)
        processes.append(process)
        away = 0.0
        with provisioned_fleet(state, info, SITE, devices, seed) as fleet:
            if scenario == "broker":
                _kill_broker(state, rng)
            else:
                time.sleep(rng.uniform(1.0, 4.0))
                killed = time.monotonic()
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                wait_for(lambda: not pid_alive(info.broker_pid), 20)
                time.sleep(rng.uniform(0.0, 2.0))
                process, info = stack_up(state, log)
                processes.append(process)
                away = time.monotonic() - killed
            settled = fleet.settle(60)
        return {
            **_count(StackInfo.read(state), fleet),
            "settled": settled,
            "away_s": round(away, 1),
        }
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(60)


def one_round(scenario: str, devices: int, seed: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-kill-"))
    state, log = folder / "state", folder / "stack.log"
    try:
        if scenario == "engine":
            result = engine_round(state, devices, seed)
        else:
            result = process_round(scenario, state, log, devices, seed)
        return {"scenario": scenario, "seed": seed, **result}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["broker", "engine", "stack", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="first round's seed")
    args = parser.parse_args()
    # The agents say every lost connection and refusal (errors); the figures are what matter.
    logging.disable(logging.ERROR)
    # Agents refused while the engine subscribes again retry within a second, not minutes.
    sending.REFUSED_BACKOFF_S = (0.2, 1.0)
    first = args.seed if args.seed is not None else random.randrange(1_000_000)
    scenarios = ["broker", "engine", "stack"] if args.scenario == "all" else [args.scenario]
    totals: dict[str, dict[str, int]] = {}
    for scenario in scenarios:
        total = totals.setdefault(scenario, {"rounds": 0, "taken": 0, "lost": 0, "resent": 0})
        for index in range(args.rounds):
            result = one_round(scenario, args.devices, first + index)
            print(json.dumps(result), flush=True)
            total["rounds"] += 1
            for name in ("taken", "lost", "resent"):
                total[name] += result[name]
    for scenario, total in totals.items():
        print(
            f"{scenario}: {total['rounds']} rounds, {total['taken']} readings taken, "
            f"{total['lost']} lost, {total['resent']} batches re-sent (versions)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
