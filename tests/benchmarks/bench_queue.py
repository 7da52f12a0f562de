"""Durable queue throughput: readings/s committed to disk (synchronous=FULL, WAL)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from device_bench_support import os_boot_id  # also puts the repo on sys.path

from device.batcher import Envelope
from device.queue import DurableQueue, NewReading

N = 20_000


def readings(n: int, offset: int = 0) -> list[NewReading]:
    boot = os_boot_id()
    t0 = 1_763_733_600_000
    return [
        NewReading("engine", t0 + i, i, boot, t0 + i, 20.0 + (i % 100) / 10, 45.0, 1000.0)
        for i in range(offset, offset + n)
    ]


def run(group: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        q = DurableQueue(Path(tmp), max_readings=10 * N)
        data = readings(N)
        started = time.perf_counter()
        for i in range(0, N, group):
            q.add(data[i : i + group])  # one durable transaction per call
        elapsed = time.perf_counter() - started
        q.close()
    return N / elapsed


def batch_and_ack() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        q = DurableQueue(Path(tmp), max_readings=10 * N)
        q.add(readings(N))
        env = Envelope("bench-01", "bench", "generator", "0123abcd")
        started = time.perf_counter()
        done = 0
        while True:
            batch = q.form_batch(env, 1_763_733_700_000, 120_000)
            if batch is None:
                break
            q.ack(batch.id)
            done += batch.readings
        elapsed = time.perf_counter() - started
        q.close()
    return done / elapsed


def main() -> None:
    print(f"durable queue, {N} readings, WAL + synchronous=FULL, one commit per add()")
    for group in (1, 2, 10, 100):
        print(f"  enqueue, {group:>3} reading(s) per commit: {run(group):>9,.0f} readings/s")
    print(f"  form 120 KB batches + ack:          {batch_and_ack():>9,.0f} readings/s")
    print("  target: >= 5,000 readings/s enqueued with crash safety")


if __name__ == "__main__":
    main()
