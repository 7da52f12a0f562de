"""The local stack's DynamoDB server: its CPU per request on the alert path's two calls.

Run: .venv/bin/python tests/benchmarks/bench_moto_server.py [--calls N] [--threads T]
Prints figures only; docs/performance.md records runs. Starts the moto server as the local
stack does (cloud/local/moto_server.py, on a free loopback port), creates a table of 50
machines with 8 alert states each, then `--threads` clients each make `--calls` pairs of the
calls a telemetry batch makes on the alert path: a consistent Query of one machine's
partition and a conditional PutItem of one state. The server's CPU time comes from
/proc/<pid>/stat, so the figure is the server's work per request whatever the clients cost;
the clients share this process and its interpreter lock, so their latencies are a direction,
not the server's alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "benchmarks")]

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from device_bench_support import cpu_seconds  # noqa: E402
from support.moto_tables import create_keyed_table  # noqa: E402

from cloud.local.processes import MotoServer, free_port  # noqa: E402

MACHINES = 50
STATES = 8


def state(machine: int, n: int, version: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"THING#m{machine}"},
        "sk": {"S": f"STATE#engine#rule-{n}"},
        "state": {"S": "NORMAL"},
        "version": {"N": str(version)},
        "value": {"N": "64.5"},
        "since": {"N": "1700000000000"},
        "memory": {"S": '{"above": null, "window": [64.1, 64.5]}'},
    }


def client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        region_name="eu-west-3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}),
    )


def run(calls: int, threads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-moto-") as folder:
        server = MotoServer("moto-dynamodb", free_port(), Path(folder) / "moto.log")
        server.start(server.ready)
        try:
            setup = client(server.endpoint)
            create_keyed_table(setup, "alerts")  # the alerts table's keys and index
            for machine in range(MACHINES):
                for n in range(STATES):
                    setup.put_item(TableName="alerts", Item=state(machine, n, 0))
            queries: list[float] = []
            puts: list[float] = []
            lock = threading.Lock()

            def work(index: int) -> None:
                dynamodb = client(server.endpoint)
                for call in range(calls):
                    machine = (index * 7 + call) % MACHINES
                    started = time.perf_counter()
                    dynamodb.query(
                        TableName="alerts",
                        KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": {"S": f"THING#m{machine}"}},
                        ConsistentRead=True,
                    )
                    read = time.perf_counter()
                    dynamodb.put_item(
                        TableName="alerts",
                        Item=state(machine, call % STATES, call + 1),
                        ConditionExpression="attribute_not_exists(pk) OR version < :v",
                        ExpressionAttributeValues={":v": {"N": str(call + 1)}},
                    )
                    written = time.perf_counter()
                    with lock:
                        queries.append((read - started) * 1000)
                        puts.append((written - read) * 1000)

            workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            cpu, wall = cpu_seconds(server.pid) - cpu_before, time.perf_counter() - wall_before
        finally:
            server.stop()
    requests = 2 * calls * threads
    print(
        f"moto DynamoDB server, {requests} requests from {threads} clients: server CPU "
        f"{1000 * cpu / requests:.2f} ms per request, {requests / wall:.0f} requests/s; "
        f"Query {spread(queries)}; PutItem {spread(puts)}"
    )


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered):.1f} ms p99 {ordered[int(len(ordered) * 0.99)]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=600, help="Query+PutItem pairs per client")
    parser.add_argument("--threads", type=int, default=4, help="clients calling at once")
    args = parser.parse_args()
    if args.calls < 1 or args.threads < 1:
        parser.error("--calls and --threads: expected 1 or more")
    run(args.calls, args.threads)


if __name__ == "__main__":
    main()
