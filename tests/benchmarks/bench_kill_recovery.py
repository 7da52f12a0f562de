"""Readings lost when the local stack is killed under a running fleet, and how long it is away.

Run: .venv/bin/python tests/benchmarks/bench_kill_recovery.py [--scenario broker|stack|both]
     [--rounds 5] [--devices 3] [--seed N]
Prints one line per round and the totals (docs/performance.md records them).

Each round starts `chantier stack up` in a fresh folder as its own process, provisions
`--devices` machines and runs the real agent for each in this process, fast (20 readings/s per
sensor, a batch every 0.3 s), then kills at random moments:
- broker: Mosquitto, with SIGKILL, three times 0.5-2 s apart (the stack restarts it);
- stack: the whole `chantier stack up`, with SIGKILL, once after 1-4 s, then `chantier stack up`
  again in the same folder 0-2 s later.
The agents keep running throughout; they are stopped once they hold nothing unacknowledged.
Lost = readings taken minus readings found in the bucket's objects; a batch that landed twice
is one object with more than one version ("re-sent").
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
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import boto3  # noqa: E402
from support.alert_stack import wait_for  # noqa: E402
from support.stack_process import stack_up  # noqa: E402
from support.survival import Fleet, landed_readings  # noqa: E402

from cloud.local.provisioning import provision_local_fleet  # noqa: E402
from cloud.local.stackinfo import StackInfo, pid_alive  # noqa: E402
from commands.simulator.fleet import Machine, agent_config  # noqa: E402
from device import sending  # noqa: E402
from provisioning.service import DeviceSpec  # noqa: E402

SITE = "kill-site"


def _kill_broker(state: Path, rng: random.Random) -> None:
    for _ in range(3):
        time.sleep(rng.uniform(0.5, 2.0))
        old = StackInfo.read(state).broker_pid
        os.kill(old, signal.SIGKILL)  # the stack restarts it and records its new pid
        wait_for(lambda o=old: StackInfo.read(state).broker_pid not in (0, o), 20, poll_s=0.05)


def one_round(scenario: str, devices: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="bench-kill-"))
    state, log = folder / "state", folder / "stack.log"
    processes = []
    try:
        process, info = stack_up(state, log)
        processes.append(process)
        specs = [DeviceSpec(f"gen-{i:02d}", SITE, "generator") for i in range(1, devices + 1)]
        handle = SimpleNamespace(info=info)
        configs = [
            agent_config(
                Machine(d.thing, d.site, d.equipment, d.bundle_dir),
                handle,  # type: ignore[arg-type]
                seed=seed + index,
                batch_age_s=0.3,
            )
            for index, d in enumerate(provision_local_fleet(specs, state_dir=state))
        ]
        away = 0.0
        with Fleet(configs) as fleet:
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
            time.sleep(2.0)
            settled = fleet.settle(60)
        info = StackInfo.read(state)
        s3 = boto3.client("s3", **info.boto3_kwargs())
        time.sleep(2.0)  # the rules engine finishes what the broker still held
        taken = landed = objects = versions = 0
        for agent in fleet.agents:
            readings, versions_of_thing = landed_readings(
                s3, info.raw_bucket, SITE, agent.config.thing
            )
            taken += agent.stats()["readings"]
            landed += len(readings)
            versions += versions_of_thing
            prefix = f"raw/site={SITE}/thing={agent.config.thing}/"
            objects += s3.list_objects_v2(Bucket=info.raw_bucket, Prefix=prefix)["KeyCount"]
        return {
            "scenario": scenario,
            "seed": seed,
            "taken": taken,
            "landed": landed,
            "lost": taken - landed,
            "objects": objects,
            "resent": versions - objects,
            "settled": settled,
            "away_s": round(away, 1),
        }
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(60)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["broker", "stack", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="first round's seed")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the agents say every lost connection; the figures matter
    # Agents refused while the engine subscribes again retry within a second, not minutes.
    sending.REFUSED_BACKOFF_S = (0.2, 1.0)
    first = args.seed if args.seed is not None else random.randrange(1_000_000)
    scenarios = ["broker", "stack"] if args.scenario == "both" else [args.scenario]
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
