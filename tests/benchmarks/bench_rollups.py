"""Daily rollups at fleet scale: one day of N machines through the rollups function, locally.

Run: .venv/bin/python tests/benchmarks/bench_rollups.py [--machines 1000] [--every 5]
     [--batch 900] [--keep]
Prints figures only. Target (design brief): one day of 1,000 machines within the function's
timeout (RollupsFunction's Timeout in cloud/template.yaml).

What runs is the rollups handler as the local stack builds it (cloud/handlers/rollups.py with
the DuckDB engine of cloud/local/lake.py) against moto in this process: the last-seen index
lists the machines, the alert history is scanned, the registry lists the things with their
hourly cost, the query reads the raw batches and one curated object is written. The raw
batches are written straight into the mirror folder the local moto server keeps (the same
files an S3 PUT of each batch would leave there): N machines x one day of batches of
`--batch` seconds, one reading every `--every` seconds alternately from two sensors (engine,
ambient), as the agent's default profile sends them at the cost model's one reading per 5 s.

The handler runs in a child process, so its time and peak resident memory are its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

DAY = "2026-03-10"
SITES = 20
HOURLY_COST = 85.0


def write_day(lake: Path, bucket: str, machines: int, every_s: float, batch_s: float) -> int:
    """One day of raw batches for `machines` machines; returns the number of objects."""
    from cloud.analytics.rollups import day_bounds

    start, _ = day_bounds(DAY)
    objects = 0
    step = int(every_s * 1000)
    per_batch = int(batch_s * 1000)
    for index in range(machines):
        site, thing = f"site-{index % SITES:02d}", f"exc-{index:04d}"
        folder = lake / bucket / "raw" / f"site={site}" / f"thing={thing}" / f"date={DAY}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(index)
        working = 10.0
        for seq, begin in enumerate(range(start, start + 86_400_000, per_batch)):
            parts = []
            for n, ts in enumerate(range(begin, begin + per_batch, step)):
                if n % 2 == 0:
                    working = min(90.0, max(10.0, working + rng.uniform(-1.0, 1.2)))
                    parts.append(
                        f'{{"sensorId":"engine","ts":{ts},"temperature":{working:.2f},'
                        f'"humidity":31.2,"pressure":1008.31}}'
                    )
                else:
                    parts.append(
                        f'{{"sensorId":"ambient","ts":{ts},"temperature":{9 + rng.random():.2f},'
                        f'"humidity":80.5,"pressure":1008.4}}'
                    )
            sent_at = begin + per_batch
            body = (
                f'{{"schema":1,"thing":"{thing}","site":"{site}","equipment":"excavator",'
                f'"boot":"5e2a9c41","seq":{seq},"runId":null,"sentAt":{sent_at},'
                f'"clockSynced":true,"readings":[{",".join(parts)}]}}'
            )
            (folder / f"5e2a9c41-{seq}.json").write_text(body)
            objects += 1
    return objects


def prepare(endpoint: dict[str, str], machines: int) -> dict[str, str]:
    """Tables, bucket and registry from the template; last seen and hourly cost per machine."""
    import boto3

    from cloud.alerts.seen_entries import entry_key
    from cloud.analytics.rollups import day_bounds
    from cloud.local.resources import create_from_template
    from cloud.local.template import LocalTemplate

    template = LocalTemplate()
    services = ("s3", "dynamodb", "iot", "sns", "sqs")
    clients = {name: boto3.client(name, **endpoint) for name in services}
    create_from_template(template, clients)
    alerts = boto3.resource("dynamodb", **endpoint).Table(template.physical_name("AlertsTable"))
    start, _ = day_bounds(DAY)
    with alerts.batch_writer() as writer:
        for index in range(machines):
            thing = f"exc-{index:04d}"
            writer.put_item(
                Item={
                    **entry_key(thing),
                    "thing": thing,
                    "site": f"site-{index % SITES:02d}",
                    "equipment": "excavator",
                    "lastSeen": start + 86_400_000 + 60_000,
                }
            )
    for index in range(machines):
        clients["iot"].create_thing(
            thingName=f"exc-{index:04d}",
            attributePayload={"attributes": {"hourlyCost": str(HOURLY_COST)}},
        )
    return {
        "RAW_BUCKET": template.physical_name("RawBucket"),
        "ALERTS_TABLE": template.physical_name("AlertsTable"),
    }


def run_handler(env: dict[str, str], endpoint: dict[str, str], lake: str, out: Any) -> None:
    """Child process: build the handler as the local stack does, invoke it once for the day."""
    from cloud.handlers.rollups import build
    from cloud.local.functions import LocalContext
    from cloud.local.lake import DuckDbLake

    started = time.perf_counter()
    handler = build(env, lambda service: endpoint, engine=DuckDbLake(Path(lake), env["RAW_BUCKET"]))
    built = time.perf_counter()
    result = handler({"dates": [DAY]}, LocalContext(function_name="RollupsFunction"))
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    out.send(
        {
            "build_s": built - started,
            "run_s": done - built,
            "peak_mb": peak_mb,
            "cpu_s": cpu.ru_utime + cpu.ru_stime,
            "rows": result["written"][DAY]["machines"],
        }
    )


def main() -> None:
    from moto.server import ThreadedMotoServer

    from cloud.local.template import LocalTemplate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--batch", type=float, default=900.0, help="seconds of readings a batch")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-rollups-"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = {
            "endpoint_url": f"http://{host}:{port}",
            "region_name": "eu-west-3",
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        env = prepare(endpoint, args.machines)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        began = time.perf_counter()
        objects = write_day(root / "lake", env["RAW_BUCKET"], args.machines, args.every, args.batch)
        size = sum(p.stat().st_size for p in (root / "lake").rglob("*.json"))
        print(
            f"rollups of one day ({DAY}), {args.machines:,} machines in {SITES} sites: "
            f"{objects:,} raw objects, {size / 1e9:.2f} GB, one reading per {args.every:g} s "
            f"in batches of {args.batch:g} s (written in {time.perf_counter() - began:.0f} s)"
        )
        parent, child = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=run_handler, args=(env, endpoint, str(root / "lake"), child)
        )
        process.start()
        timeout = LocalTemplate().properties("RollupsFunction")["Timeout"]
        while not parent.poll(1.0):
            if not process.is_alive():
                raise SystemExit(f"the rollups handler failed (exit code {process.exitcode})")
        figures = parent.recv()
        process.join(60)
        verdict = "met" if figures["run_s"] <= timeout else "NOT met"
        print(
            f"  handler run {figures['run_s']:.1f} s (build {figures['build_s']:.1f} s), CPU "
            f"{figures['cpu_s']:.1f} s, peak RSS {figures['peak_mb']:.0f} MB; "
            f"{figures['rows']:,} rows written"
        )
        print(f"  target: within the function's {timeout} s timeout: {verdict}")
    finally:
        server.stop()
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
