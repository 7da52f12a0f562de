"""What Mosquitto's persistence costs the local stack, by how much it holds for the rules engine.

Run: .venv/bin/python tests/benchmarks/bench_broker_persistence.py [--queued 0,1000,10000,50000]
     [--size 2048]
Prints figures only (docs/performance.md records them).

Mosquitto writes its whole database (sessions and the messages queued for them) on each save:
every AUTOSAVE_S seconds (cloud/local/broker.py), on SIGUSR1 and on its way out when the stack
stops or dies. In steady state it holds only the messages the rules engine is working on (at
most 100 in flight); it holds more when the engine is away or behind. For each queue length
this starts the local stack, takes the rules engine away (its session stays, as after a
crash), publishes that many messages of `--size` bytes (a 60 s batch of the `live` profile is
about 2 KB, a 15-minute batch at the defaults about 17 KB) from one device, then measures:
- the database's size and one save (SIGUSR1 until the new file is in place: Mosquitto's only
  thread does nothing else meanwhile, so devices wait that long at each autosave);
- a stop (SIGTERM until exit, the save included): what a dying stack leaves it to do;
- a start over that database until the port answers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.localstack import DeviceConnection  # noqa: E402

from chantier.names import topic  # noqa: E402
from cloud.local.broker import AUTOSAVE_S  # noqa: E402
from cloud.local.processes import port_open  # noqa: E402
from cloud.local.stack import LocalStack  # noqa: E402
from commands.simulator.fleet import BASIC_INGEST_PREFIX, provision_machine  # noqa: E402

SITE = "bench-site"
IN_FLIGHT = 100
DEVICES = 10  # one connection acknowledges about 100 QoS 1 publishes a second here


def _wait(condition, timeout_s: float, poll_s: float = 0.001) -> float:  # type: ignore[no-untyped-def]
    """Seconds until `condition()` held; raises on timeout."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"not done after {timeout_s} s")
        time.sleep(poll_s)
    return time.perf_counter() - start


def _publish(device: DeviceConnection, topic_name: str, count: int, size: int) -> float:
    """Publish `count` messages, at most IN_FLIGHT unacknowledged; returns seconds taken."""
    slots = threading.Semaphore(IN_FLIGHT)
    done = threading.Semaphore(0)
    refused: list[object] = []
    body = json.dumps({"pad": "x" * max(0, size - 12)}).encode()

    def on_done(outcome: object) -> None:
        if getattr(outcome, "status", "") != "acked":
            refused.append(outcome)
        slots.release()
        done.release()

    start = time.perf_counter()
    for _ in range(count):
        if not slots.acquire(timeout=30):
            raise TimeoutError("the broker stopped acknowledging")
        device.publisher.publish(topic_name, body, on_done)
    for _ in range(count):
        done.acquire(timeout=30)
    if refused:
        raise RuntimeError(f"{len(refused)} publishes not acknowledged, e.g. {refused[0]}")
    return time.perf_counter() - start


def _publish_from_all(stack: LocalStack, machines: list[Any], count: int, size: int) -> float:
    """`count` messages shared among the machines, each on its own connection at once."""
    share = [count // len(machines) + (i < count % len(machines)) for i in range(len(machines))]
    start = time.perf_counter()
    errors: list[BaseException] = []

    def one(machine: Any, n: int) -> None:
        name = topic(SITE, machine.thing, "telemetry", BASIC_INGEST_PREFIX)
        try:
            with DeviceConnection(stack, machine) as device:
                _publish(device, name, n, size)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=pair) for pair in zip(machines, share, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def measure(queued: int, size: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="bench-persist-"))
    stack = LocalStack(state / "stack")
    try:
        stack.start()
        assert stack.broker is not None and stack.bridge is not None
        machines = [
            provision_machine(stack, f"gen-{i:02d}", SITE, "generator")[0]
            for i in range(1, DEVICES + 1)
        ]
        # The engine goes away; its persistent session stays and collects what devices send.
        stack.bridge.stop()
        stack.bridge = None
        publish_s = _publish_from_all(stack, machines, queued, size)
        broker = stack.broker
        database = broker.files.database
        pid = broker.process.pid

        def saved_after(before: float) -> bool:
            try:
                return database.stat().st_mtime_ns != before
            except FileNotFoundError:
                return False

        before = database.stat().st_mtime_ns if database.exists() else 0.0
        os.kill(pid, signal.SIGUSR1)
        save_s = _wait(lambda: saved_after(before), 120)
        time.sleep(0.2)  # the rename is the last step: let a slow write finish before sizing
        size_mb = database.stat().st_size / 1e6
        os.kill(pid, signal.SIGTERM)
        stop_s = _wait(lambda: broker.process.exited() is not None, 120)
        start = time.perf_counter()
        broker.restart()
        load_s = time.perf_counter() - start
        assert port_open(broker.port)
        return {
            "queued": queued,
            "publish_s": publish_s,
            "db_mb": size_mb,
            "save_s": save_s,
            "stop_s": stop_s,
            "load_s": load_s,
        }
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", default="0,1000,10000,50000", help="comma-separated counts")
    parser.add_argument("--size", type=int, default=2048, help="bytes per message")
    args = parser.parse_args()
    print(f"Mosquitto persistence, autosave every {AUTOSAVE_S} s, messages of {args.size} B")
    print(
        f"{'queued':>8} {'db MB':>8} {'one save':>10} {'stop':>8} {'start':>8} {'published in':>13}"
    )
    for queued in (int(n) for n in args.queued.split(",")):
        m = measure(queued, args.size)
        print(
            f"{m['queued']:>8} {m['db_mb']:>8.1f} {m['save_s'] * 1000:>8.0f}ms "
            f"{m['stop_s'] * 1000:>6.0f}ms {m['load_s'] * 1000:>6.0f}ms {m['publish_s']:>12.1f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
