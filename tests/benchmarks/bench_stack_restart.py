"""How long `chantier stack up` takes in a used state folder, by how many things it registers
again from their bundles (moto's registry is in memory; the bundles are on disk).

Run: .venv/bin/python tests/benchmarks/bench_stack_restart.py [--things 0,100,500,1000]
Prints figures only (docs/performance.md records them): for each count, the start of a stack
in a fresh folder, the provisioning of that many machines (`chantier simulate`'s bundles), a
clean stop, then the start of a stack in the same folder (what a restart, or a restart after
a kill -9, costs before devices can publish again).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from cloud.local.provisioning import provision_local_fleet  # noqa: E402
from cloud.local.stack import LocalStack  # noqa: E402
from provisioning.service import DeviceSpec  # noqa: E402


def measure(things: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    state = folder / "state"
    try:
        start = time.perf_counter()
        with LocalStack(state):
            fresh_s = time.perf_counter() - start
            specs = [DeviceSpec(f"gen-{i:04d}", "bench-site", "generator") for i in range(things)]
            start = time.perf_counter()
            provision_local_fleet(specs, state_dir=state)
            provision_s = time.perf_counter() - start
        start = time.perf_counter()
        with LocalStack(state) as again:
            restart_s = time.perf_counter() - start
            restored = len(again.restored_things)
        return {
            "things": things,
            "fresh_s": fresh_s,
            "provision_s": provision_s,
            "restart_s": restart_s,
            "restored": restored,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", default="0,100,500,1000", help="comma-separated counts")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{'things':>7} {'fresh start':>12} {'provisioning':>13} {'restart':>9} {'restored':>9}")
    for count in (int(n) for n in args.things.split(",")):
        m = measure(count)
        print(
            f"{m['things']:>7} {m['fresh_s']:>11.1f}s {m['provision_s']:>12.1f}s "
            f"{m['restart_s']:>8.1f}s {m['restored']:>9}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
