"""How long `chantier stack up` takes in a used state folder, by how many things it registers
again from their bundles and how many objects it puts back from the raw mirror (moto keeps
both in memory; the bundles and the mirror are on disk).

Run: .venv/bin/python tests/benchmarks/bench_stack_restart.py [--things 0,100,500,1000]
     [--objects 10000,100000] [--size 2048]
Prints figures only (docs/performance.md records them): for each count of things, the start of
a stack in a fresh folder, the provisioning of that many machines (`chantier simulate`'s
bundles), a clean stop, then the start of a stack in the same folder (what a restart, or a
restart after a kill -9, costs before devices can publish again). For each count of objects,
the same with no things and that many raw batches of `--size` bytes in the mirror (a 60 s
batch of the `live` profile is about 2 KB), as a state folder used for days holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from chantier.s3keys import raw_key  # noqa: E402
from cloud.local.lake import lake_dir  # noqa: E402
from cloud.local.provisioning import provision_local_fleet  # noqa: E402
from cloud.local.stack import LocalStack  # noqa: E402
from provisioning.service import DeviceSpec  # noqa: E402


def _mirror(state: Path, bucket: str, objects: int, size: int) -> None:
    """`objects` raw batches of about `size` bytes in the stack's mirror, over 100 machines."""
    reading = {"sensorId": "engine", "ts": 0, "temperature": 71.5, "humidity": 40.0}
    count = max(1, (size - 200) // len(json.dumps(reading)))
    for n in range(objects):
        thing, seq = f"gen-{n % 100:04d}", n // 100
        sent = 1_763_733_600_000 + seq * 60_000
        body = json.dumps({"thing": thing, "seq": seq, "readings": [reading] * count})
        path = lake_dir(state) / bucket / raw_key("bench-site", thing, sent, "b00tb00t", seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)


def measure(things: int, objects: int = 0, size: int = 2048) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    state = folder / "state"
    try:
        start = time.perf_counter()
        with LocalStack(state) as first:
            fresh_s = time.perf_counter() - start
            assert first.info is not None
            _mirror(state, first.info.raw_bucket, objects, size)
            specs = [DeviceSpec(f"gen-{i:04d}", "bench-site", "generator") for i in range(things)]
            start = time.perf_counter()
            provision_local_fleet(specs, state_dir=state)
            provision_s = time.perf_counter() - start
        start = time.perf_counter()
        with LocalStack(state) as again:
            restart_s = time.perf_counter() - start
            restored = len(again.restored_things)
            assert again.info is not None
            pages = again.client("s3").get_paginator("list_objects_v2")
            in_bucket = sum(p["KeyCount"] for p in pages.paginate(Bucket=again.info.raw_bucket))
        return {
            "things": things,
            "objects": objects,
            "fresh_s": fresh_s,
            "provision_s": provision_s,
            "restart_s": restart_s,
            "restored": restored,
            "in_bucket": in_bucket,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", default="0,100,500,1000", help="comma-separated counts")
    parser.add_argument("--objects", default="10000,100000", help="comma-separated counts")
    parser.add_argument("--size", type=int, default=2048, help="bytes per mirrored object")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(
        f"{'things':>7} {'objects':>8} {'fresh start':>12} {'provisioning':>13} {'restart':>9} "
        f"{'things back':>12} {'objects back':>13}"
    )
    cases = [(int(n), 0) for n in args.things.split(",") if n]
    cases += [(0, int(n)) for n in args.objects.split(",") if n]
    for things, objects in cases:
        m = measure(things, objects, args.size)
        print(
            f"{m['things']:>7} {m['objects']:>8} {m['fresh_s']:>11.1f}s "
            f"{m['provision_s']:>12.1f}s {m['restart_s']:>8.1f}s {m['restored']:>12} "
            f"{m['in_bucket']:>13}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
