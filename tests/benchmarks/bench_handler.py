"""The ingestion Lambda's own costs: cold import, and CPU per 40-reading batch without AWS.

Run: .venv/bin/python tests/benchmarks/bench_handler.py [--batches N] [--imports N]
Prints figures only. Targets (docs/performance.md): cold import <= 400 ms, CPU <= 2 ms/batch.

- cold import: ``import cloud.handlers.ingest`` in a fresh interpreter (what a Lambda cold
  start pays before the first event), then the same plus ``build()`` (boto3 clients created,
  no request sent), which the first invocation pays;
- CPU per batch: validation, the readings store, the alert engine, logging and EMF metrics of
  ``IngestService.handle`` with in-memory fakes for DynamoDB and S3 (no AWS call is timed).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "chantier")

from aws_lambda_powertools import Logger, Metrics  # noqa: E402

from chantier.alerts.rules import load_rules  # noqa: E402
from cloud.alerts.engine import AlertEngine  # noqa: E402
from cloud.alerts.store import InMemoryAlertStore  # noqa: E402
from cloud.ingest.identity import CachedThings  # noqa: E402
from cloud.ingest.service import IngestService  # noqa: E402

READINGS = 40
THINGS = 50
_IMPORT = "import time; t=time.perf_counter(); import cloud.handlers.ingest; "
_BUILD = (
    "import cloud.handlers.ingest as h; h.build({'RAW_BUCKET': 'b', 'ALERTS_TABLE': 'a', "
    "'READINGS_TABLE': 'r', 'RUNS_TABLE': 'u', "
    "'ALERTS_TOPIC_ARN': 'arn:aws:sns:eu-west-3:123456789012:t'}); "
)
_PRINT = "print((time.perf_counter()-t)*1000)"


class MemoryReadings:
    """ReadingsStore stand-in: builds the same items, keeps none."""

    def put_batch(self, batch: dict[str, Any]) -> int:
        from cloud.ingest.readings_store import batch_items

        batch_items(batch)
        return len(batch["readings"])


class MemoryErrors:
    def keep(self, raw: bytes, rejections: Any, keys: Any) -> str:
        return "errors/memory"


class MemoryHealth:
    def put(self, message: dict[str, Any]) -> None:
        pass


class MemoryRaw:
    """The raw bucket: each key written once (what the conditional PUT decides)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def keep(self, key: str, body: bytes) -> Any:
        from cloud.ingest.raw_archive import DUPLICATE, STORED, RawWrite

        outcome = DUPLICATE if key in self.keys else STORED
        self.keys.add(key)
        return RawWrite(outcome, key, 0)


class Registry:
    """Every machine of the benchmark is a registered excavator on its site."""

    def lookup(self, thing: str) -> Any:
        from cloud.ingest.identity import ThingInfo

        return ThingInfo(thing, "lyon-part-dieu", "excavator")


class NoRuns:
    def members(self, run_id: str) -> frozenset[str]:
        return frozenset()


def batch(thing: int, seq: int, rng: random.Random) -> dict[str, Any]:
    """The topic rule's event for an excavator's batch: engine and ambient at 1 Hz, 20
    readings each, normal values."""
    start = 1_763_733_600_000 + seq * 20_000
    readings = [
        {
            "sensorId": sensor,
            "ts": start + i * 1000,
            "temperature": round(base + rng.uniform(-1.5, 1.5), 2),
            "humidity": round(35 + rng.uniform(-2, 2), 2),
            "pressure": round(1009 + rng.uniform(-0.3, 0.3), 2),
        }
        for i in range(READINGS // 2)
        for sensor, base in (("engine", 58.0), ("ambient", 14.0))
    ]
    message = {
        "schema": 1,
        "thing": f"exc-{thing:02d}",
        "site": "lyon-part-dieu",
        "equipment": "excavator",
        "boot": "9c1e0f7a",
        "seq": seq,
        "runId": None,
        "sentAt": start + 20_500,
        "clockSynced": True,
        "readings": readings,
    }
    payload = json.dumps(message, separators=(",", ":")).encode()
    return {
        "payload": base64.b64encode(payload).decode(),
        "site": "lyon-part-dieu",
        "thing": message["thing"],
        "kind": "telemetry",
        "receivedAt": message["sentAt"] + 100,
    }


def cold_import(code: str, runs: int) -> list[float]:
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
                env={**os.environ, "AWS_DEFAULT_REGION": "eu-west-3"},
            ).stdout
        )
        for _ in range(runs)
    ]


def cpu_per_batch(batches: int) -> tuple[float, list[float], int]:
    rng = random.Random(7)
    events = [batch(i % THINGS, i // THINGS, rng) for i in range(batches + 200)]
    sink = logging.StreamHandler(io.StringIO())
    logger = Logger(service="chantier", logger_handler=sink)
    metrics = Metrics(namespace="Chantier")
    clock = {"now": 0}
    service = IngestService(
        readings=MemoryReadings(),  # type: ignore[arg-type]
        errors=MemoryErrors(),  # type: ignore[arg-type]
        raw=MemoryRaw(),
        alerts=AlertEngine(load_rules(), InMemoryAlertStore(), clock=lambda: clock["now"]),
        logger=logger,
        metrics=metrics,
        health=MemoryHealth(),
        things=CachedThings(Registry(), ttl_s=3600),
        runs=NoRuns(),
        clock=lambda: clock["now"],
    )

    @metrics.log_metrics
    def handler(event: Any, context: Any) -> dict[str, Any]:
        return service.handle(event)

    per_batch: list[float] = []
    transitions = 0
    # EMF lines go to stdout in Lambda; here they are written to a buffer and thrown away.
    with contextlib.redirect_stdout(io.StringIO()):
        for event in events[:200]:  # warm caches, as a warm container would be
            clock["now"] = event["receivedAt"] + 50
            handler(event, None)
        cpu_start = time.process_time()
        for event in events[200:]:
            clock["now"] = event["receivedAt"] + 50
            started = time.thread_time()
            transitions += handler(event, None)["transitions"]
            per_batch.append((time.thread_time() - started) * 1000)
        cpu_total = (time.process_time() - cpu_start) * 1000
    return cpu_total / batches, sorted(per_batch), transitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--imports", type=int, default=7)
    args = parser.parse_args()

    imports = cold_import(_IMPORT + _PRINT, args.imports)
    with_build = cold_import(_IMPORT + _BUILD + _PRINT, args.imports)
    print(
        f"cold import cloud.handlers.ingest: median {statistics.median(imports):6.1f} ms  "
        f"min {min(imports):6.1f}  max {max(imports):6.1f}  ({args.imports} fresh interpreters; "
        "target <= 400 ms)"
    )
    print(
        f"cold import + build():             median {statistics.median(with_build):6.1f} ms  "
        f"min {min(with_build):6.1f}  max {max(with_build):6.1f}  (boto3 clients, no request)"
    )
    mean, per_batch, transitions = cpu_per_batch(args.batches)
    print(
        f"CPU per {READINGS}-reading batch (IngestService, in-memory fakes): mean {mean:.3f} ms  "
        f"p50 {statistics.median(per_batch):.3f}  p99 {per_batch[int(len(per_batch) * 0.99)]:.3f}"
        f"  ({args.batches} batches, {THINGS} machines, {transitions} transitions; "
        "target <= 2 ms)"
    )


if __name__ == "__main__":
    main()
