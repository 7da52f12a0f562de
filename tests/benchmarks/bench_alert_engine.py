"""CPU per telemetry batch (40 readings) through AlertEngine.process_batch, in-memory store.

Run: .venv/bin/python tests/benchmarks/bench_alert_engine.py [--batches N]
Prints figures only; the target (docs/performance.md) is <= 2 ms of CPU per batch.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from chantier.alerts.rules import load_rules  # noqa: E402
from cloud.alerts.engine import AlertEngine  # noqa: E402
from cloud.alerts.store import InMemoryAlertStore  # noqa: E402

T0 = 1_763_733_600_000
READINGS = 40


def excavator(seq: int, rng: random.Random) -> dict[str, Any]:
    """One engine sensor at 1 Hz, normal temperatures: the common, uneventful case."""
    start = T0 + seq * READINGS * 1000
    readings = [
        {
            "sensorId": "engine",
            "ts": start + i * 1000,
            "temperature": round(55 + rng.uniform(-2, 2), 2),
            "humidity": round(30 + rng.uniform(-1, 1), 2),
            "pressure": round(1008 + rng.uniform(-0.2, 0.2), 2),
        }
        for i in range(READINGS)
    ]
    return _message("exc-01", "excavator", seq, start, readings)


def crane(seq: int, rng: random.Random) -> dict[str, Any]:
    """Two sensors, 20 readings each: storm, condensation, fault and stuck rules all run."""
    start = T0 + seq * 20 * 1000
    readings = [
        {
            "sensorId": sensor,
            "ts": start + i * 1000,
            "temperature": round(12 + rng.uniform(-1, 1), 2),
            "humidity": round(70 + rng.uniform(-3, 3), 2),
            "pressure": round(1002 - seq * 0.002 + rng.uniform(-0.1, 0.1), 2),
        }
        for i in range(READINGS // 2)
        for sensor in ("cabin", "ambient")
    ]
    return _message("crane-02", "crane", seq, start, readings)


def overheating(seq: int, rng: random.Random) -> dict[str, Any]:
    """Engine temperature swinging across the warning, critical and clear levels."""
    start = T0 + seq * READINGS * 1000
    phase = (seq // 3) % 3
    level = (60, 79, 84)[phase]
    readings = [
        {
            "sensorId": "engine",
            "ts": start + i * 1000,
            "temperature": round(min(level + rng.uniform(-0.5, 0.5), 84.8), 2),
            "humidity": 30.0,
        }
        for i in range(READINGS)
    ]
    return _message("exc-02", "excavator", seq, start, readings)


def _message(
    thing: str, equipment: str, seq: int, start: int, readings: list[Any]
) -> dict[str, Any]:
    return {
        "schema": 1,
        "thing": thing,
        "site": "lyon-part-dieu",
        "equipment": equipment,
        "boot": "b00t",
        "seq": seq,
        "runId": None,
        "sentAt": start + READINGS * 1000,
        "clockSynced": True,
        "readings": readings,
    }


def measure(name: str, make: Callable[[int, random.Random], dict[str, Any]], batches: int) -> None:
    rng = random.Random(42)
    messages = [make(seq, rng) for seq in range(batches)]
    clock = {"now": T0}
    engine = AlertEngine(load_rules(), InMemoryAlertStore(), clock=lambda: clock["now"])
    for message in messages[:50]:  # warm the per-(equipment, sensor) rule caches
        clock["now"] = message["sentAt"]
        engine.process_batch(message)
    wall: list[float] = []
    transitions = 0
    cpu_start = time.process_time()
    for message in messages[50:]:
        clock["now"] = message["sentAt"] + 200
        started = time.perf_counter()
        transitions += len(engine.process_batch(message))
        wall.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_start) * 1000 / len(wall)
    wall.sort()
    print(
        f"{name:<12} CPU {cpu_ms:6.3f} ms/batch   wall p50 {statistics.median(wall):6.3f} ms   "
        f"p99 {wall[int(len(wall) * 0.99)]:6.3f} ms   ({len(wall)} batches of {READINGS}, "
        f"{transitions} transitions)"
    )


def cold_import_ms() -> float:
    code = (
        "import time; t=time.perf_counter(); "
        "import cloud.alerts.engine, chantier.alerts.rules as r; r.load_rules(); "
        "print((time.perf_counter()-t)*1000)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=3000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, target <= 2 ms CPU per batch of {READINGS}")
    measure("excavator", excavator, args.batches)
    measure("crane", crane, args.batches)
    measure("overheating", overheating, args.batches)
    print(f"cold import of the alert core + rules load: {cold_import_ms():.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
