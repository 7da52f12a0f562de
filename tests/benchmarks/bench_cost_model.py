"""Cost model: every AWS request the pipeline makes per batch and per health message, priced.

Run: .venv/bin/python tests/benchmarks/bench_cost_model.py [--minutes N] [--pace S]
Prints figures only; docs/cost.md explains the model and records a run. Target (design brief):
one reading per 5 s per device, 1,000 devices, at most $0.05 per device-month; idle at most
$0.50 a month at list price.

A local stack runs in a temporary folder. Botocore hooks in this process, where the stack runs
the rule actions and the Lambda handlers, count every request by caller, service, operation
and purpose, with the units AWS bills: DynamoDB write and read units from the item sizes on
the wire (index writes included), S3 requests and bytes, SNS publishes, registry calls. One
provisioned excavator publishes over its own mTLS connection through Basic Ingest what the
agent sends at its defaults with one reading per 5 s: a batch and a health message a minute,
built by the agent's own code from simulated sensors. The simulated minute lasts `--pace` wall
seconds and the last-seen refresh is shortened by the same factor, so it fires as often per
message as in real time. Then one alert opens and clears, bigger batches probe the design
options, and the scheduled functions run once each, on empty tables and on the machine's data.

Request counts do not depend on the machine; durations do (2 shared cores). Lambda duration is
modelled from the CPU time measured here, scaled to the function's share of a vCPU, plus an
assumed in-region latency per request (constants below); the local wall time is printed too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import dataclasses
import functools
import io
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.alert_stack import crafted_batch  # noqa: E402
from support.localstack import DeviceConnection  # noqa: E402

import chantier  # noqa: E402
from chantier.names import topic  # noqa: E402
from chantier.telemetry import encode_message  # noqa: E402
from cloud.alerts.engine import SEEN_REFRESH_MS  # noqa: E402
from cloud.local.functions import LocalFunctions  # noqa: E402
from cloud.local.scheduler import rate_seconds, scheduled_event  # noqa: E402
from cloud.local.stack import LocalStack  # noqa: E402
from cloud.local.template import LocalTemplate  # noqa: E402
from commands.simulator.fleet import BASIC_INGEST_PREFIX, Machine, provision_machine  # noqa: E402
from device.batcher import Envelope, message_dict, reading_dict  # noqa: E402
from device.config import REPORTING_PROFILES, AgentConfig  # noqa: E402
from device.health import SENSOR_OK, SensorStatus, health_message  # noqa: E402
from device.sensors.simulated import SimulatedSensor  # noqa: E402
from device.transport import ACKED  # noqa: E402

# ---------- AWS list prices, us-east-1 (N. Virginia), USD ----------
# Taken on PRICES_TAKEN from the pages named beside each group. Paris (eu-west-3) lists most of
# these a little higher; the model's conclusions do not change with the region. Prices named in
# UNCONFIRMED could not be checked against a copy of the page on that day: they are the list
# prices as we know them, and docs/cost.md marks them as assumptions.
PRICES_TAKEN = "2026-11-21"
PRICE_REGION = "us-east-1"
# https://aws.amazon.com/iot-core/pricing/ (rules are metered per 5 KB of message)
IOT_CONNECTION_MINUTE = 0.08 / 1e6
IOT_RULE_TRIGGERED = 0.15 / 1e6
IOT_ACTION_EXECUTED = 0.15 / 1e6
IOT_REGISTRY_OPERATION = 1.25 / 1e6
IOT_METERING_BYTES = 5 * 1024
# https://aws.amazon.com/lambda/pricing/ (Arm)
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND_ARM = 0.0000133334
# https://aws.amazon.com/dynamodb/pricing/on-demand/ (since the November 2024 price cut)
DYNAMODB_WRITE_UNIT = 0.625 / 1e6
DYNAMODB_READ_UNIT = 0.125 / 1e6
DYNAMODB_GB_MONTH = 0.25
DYNAMODB_PITR_GB_MONTH = 0.20
DYNAMODB_ITEM_OVERHEAD_BYTES = 100  # storage only: the per-item indexing overhead AWS adds
# https://aws.amazon.com/s3/pricing/ (S3 Standard; objects under 128 KB never leave the
# Frequent Access tier of Intelligent-Tiering and are not transitioned by lifecycle rules)
S3_PUT_OR_LIST = 0.005 / 1000
S3_GET = 0.0004 / 1000
S3_GB_MONTH = 0.023
# https://aws.amazon.com/sns/pricing/
SNS_PUBLISH = 0.50 / 1e6
SNS_EMAIL = 2.00 / 100_000
# https://aws.amazon.com/cloudwatch/pricing/
LOGS_INGEST_GB = 0.50
LOGS_STORED_GB_MONTH = 0.03
CUSTOM_METRIC_MONTH = 0.30
ALARM_METRIC_MONTH = 0.10  # a metric math alarm pays this for each metric it reads
# https://aws.amazon.com/xray/pricing/
XRAY_TRACE_RECORDED = 5.00 / 1e6
# https://aws.amazon.com/firehose/pricing/ (a design option only: records billed per 5 KB)
FIREHOSE_GB = 0.029
FIREHOSE_BUFFER_S = 300  # one object per buffer interval for the whole fleet
# https://aws.amazon.com/kms/pricing/ (AWS managed keys: no monthly fee, requests only)
KMS_REQUEST = 0.03 / 10_000
# Assumption, not measured locally: DynamoDB and SNS cache the data keys of the AWS managed
# keys (tables, alerts topic), so KMS sees about one request per key and caller an hour:
# ingest (two tables, the topic), offline check, runs expiry, rollups; idle, the two checks.
KMS_KEY_CALLERS = 6
KMS_KEY_CALLERS_IDLE = 2
# https://aws.amazon.com/aws-cost-management/aws-budgets/pricing/ (no budget actions here)
BUDGET_MONTH = 0.0
UNCONFIRMED = (
    "LAMBDA_REQUEST",
    "IOT_CONNECTION_MINUTE",
    "IOT_RULE_TRIGGERED",
    "IOT_ACTION_EXECUTED",
    "IOT_REGISTRY_OPERATION",
    "DYNAMODB_PITR_GB_MONTH",
    "SNS_PUBLISH",
    "SNS_EMAIL",
    "LOGS_INGEST_GB",
    "LOGS_STORED_GB_MONTH",
    "CUSTOM_METRIC_MONTH",
    "ALARM_METRIC_MONTH",
    "XRAY_TRACE_RECORDED",
    "ATHENA_TB_SCANNED",
    "FIREHOSE_GB",
    "KMS_REQUEST",
    "BUDGET_MONTH",
)
IDLE_TARGET_USD = 0.50  # a month at list price, no free tier (design brief)
# Free tiers that never expire, shown apart: at 1,000 devices they are a rounding error, idle
# they are the difference between a few cents and nothing.
FREE_LAMBDA_REQUESTS = 1_000_000
FREE_LAMBDA_GB_SECONDS = 400_000
FREE_XRAY_TRACES = 100_000
FREE_ALARM_METRICS = 10
FREE_LOGS_GB = 5.0
FREE_CUSTOM_METRICS = 10

# ---------- the scenario ----------
MONTH_S = 730 * 3600  # AWS prices a month as 730 hours
READING_INTERVAL_S = 5.0  # the design's cost scenario: one reading per 5 s per device
FLEET = 1000
ALERT_CYCLES_PER_MONTH = 4.0  # assumption: an alert opens and clears about once a week
LAMBDA_VCPU_MB = 1769  # a function gets one full vCPU at this memory size, a share below it
# Assumed latency of one request from a Lambda function to the service in the same region,
# in ms; locally the same request goes to moto over loopback.
AWS_LATENCY_MS = {
    "dynamodb": 6.0,
    "s3.PutObject": 25.0,
    "s3.GetObject": 15.0,
    "s3.ListObjectsV2": 25.0,
    "sns": 20.0,
    "iot": 15.0,
}
# What the Lambda service itself writes per invocation (START, END, REPORT and the X-Ray
# line), an example of the format with its usual field widths.
PLATFORM_LOG_LINES = (
    "START RequestId: 3f0c7a52-6b1e-4d7a-9a55-0c2b8e1f4d90 Version: $LATEST\n"
    "END RequestId: 3f0c7a52-6b1e-4d7a-9a55-0c2b8e1f4d90\n"
    "REPORT RequestId: 3f0c7a52-6b1e-4d7a-9a55-0c2b8e1f4d90\tDuration: 31.27 ms\t"
    "Billed Duration: 32 ms\tMemory Size: 256 MB\tMax Memory Used: 118 MB\t\n"
    "XRAY TraceId: 1-6740a1b2-5d2c9e0f13a4b6c7d8e9f012\tSegmentId: 4e1b7c9a2d3f5a60\t"
    "Sampled: true\t\n"
)
# A steady machine's batch in the default profile (its age limit), a moving machine's early
# batch during a burst (one per `early_min_interval_s`, holding the readings since the last
# batch) and after it (one per `early_refill_s`; and a minute less, for the option beside the
# default), probed with real batches; the minute-by-minute batches measured first are the
# `live` profile's. A replayed batch costs what the longest probe not longer than it costs.
LONG_BATCH_AGE_S = 900
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(AgentConfig)}
REFILL_S = int(_DEFAULTS["early_refill_s"])
SHORTER_REFILL_S = REFILL_S - 60
PROBE_AGES_S = tuple(
    sorted({int(_DEFAULTS["early_min_interval_s"]), SHORTER_REFILL_S, REFILL_S, LONG_BATCH_AGE_S})
)
PROBE_BATCHES = 3
# Athena (https://aws.amazon.com/athena/pricing/): per TB scanned, at least 10 MB a query.
ATHENA_TB_SCANNED = 5.00
ATHENA_MIN_BYTES = 10 * 1024 * 1024
# Estimated time of the daily rollup query for 1,000 machines (docs/performance.md), which the
# rollups function waits for.
ATHENA_FLEET_QUERY_S = 90.0
# The simulated fleet: one machine of each kind, in turn (commands/simulator/fleet.py).
FLEET_MIX = ("excavator", "crane", "generator", "concrete-mixer", "compressor", "site-cabin")
REPLAY_HOURS = 24
# A site's working week, for the fleet on shifts: machines work 07:00-17:00 local time (UTC+1,
# the simulated sites' winter time), Monday to Friday, the simulator's duty cycle during the
# shift, engines off outside it. French law sets a 35 h week (Code du travail L3121-27) and
# caps work at 10 h a day and 48 h a week (L3121-18, L3121-20); ten hours of machine time
# covers a shift with its breaks. A week is replayed, from a Monday.
SHIFT_START_H_UTC = 6.0
SHIFT_END_H_UTC = 16.0
WORK_DAYS = 5
WEEK_START_S = 1_773_014_400  # 2026-03-09 00:00 UTC, a Monday
# The simulated sensors' physics (ambient cycle, duty cycle) runs from this moment, a spring
# night, whatever the time of the run: no level is crossed, so the measured batches carry no
# alert, and alerts are priced apart (ALERT_CYCLES_PER_MONTH).
SENSOR_CLOCK_START_S = 1_773_108_000  # 2026-03-10 02:00 UTC
SEEN_PURPOSES = ("last seen", "last seen read")
ALERT_PURPOSES = ("alert state", "alert history", "alert notification")

_local = threading.local()


# ---------- DynamoDB sizes, from the attribute values on the wire ----------
def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").split("e")[0].split("E")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (its documented sizing rules)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return _number_size(raw)
    if kind == "B":
        return len(base64.b64decode(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "NS":
        return sum(_number_size(n) for n in raw)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in raw)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in raw)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in raw.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def wire(value: Any) -> dict[str, Any]:
    """A plain Python value as a DynamoDB attribute value, to size items that are not written."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [wire(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: wire(v) for k, v in value.items()}}
    return {"NULL": True}


# ---------- counting ----------
@dataclass
class Units:
    """What a group of requests costs, in the units AWS bills."""

    requests: float = 0.0
    wru: float = 0.0  # table write request units
    index_wru: float = 0.0  # global secondary index write units
    rru: float = 0.0
    bytes: float = 0.0

    def add(self, other: Units, factor: float = 1.0) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + factor * getattr(other, f.name))


Key = tuple[str, str, str, str]  # caller, service, operation, purpose
Usage = dict[Key, Units]


def usage_delta(after: Usage, before: Usage) -> Usage:
    out: Usage = {}
    for key, units in after.items():
        delta = Units()
        delta.add(units)
        if key in before:
            delta.add(before[key], -1.0)
        if any(getattr(delta, f.name) for f in dataclasses.fields(delta)):
            out[key] = delta
    return out


def usage_sum(parts: list[Usage], factor: float = 1.0) -> Usage:
    out: Usage = defaultdict(Units)
    for part in parts:
        for key, units in part.items():
            out[key].add(units, factor)
    return dict(out)


@dataclass
class Invocation:
    function: str
    wall_ms: float
    cpu_ms: float
    requests: list[str]


class Meter:
    """Botocore hooks counting each request of the handlers and rule actions in this process."""

    def __init__(self, template: LocalTemplate) -> None:
        self.usage: Usage = defaultdict(Units)
        self.invocations: list[Invocation] = []
        self.unattributed = 0
        self._lock = threading.Lock()
        self._tables: dict[str, str] = {}
        self._indexes: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for logical_id in template.of_type("AWS::DynamoDB::Table"):
            name = template.physical_name(logical_id)
            self._tables[name] = logical_id
            self._indexes[name] = [
                (index["IndexName"], tuple(k["AttributeName"] for k in index["KeySchema"]))
                for index in template.properties(logical_id).get("GlobalSecondaryIndexes", [])
            ]
        # Index keys each item has now, from the writes seen: an index write depends on them.
        self._index_keys: dict[tuple[str, str, str], tuple[str, ...]] = {}

    def install(self) -> None:
        import boto3

        events = boto3._get_default_session().events
        events.register("before-parameter-build.s3", self._s3_params)
        events.register("before-call", self._before)
        events.register("after-call", self._after)

    def record(self, invocation: Invocation) -> None:
        with self._lock:
            self.invocations.append(invocation)

    def snapshot(self) -> Usage:
        with self._lock:
            return copy.deepcopy(dict(self.usage))

    # ---- hooks ----
    def _s3_params(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        body: Any = params.get("Body")
        if isinstance(body, bytes | str):
            size = len(body)
        elif isinstance(body, io.BytesIO):
            size = body.getbuffer().nbytes
        else:
            size = 0  # only GET and LIST come without a body here
        context["cost_s3"] = (str(params.get("Key") or params.get("Prefix") or ""), size)

    def _before(
        self, model: Any, params: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        caller = getattr(_local, "function", None)
        if caller is None:
            caller = (
                "IoT rule action"
                if threading.current_thread().name.startswith("rule-action")
                else None
            )
        if caller is None:
            with self._lock:
                self.unattributed += 1
            return
        service = model.service_model.service_name
        operation = model.name
        context["cost_caller"] = caller
        requests = getattr(_local, "requests", None)
        if requests is not None:
            requests.append(f"{service}.{operation}")
        if service == "dynamodb":
            body = params.get("body") or b"{}"
            context["cost_request"] = json.loads(body.decode() if isinstance(body, bytes) else body)

    def _after(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        caller = context.get("cost_caller")
        if caller is None:
            return
        service = model.service_model.service_name
        operation = model.name
        ok = http_response.status_code < 300
        with self._lock:
            if service == "dynamodb":
                self._dynamodb(
                    caller, operation, context.get("cost_request", {}), http_response, ok
                )
            elif service == "s3":
                key, size = context.get("cost_s3", ("", 0))
                units = self.usage[(caller, "s3", operation, _s3_purpose(operation, key))]
                units.requests += 1
                units.bytes += size
            else:
                purpose = {"Publish": "alert notification", "DescribeThing": "registry read"}
                self.usage[
                    (caller, service, operation, purpose.get(operation, operation))
                ].requests += 1

    def _dynamodb(
        self, caller: str, operation: str, request: dict[str, Any], response: Any, ok: bool
    ) -> None:
        table = request.get("TableName", "")
        if operation in ("PutItem", "DeleteItem", "UpdateItem"):
            # UpdateItem is sized by its key: no path measured here updates an item.
            item = request.get("Item") or request.get("Key") or {}
            units = self.usage[(caller, "dynamodb", operation, self._purpose(table, item))]
            units.requests += 1
            self._write(units, table, item, ok, delete=operation == "DeleteItem")
            return
        if operation == "BatchWriteItem":
            first = True
            for name, writes in request.get("RequestItems", {}).items():
                for write in writes:
                    put = "PutRequest" in write
                    item = write["PutRequest"]["Item"] if put else write["DeleteRequest"]["Key"]
                    units = self.usage[(caller, "dynamodb", operation, self._purpose(name, item))]
                    units.requests += 1 if first else 0
                    first = False
                    self._write(units, name, item, ok, delete=not put)
            return
        # Reads: the size of what came back, in 4 KB units, halved when eventually consistent.
        content = json.loads(response.content or b"{}")
        items = content.get("Items") or ([content["Item"]] if "Item" in content else [])
        size = sum(item_size(i) for i in items)
        consistent = bool(request.get("ConsistentRead")) and "IndexName" not in request
        purpose = self._read_purpose(table, request)
        units = self.usage[(caller, "dynamodb", operation, purpose)]
        units.requests += 1
        units.rru += max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    def _write(
        self, units: Units, table: str, item: Mapping[str, Any], ok: bool, delete: bool
    ) -> None:
        size = item_size(item)
        # A failed condition still consumes the write; it changes no index.
        units.wru += write_units(size)
        units.bytes += size
        if not ok:
            return
        primary = json.dumps([item.get("pk"), item.get("sk")])
        for index, attributes in self._indexes.get(table, []):
            slot = (table, index, primary)
            old = self._index_keys.get(slot)
            new = (
                None
                if delete or not all(a in item for a in attributes)
                else tuple(json.dumps(item[a]) for a in attributes)
            )
            if old is None and new is None:
                continue
            if new is None:
                units.index_wru += 1
                del self._index_keys[slot]
                continue
            # A changed index key is a delete and a put in the index.
            units.index_wru += write_units(size) + (1 if old is not None and old != new else 0)
            self._index_keys[slot] = new

    def _purpose(self, table: str, item: Mapping[str, Any]) -> str:
        logical = self._tables.get(table, table)
        pk = str(item.get("pk", {}).get("S", ""))
        sk = str(item.get("sk", {}).get("S", ""))
        if logical == "ReadingsTable":
            return "recent readings"
        if logical == "AlertsTable":
            if pk == "SEEN":
                return "last seen"
            if sk == "HEALTH":
                return "last health message"
            if sk.startswith("STATE#"):
                return "alert state"
            if pk.startswith("HIST#"):
                return "alert history"
        return f"{logical} item"

    def _read_purpose(self, table: str, request: Mapping[str, Any]) -> str:
        logical = self._tables.get(table, table)
        if "IndexName" in request:
            return f"{logical} index {request['IndexName']}"
        values = [
            str(v.get("S", "")) for v in request.get("ExpressionAttributeValues", {}).values()
        ]
        key = request.get("Key", {})
        if key.get("pk", {}).get("S") == "SEEN":
            return "last seen read"
        if "SEEN" in values:
            return "every last seen"
        if any(v.startswith("THING#") for v in values) or "THING#" in json.dumps(key):
            return "machine partition"
        if any(v.startswith("HIST#") for v in values):
            return "alert history"
        return f"{logical} read"


def _s3_purpose(operation: str, key: str) -> str:
    if operation == "PutObject":
        return {
            "raw": "raw batch object",
            "errors": "refused input",
            "curated": "daily rollup",
        }.get(key.split("/", 1)[0], "other object")
    if operation == "GetObject":
        return "raw batch read"
    if operation == "ListObjectsV2":
        return "raw partition listing"
    return operation


@contextlib.contextmanager
def timed_functions(meter: Meter, names: Mapping[str, str]) -> Iterator[None]:
    """Wrap LocalFunctions.invoke so each call is labelled, timed and its requests listed."""
    original = LocalFunctions.invoke

    def invoke(self: LocalFunctions, arn: str, event: Any, request_id: str | None = None) -> Any:
        name = names.get(arn, arn)
        _local.function, _local.requests = name, []
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, arn, event, request_id)
        finally:
            record = Invocation(
                name,
                (time.perf_counter() - wall) * 1000,
                (time.thread_time() - cpu) * 1000,
                _local.requests,
            )
            _local.function, _local.requests = None, None
            meter.record(record)

    LocalFunctions.invoke = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        LocalFunctions.invoke = original  # type: ignore[method-assign]


class OutputTap(io.TextIOBase):
    """Stands in for stdout: keeps what the handlers print (EMF metric lines) to size it."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            self.text.append(s)
        return len(s)

    def mark(self) -> int:
        with self._lock:
            return len(self.text)

    def since(self, mark: int) -> str:
        with self._lock:
            return "".join(self.text[mark:])


def emf_metrics(text: str) -> set[tuple[str, str, str]]:
    """(namespace, metric, dimensions) of every EMF blob in `text`."""
    found = set()
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dims = ",".join(
                f"{d}={blob.get(d)}" for group in directive["Dimensions"] for d in group
            )
            for metric in directive["Metrics"]:
                found.add((directive["Namespace"], metric["Name"], dims))
    return found


# ---------- the simulated machine ----------
class SimulatedMachine:
    """What the agent would publish at its defaults with one reading per 5 s, on a sim clock."""

    def __init__(self, machine: Machine, start_ms: int, seed: int = 7) -> None:
        self.machine = machine
        self.now_ms = start_ms
        self.start_ms = start_ms
        # Two sensors, as in agent.example.toml, each read every 10 s and 5 s apart.
        wall = self._wall
        elapsed = self._elapsed
        self.sensors = [
            SimulatedSensor(name, machine.equipment, seed=seed, elapsed=elapsed, wall=wall)
            for name in ("engine", "cabin")
        ]
        self.status = {s.name: SensorStatus(s.name, status=SENSOR_OK) for s in self.sensors}
        self.envelope = Envelope(machine.thing, machine.site, machine.equipment, "5e2a9c41")
        self.seq = 0
        self.next_reading_ms = start_ms
        self.turn = 0

    def _wall(self) -> float:
        return SENSOR_CLOCK_START_S + self._elapsed()

    def _elapsed(self) -> float:
        return (self.now_ms - self.start_ms) / 1000

    def batch(self, seconds: float) -> tuple[bytes, int]:
        """The batch of the next `seconds` of readings, formed when they are all taken."""
        end = self.next_reading_ms + int(seconds * 1000)
        readings = []
        while self.next_reading_ms < end:
            self.now_ms = self.next_reading_ms
            sensor = self.sensors[self.turn % len(self.sensors)]
            m = sensor.read()
            readings.append(
                reading_dict(sensor.name, self.now_ms, m.temperature, m.humidity, m.pressure)
            )
            status = self.status[sensor.name]
            status.readings += 1
            status.last_reading_at = self.now_ms
            self.turn += 1
            self.next_reading_ms += int(READING_INTERVAL_S * 1000)
        self.now_ms = end
        self.seq += 1
        message = message_dict(self.envelope, self.seq, self.now_ms, True, readings)
        return encode_message(message), len(readings)

    def health(self) -> bytes:
        message = health_message(
            thing=self.machine.thing,
            site=self.machine.site,
            equipment=self.machine.equipment,
            boot=self.envelope.boot,
            run_id=None,
            sent_at=self.now_ms + 1_000,
            version=chantier.__version__,
            uptime_s=(self.now_ms - self.start_ms) / 1000 + 1,
            clock_synced=True,
            clock_source="auto",
            queue_depth=6,
            queue_batches=0,
            oldest_reading_ms=self.now_ms,
            dropped_since_boot=0,
            dropped_total=0,
            queue_set_aside=None,
            connected_since_ms=self.start_ms,
            sensors=list(self.status.values()),
        )
        return encode_message(message)


# ---------- the run ----------
@dataclass
class Measured:
    """What the run measured, per kind of message or scheduled run."""

    per_kind: dict[str, Usage] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    rules: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    log_bytes: Counter[str] = field(default_factory=Counter)
    emf_bytes: Counter[str] = field(default_factory=Counter)
    invocations: dict[str, list[Invocation]] = field(default_factory=dict)
    metrics: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    readings: dict[str, float] = field(default_factory=dict)
    last_batch: dict[str, dict[str, Any]] = field(default_factory=dict)
    minutes: int = 0
    wall_s: float = 0.0
    unattributed: int = 0

    def mean(self, kind: str) -> Usage:
        return usage_sum([self.per_kind.get(kind, {})], 1.0 / max(1, self.counts[kind]))


class Run:
    """Drives the stack and files each message's requests, rule work, logs and invocations."""

    def __init__(self, stack: LocalStack, meter: Meter, tap: OutputTap, measured: Measured):
        assert stack.info is not None and stack.engine is not None
        self.stack = stack
        self.meter = meter
        self.tap = tap
        self.m = measured
        self.engine = stack.engine
        self.log_path = Path(stack.info.state_dir) / "logs" / "functions.log"

    @contextlib.contextmanager
    def message(self, kind: str, payload_bytes: int = 0) -> Iterator[None]:
        """Files everything the pipeline does between entering and leaving under `kind`."""
        usage = self.meter.snapshot()
        calls = len(self.meter.invocations)
        out = self.tap.mark()
        log = self.log_path.stat().st_size if self.log_path.exists() else 0
        rules = (self.engine.stats.messages, sum(self.engine.stats.actions.values()))
        yield
        self.m.per_kind[kind] = usage_sum(
            [self.m.per_kind.get(kind, {}), usage_delta(self.meter.snapshot(), usage)]
        )
        self.m.counts[kind] += 1
        text = self.tap.since(out)
        self.m.metrics.setdefault(kind, set()).update(emf_metrics(text))
        self.m.emf_bytes[kind] += len(text.encode())
        self.m.log_bytes[kind] += (
            self.log_path.stat().st_size if self.log_path.exists() else 0
        ) - log
        self.m.invocations.setdefault(kind, []).extend(self.meter.invocations[calls:])
        triggered = self.engine.stats.messages - rules[0]
        actions = sum(self.engine.stats.actions.values()) - rules[1]
        self.m.rules.setdefault(kind, []).append((triggered, actions, payload_bytes))

    def publish(self, device: DeviceConnection, topic_name: str, payload: bytes) -> None:
        """Publish and return once the rules engine has finished with the message."""
        expected = self.engine.stats.messages + 1
        if device.publish(topic_name, payload).status != ACKED:
            raise RuntimeError(f"the broker did not acknowledge a message on {topic_name}")
        deadline = time.monotonic() + 10
        while self.engine.stats.messages < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the rules engine did not receive the message on {topic_name}")
            time.sleep(0.002)
        if not self.stack.drain(30):
            raise RuntimeError("the rules engine was still busy after 30 s")

    def invoke(self, kind: str, logical_id: str) -> None:
        """Run a scheduled function once with the event EventBridge would send."""
        assert self.stack.functions is not None
        for spec in self.stack.template.schedules():
            if spec.logical_id.split(".")[0] == logical_id:
                with self.message(kind):
                    self.stack.functions.invoke(
                        spec.function_arn, scheduled_event(spec, time.time())
                    )
                return
        raise LookupError(f"no schedule for {logical_id} in the template")


SCHEDULED = ("OfflineCheckFunction", "RunsExpiryFunction", "RollupsFunction")


def agent_default(name: str) -> Any:
    """A setting's default in the agent's configuration (device/config.py)."""
    return {f.name: f.default for f in dataclasses.fields(AgentConfig)}[name]


def measure(minutes: int, pace_s: float, warmup: int) -> Measured:
    """Run the local stack through every phase; see the module docstring."""
    template = LocalTemplate()
    meter = Meter(template)
    m = Measured(minutes=minutes)
    tap = OutputTap()
    meter.install()  # before the stack builds any client: each client copies the hooks
    names = {arn: spec.logical_id for arn, spec in template.functions().items()}
    # The last-seen refresh runs on the wall clock; shorten it as much as the simulated minute.
    speedup = 60.0 / pace_s
    env = {"ALERT_SEEN_REFRESH_MS": str(max(1, int(SEEN_REFRESH_MS / speedup)))}
    # EMF lines are what CloudWatch ingests and bills in AWS: print them (into the tap) rather
    # than switch them off as the local stack does by default.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
    # The minute batches of the `live` profile (and of a moving value in the default one).
    batch_age = float(REPORTING_PROFILES["live"][0])
    state = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    started = time.monotonic()
    with (
        contextlib.redirect_stdout(tap),
        timed_functions(meter, names),
        # Schedules 1,000 times slower: nothing fires on its own, each is run once below.
        LocalStack(state, function_env=env, schedule_scale=1000) as stack,
    ):
        stack.warm()  # handlers built as in a warm Lambda container
        run = Run(stack, meter, tap, m)
        for name in SCHEDULED:
            run.invoke(f"idle {name}", name)
        machine, _ = provision_machine(stack, "exc-01", "lyon-part-dieu", "excavator")
        # Readings end before now: the steady minutes, the alert, then the probes (a budget's
        # worth of readings at 5 s each is well under 10 minutes).
        span_min = warmup + minutes + 2 + PROBE_BATCHES * sum(10 + a / 60 for a in PROBE_AGES_S)
        sim = SimulatedMachine(machine, int((time.time() - span_min * 60) * 1000))
        telemetry = topic(machine.site, machine.thing, "telemetry", BASIC_INGEST_PREFIX)
        health = topic(machine.site, machine.thing, "health", BASIC_INGEST_PREFIX)
        with DeviceConnection(stack, machine) as device:
            begin = time.monotonic()
            for minute in range(warmup + minutes):
                steady = minute >= warmup  # the first messages create the machine's items
                payload, count = sim.batch(batch_age)
                with run.message("batch" if steady else "warm-up", len(payload)):
                    run.publish(device, telemetry, payload)
                if steady:
                    m.readings["batch"] = count
                    m.last_batch["batch"] = json.loads(payload)
                # The health message right after its batch, as the agent sends it.
                payload = sim.health()
                with run.message("health" if steady else "warm-up", len(payload)):
                    run.publish(device, health, payload)
                _pause_until(begin + (minute + 1) * pace_s)
            if not any(key[3] == "raw batch object" for key in m.per_kind.get("batch", {})):
                raise RuntimeError(
                    "no raw S3 PUT was filed for a batch: the ingest function writes it "
                    "(cloud/ingest/raw_archive.py) under raw/"
                )
            # One alert opening and clearing: two crafted batches (design brief's engine rule).
            base = sim.now_ms + 60_000
            hot = crafted_batch(machine, sim.seq + 1, [83.0, 83.4, 83.8, 84.1], end_ms=base)
            cool = crafted_batch(machine, sim.seq + 2, [65.0, 64.0], end_ms=base + 15_000)
            with run.message("alert cycle"):
                run.publish(device, telemetry, hot)
                run.publish(device, telemetry, cool)
            sim.seq += 2
            sim.now_ms = sim.next_reading_ms = base + 20_000
            # Longer batches, for the design options: the same machine's next readings.
            for age in PROBE_AGES_S:
                kind = f"batch {age:.0f} s"
                for _ in range(PROBE_BATCHES):
                    payload, count = sim.batch(age)
                    if len(payload) > int(agent_default("batch_max_bytes")):
                        raise RuntimeError(f"a {kind} probe is {len(payload)} B, over the budget")
                    with run.message(kind, len(payload)):
                        run.publish(device, telemetry, payload)
                    m.readings[kind] = count
                    m.last_batch[kind] = json.loads(payload)
        run.invoke("offline check, 1 machine", "OfflineCheckFunction")
        run.invoke("rollups, 1 machine", "RollupsFunction")
        m.unattributed = meter.unattributed
    m.wall_s = time.monotonic() - started
    shutil.rmtree(state, ignore_errors=True)
    return m


def _pause_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class ShiftSensor(SimulatedSensor):
    """The simulator's machine worked on a site's shifts only: engine off outside them."""

    def working(self, elapsed_s: float) -> float:
        wall = WEEK_START_S + elapsed_s
        day = int((wall - WEEK_START_S) // 86400) % 7
        hour = (wall % 86400) / 3600
        if day >= WORK_DAYS or not SHIFT_START_H_UTC <= hour < SHIFT_END_H_UTC:
            return 0.0
        return super().working(elapsed_s)


# The agent's settings a replay uses (device/config.py defaults unless overridden).
REPLAYED = (
    "batch_max_bytes",
    "batch_max_age_s",
    "health_interval_s",
    "health_early_min_s",
    "early_min_interval_s",
    "early_burst",
    "early_refill_s",
    "deadband_temperature",
    "deadband_humidity",
    "deadband_pressure",
)
LIVE = dict(zip(("batch_max_age_s", "health_interval_s"), REPORTING_PROFILES["live"], strict=True))
# The envelope of a message around its readings (schema-1 fields), for the byte budget.
ENVELOPE_BYTES = 250


@dataclass
class Replay:
    """What one machine sends over `days`, as the agent's own rules decide it."""

    days: float
    reasons: Counter[str] = field(default_factory=Counter)  # batches by why they left
    kinds: Counter[str] = field(default_factory=Counter)  # batches by the probe they cost
    health: int = 0
    seen: int = 0  # last-seen refreshes in the cloud (at most one per SEEN_REFRESH_MS)
    waits: list[float] = field(default_factory=list)  # a moved value's wait to leave, s
    batches: list[tuple[float, str]] = field(default_factory=list)  # (time s, reason)


def priced_as(span_s: float) -> str:
    """The measured kind a batch holding `span_s` seconds of readings costs."""
    fitting = [age for age in PROBE_AGES_S if age <= span_s]
    return f"batch {max(fitting)} s" if fitting else "batch"


class RampSensor:
    """A machine steady for `quiet_s`, then a value rising 1.2 °C a minute: a move."""

    def __init__(self, name: str, quiet_s: float, clock: list[float]) -> None:
        self.name = name
        self._quiet_s = quiet_s
        self._clock = clock

    def read(self) -> Any:
        from device.sensors.base import Measurement

        rise = max(0.0, self._clock[0] - self._quiet_s) / 50
        return Measurement(60.0 + rise, 40.0, 1000.0)


def replay(
    equipment: str | None,
    days: float = 1.0,
    shifts: bool = False,
    settings: Mapping[str, float] | None = None,
) -> Replay:
    """`days` of one machine at one reading per 5 s, through the agent's own rules.

    The agent's deadband (device/planning.py Deadband), early budget (EarlyBudget), age and
    size rule (device/batcher.py batch_due) and health schedule (device/schedule.py
    HealthSchedule), with the defaults of device/config.py unless `settings` override them,
    over the simulated sensors of `equipment` (engine and cabin, each read every 10 s), worked
    on a site's shifts with `shifts` (ShiftSensor). `equipment` None: a move (RampSensor)."""
    from device.batcher import batch_due
    from device.planning import FIRST_BATCH_MAX_AGE_S, Deadband, EarlyBudget
    from device.schedule import HEALTH_JOIN_S, HealthSchedule

    cfg = {name: float(agent_default(name)) for name in REPLAYED}
    cfg.update(settings or {})
    budget, max_age = int(cfg["batch_max_bytes"]), cfg["batch_max_age_s"]
    clock = [0.0]
    if equipment is None:
        sensors: list[Any] = [RampSensor("engine", 3600.0, clock)]
    else:
        kind = ShiftSensor if shifts else SimulatedSensor
        start = WEEK_START_S if shifts else SENSOR_CLOCK_START_S
        sensors = [
            kind(name, equipment, seed=7, elapsed=lambda: clock[0], wall=lambda: start + clock[0])
            for name in ("engine", "cabin")
        ]
    deadband = Deadband({f: cfg[f"deadband_{f}"] for f in ("temperature", "humidity", "pressure")})
    early = EarlyBudget(
        cfg["early_min_interval_s"], int(cfg["early_burst"]), cfg["early_refill_s"], 0
    )
    health = HealthSchedule(
        0.0,
        cfg["health_interval_s"],
        cfg["health_early_min_s"],
        heartbeat_s=max_age,
        wait_s=max(max_age, HEALTH_JOIN_S),
    )
    out = Replay(days)
    seen_at = -math.inf
    pending, oldest, moved_at, formed = 0, None, None, False

    def touch(at: float) -> None:
        nonlocal seen_at
        if at - seen_at >= SEEN_REFRESH_MS / 1000:
            out.seen += 1
            seen_at = at

    def age_limit() -> float:
        return max_age if formed else min(max_age, FIRST_BATCH_MAX_AGE_S)

    def next_batch_in() -> float | None:
        if oldest is None:
            return None
        wait = oldest + age_limit() - clock[0]
        soon = early.wait_s(int(clock[0] * 1000)) if moved_at is not None else None
        return max(0.0, wait if soon is None else min(wait, soon))

    turn = 0
    while clock[0] < days * 86400:
        now = clock[0]
        sensor = sensors[turn % len(sensors)]
        m = sensor.read()
        reading = reading_dict(sensor.name, 0, m.temperature, m.humidity, m.pressure)
        pending += len(encode_message(reading)) + 1
        oldest = now if oldest is None else oldest
        values = {"temperature": m.temperature, "humidity": m.humidity, "pressure": m.pressure}
        if deadband.observe(sensor.name, values) and moved_at is None:
            moved_at = now
        reason = None
        if batch_due(pending + ENVELOPE_BYTES, now - oldest, False, budget, age_limit()):
            reason = "full" if pending + ENVELOPE_BYTES >= budget else "age"
        elif moved_at is not None and early.wait_s(int(now * 1000)) == 0.0:
            reason = "moved"
        if reason is not None:
            out.reasons[reason] += 1
            out.kinds[priced_as(now - oldest + READING_INTERVAL_S)] += 1
            out.batches.append((now, reason))
            if moved_at is not None:
                out.waits.append(now - moved_at)
            early.left(int(now * 1000), early=reason == "moved")
            deadband.published()
            pending, oldest, moved_at, formed = 0, None, None, True
            touch(now)
        if health.due(now, 0, True, batch_left=reason is not None, batch_in_s=next_batch_in):
            health.sent(now, 0)
            out.health += 1
            touch(now + 1.0)  # right after its batch, as the agent sends it
        clock[0] += READING_INTERVAL_S
        turn += 1
    return out


def replay_kind(
    equipment: str, shifts: bool = False, settings: Mapping[str, float] | None = None
) -> Replay:
    """A day around the clock, or a week (from a Monday) on a site's shifts."""
    return replay(equipment, 7.0 if shifts else REPLAY_HOURS / 24, shifts, settings)


def freshness(settings: Mapping[str, float] | None = None) -> tuple[int, float, float]:
    """A move after a quiet hour: batches in its first 20 minutes, the longest a moved value
    then waits to leave (its second hour), and the longest wait of the whole move."""
    r = replay(None, 2 / 24, settings=settings)
    move = [t for t, reason in r.batches if t > 3600]
    first = sum(1 for t in move if t <= 3600 + 1200)
    gaps = [b - a for a, b in itertools.pairwise(move) if a >= 3600 + 1200]
    return first, max(gaps, default=0.0), max(r.waits, default=0.0)


# ---------- the model ----------
@dataclass(frozen=True)
class Design:
    """The choices that set the cost; the defaults are what the code does today."""

    name: str
    # Batches a month by the measured kind whose units they cost: the `live` profile's minute
    # batches ("batch"), the probes ("batch 300 s" ... "batch 900 s"; see priced_as).
    mix: tuple[tuple[str, float], ...] = (("batch", MONTH_S / 60),)
    health: float = MONTH_S / 60  # health messages a month
    seen: float = MONTH_S / (SEEN_REFRESH_MS / 1000)  # last-seen refreshes a month
    platform_logs: bool = True
    info_logs: bool = True
    trace_ingest: bool = True
    raw: str = "object per batch"  # or "firehose": raw batches aggregated before S3


def design(name: str, replays: list[Replay]) -> Design:
    """The mean machine of these replays, a month of it."""
    month = MONTH_S / 86400 / len(replays)
    kinds: Counter[str] = Counter()
    for r in replays:
        kinds.update({k: v / r.days * month for k, v in r.kinds.items()})
    return Design(
        name,
        mix=tuple(sorted(kinds.items())),
        health=sum(r.health / r.days for r in replays) * month,
        seen=sum(r.seen / r.days for r in replays) * month,
    )


@dataclass
class Line:
    what: str
    quantity: float
    unit: str
    usd: float


class Facts:
    """What the template says about memory, schedules, alarms, tracing and log retention."""

    def __init__(self, template: LocalTemplate) -> None:
        globals_ = template.document.get("Globals", {}).get("Function", {})
        self.memory_mb: dict[str, int] = {}
        self.timeout_s: dict[str, int] = {}
        for logical_id in template.of_type("AWS::Serverless::Function"):
            props = template.properties(logical_id)
            memory = props.get("MemorySize", globals_.get("MemorySize", 128))
            self.memory_mb[logical_id] = int(memory)
            self.timeout_s[logical_id] = int(props.get("Timeout", globals_.get("Timeout", 3)))
        self.traced: dict[str, bool] = {}
        self.platform_logs: dict[str, bool] = {}
        for logical_id in template.of_type("AWS::Serverless::Function"):
            props = template.properties(logical_id)
            self.traced[logical_id] = props.get("Tracing", globals_.get("Tracing")) == "Active"
            system = (props.get("LoggingConfig") or {}).get("SystemLogLevel", "INFO")
            # START, END and REPORT are INFO lines of the platform: WARN drops them.
            self.platform_logs[logical_id] = system in ("DEBUG", "INFO")
        self.rate_s = {
            spec.logical_id.split(".")[0]: rate_seconds(spec.expression)
            for spec in template.schedules()
        }
        # Alarm metrics: those an alarm lists (one, or each of a math expression's), and
        # apart those a Metrics Insights query may analyze: billed per metric analyzed and
        # outside the free tier; counted here as one per rule the query names (its upper
        # bound: IoT's series of a rule exist once the rule has reported the metric).
        self.alarm_metrics = 0
        self.insights_alarm_metrics = 0
        for logical_id in template.of_type("AWS::CloudWatch::Alarm"):
            props = template.properties(logical_id)
            queries = props.get("Metrics", [])
            listed = [q for q in queries if "MetricStat" in q]
            insights = [
                q for q in queries if str(q.get("Expression", "")).lstrip().startswith("SELECT")
            ]
            self.alarm_metrics += len(listed) if queries else 1
            for query in insights:
                self.insights_alarm_metrics += str(query["Expression"]).count(" OR ") + 1
        self.retention_days = int(template.parameters.get("LogRetentionDays", "30"))


class Model:
    """Monthly volumes times measured units times prices."""

    def __init__(self, m: Measured, facts: Facts) -> None:
        self.m = m
        self.f = facts

    # ---- per message ----
    def rule_units(self, kind: str) -> tuple[float, float]:
        """Rules triggered and actions executed per message, in 5 KB units of the message."""
        rows = self.m.rules[kind]
        triggered = sum(t * math.ceil(b / IOT_METERING_BYTES) for t, _, b in rows) / len(rows)
        actions = sum(a * math.ceil(b / IOT_METERING_BYTES) for _, a, b in rows) / len(rows)
        return triggered, actions

    def lambda_ms(self, inv: Invocation) -> float:
        """Modelled billed duration in AWS: CPU at the function's vCPU share, plus latency."""
        requests = inv.requests
        share = LAMBDA_VCPU_MB / self.f.memory_mb[inv.function]
        latency = sum(
            AWS_LATENCY_MS.get(r, AWS_LATENCY_MS.get(r.split(".")[0], 10.0)) for r in requests
        )
        return math.ceil(inv.cpu_ms * share + latency)

    def per_message(self, kind: str) -> tuple[float, float]:
        """Invocations and GB-seconds per message of `kind`."""
        calls = self.m.invocations.get(kind, [])
        n = max(1, self.m.counts[kind])
        gb_s = sum(self.lambda_ms(c) / 1000 * self.f.memory_mb[c.function] / 1024 for c in calls)
        return len(calls) / n, gb_s / n

    def log_bytes(self, kind: str, d: Design) -> float:
        n = max(1, self.m.counts[kind])
        calls = len(self.m.invocations.get(kind, [])) / n
        function = (self.m.invocations.get(kind) or [Invocation("IngestFunction", 0, 0, [])])[0]
        shown = d.platform_logs and self.f.platform_logs.get(function.function, True)
        platform = len(PLATFORM_LOG_LINES) * calls if shown else 0
        handler = self.m.log_bytes[kind] / n if d.info_logs else 0
        return platform + handler + self.m.emf_bytes[kind] / n

    # ---- per device ----
    def device_lines(self, d: Design) -> list[Line]:
        m = self.m
        volume = dict(d.mix)
        volume["health"] = d.health
        lines = [
            Line(
                "IoT Core connection", MONTH_S / 60, "minutes", MONTH_S / 60 * IOT_CONNECTION_MINUTE
            )
        ]
        triggered = sum(v * self.rule_units(k)[0] for k, v in volume.items())
        actions = sum(v * self.rule_units(k)[1] for k, v in volume.items())
        lines.append(
            Line("IoT rules triggered", triggered, "5 KB units", triggered * IOT_RULE_TRIGGERED)
        )
        lines.append(
            Line("IoT rule actions executed", actions, "5 KB units", actions * IOT_ACTION_EXECUTED)
        )
        calls = sum(v * self.per_message(k)[0] for k, v in volume.items())
        gb_s = sum(v * self.per_message(k)[1] for k, v in volume.items())
        lines.append(Line("Lambda requests (ingest)", calls, "invocations", calls * LAMBDA_REQUEST))
        lines.append(Line("Lambda duration (ingest)", gb_s, "GB-s", gb_s * LAMBDA_GB_SECOND_ARM))
        # Requests by purpose; last seen is modelled apart (its refresh period).
        bucket: dict[tuple[str, str, str], Units] = defaultdict(Units)
        for kind, v in volume.items():
            for (_, service, op, purpose), units in m.mean(kind).items():
                if purpose in SEEN_PURPOSES:
                    continue
                if purpose == "raw batch object" and d.raw == "firehose":
                    continue
                if purpose in ALERT_PURPOSES:
                    continue  # priced per alert below, not per batch
                bucket[(service, "" if service == "dynamodb" else op, purpose)].add(units, v)
        seen = self.seen_units("last seen")
        # Every run of the offline check reads each machine's last-seen entry (its partition).
        reads = MONTH_S / self.f.rate_s["OfflineCheckFunction"] * seen.bytes / 4096 * 0.5
        bucket[("dynamodb", "", "offline check reads every last seen")].add(Units(rru=reads))
        bucket[("dynamodb", "", "last seen")].add(seen, d.seen)
        # A warm ingest instance reads last seen before each refresh, and never in between.
        bucket[("dynamodb", "", "last seen read")].add(self.seen_units("last seen read"), d.seen)
        if d.raw == "firehose":
            gb = (
                sum(
                    v * math.ceil(self.raw_bytes(k) / IOT_METERING_BYTES) * 5 * 1024
                    for k, v in d.mix
                )
                / 1e9
            )
            lines.append(Line("Data Firehose ingestion (5 KB records)", gb, "GB", gb * FIREHOSE_GB))
        cycle = self.alert_extra()
        for key, units in cycle.items():
            bucket[key].add(units, ALERT_CYCLES_PER_MONTH)
        for (service, op, purpose), units in sorted(bucket.items()):
            lines += _priced(service, op, purpose, units)
        publishes = cycle.get(("sns", "Publish", "alert notification"), Units()).requests
        emails = publishes * ALERT_CYCLES_PER_MONTH
        lines.append(
            Line("SNS e-mail deliveries (one subscriber)", emails, "e-mails", emails * SNS_EMAIL)
        )
        logs = sum(v * self.log_bytes(k, d) for k, v in volume.items()) / 1e9
        lines.append(Line("CloudWatch Logs ingested (ingest)", logs, "GB", logs * LOGS_INGEST_GB))
        stored = logs * self.f.retention_days / 30
        lines.append(
            Line(
                "CloudWatch Logs stored (retention)",
                stored,
                "GB-month",
                stored * LOGS_STORED_GB_MONTH,
            )
        )
        if self.f.traced["IngestFunction"] and d.trace_ingest:
            rate = FLEET * calls / MONTH_S
            traces = (min(rate, 1.0) + 0.05 * max(rate - 1.0, 0.0)) * MONTH_S / FLEET
            lines.append(
                Line(
                    f"X-Ray traces (ingest, share of {FLEET:,})",
                    traces,
                    "traces",
                    traces * XRAY_TRACE_RECORDED,
                )
            )
        lines += self.rollup_lines(d)
        lines += self.storage_lines(d)
        return lines

    def seen_units(self, purpose: str) -> Units:
        """One last-seen write or read, as measured."""
        total = Units()
        for kind in ("batch", "health"):
            for (_, _, _, measured), units in self.m.per_kind.get(kind, {}).items():
                if measured == purpose:
                    total.add(units)
        return _scaled(total, 1.0 / max(1.0, total.requests))

    def seen_per_minute(self) -> float:
        touches = sum(
            u.requests
            for kind in ("batch", "health")
            for (_, _, _, p), u in self.m.per_kind.get(kind, {}).items()
            if p == "last seen"
        )
        return touches / max(1, self.m.minutes)

    def alert_extra(self) -> dict[tuple[str, str, str], Units]:
        """What one alert opening and clearing adds to the two batches that carry it."""
        extra: dict[tuple[str, str, str], Units] = defaultdict(Units)
        for (_, service, op, purpose), units in self.m.mean("alert cycle").items():
            if purpose in ALERT_PURPOSES:
                extra[(service, "" if service == "dynamodb" else op, purpose)].add(units)
        return dict(extra)

    def raw_month(self, d: Design) -> tuple[float, float]:
        """Raw objects and bytes a device stores in a month."""
        objects = sum(v for _, v in d.mix)
        return objects, sum(v * self.raw_bytes(k) for k, v in d.mix)

    def rollup_lines(self, d: Design) -> list[Line]:
        """What the daily Athena query costs for one machine: it reads the machine's raw
        objects of the day and of the next (batches sent after midnight), and lists those two
        partitions (one LIST for up to 1,000 keys)."""
        objects, size = self.raw_month(d)
        if d.raw == "firehose":
            return []
        runs = MONTH_S / self.f.rate_s["RollupsFunction"]
        per_run_objects = 2 * objects / (MONTH_S / 86400)
        scanned_tb = 2 * size / 1e12
        lists = runs * 2 * max(1, math.ceil(per_run_objects / 2 / 1000))
        return [
            Line(
                "Athena: data scanned by the daily rollup (two days)",
                scanned_tb * 1000,
                "GB",
                scanned_tb * ATHENA_TB_SCANNED,
            ),
            Line(
                "S3 GetObject: Athena reads the raw objects",
                runs * per_run_objects,
                "requests",
                runs * per_run_objects * S3_GET,
            ),
            Line(
                "S3 ListObjectsV2: Athena lists the partitions",
                lists,
                "requests",
                lists * S3_PUT_OR_LIST,
            ),
        ]

    def storage_lines(self, d: Design) -> list[Line]:
        week = 7 * 86400
        objects, size = self.raw_month(d)
        item = sum(v * self.hot_item_bytes(k) for k, v in d.mix) / max(1.0, objects)
        hot = objects * week / MONTH_S * (item + DYNAMODB_ITEM_OVERHEAD_BYTES)
        gb = hot / 1e9
        year = size / 1e9 * 6.5  # stored on average over the first twelve months
        return [
            Line("DynamoDB storage (7 days of readings)", gb, "GB-month", gb * DYNAMODB_GB_MONTH),
            Line("DynamoDB point-in-time recovery", gb, "GB-month", gb * DYNAMODB_PITR_GB_MONTH),
            Line("S3 storage, raw (first-year mean)", year, "GB-month", year * S3_GB_MONTH),
        ]

    def hot_item_bytes(self, kind: str) -> float:
        """Bytes of the hot-store item of a batch of this kind, as measured."""
        for (_, _, _, purpose), units in self.m.mean(kind).items():
            if purpose == "recent readings" and units.requests:
                return units.bytes / units.requests
        return 0.0

    def raw_bytes(self, kind: str) -> float:
        rows = self.m.rules[kind]
        return sum(b for _, _, b in rows) / len(rows)

    # ---- per fleet ----
    def fixed_lines(self, d: Design, idle: bool) -> list[Line]:
        """Monthly items that do not grow with devices: schedules, alarms, metrics, budget."""
        lines: list[Line] = []
        for name in SCHEDULED:
            kind = f"idle {name}"
            runs = MONTH_S / self.f.rate_s[name]
            calls, gb_s = self.per_message(kind)
            short = name.removesuffix("Function")
            lines.append(
                Line(
                    f"Lambda requests ({short})",
                    runs * calls,
                    "invocations",
                    runs * calls * LAMBDA_REQUEST,
                )
            )
            lines.append(
                Line(
                    f"Lambda duration ({short})",
                    runs * gb_s,
                    "GB-s",
                    runs * gb_s * LAMBDA_GB_SECOND_ARM,
                )
            )
            for (_, service, op, purpose), units in sorted(self.m.mean(kind).items()):
                lines += _priced(service, op, f"{purpose} ({short})", _scaled(units, runs))
            logs = runs * self.log_bytes(kind, d) / 1e9
            lines.append(
                Line(f"CloudWatch Logs ingested ({short})", logs, "GB", logs * LOGS_INGEST_GB)
            )
            if self.f.traced[name]:
                traces = runs * calls  # far below one a second: every invocation is traced
                lines.append(
                    Line(f"X-Ray traces ({short})", traces, "traces", traces * XRAY_TRACE_RECORDED)
                )
        if not idle:
            runs = MONTH_S / self.f.rate_s["RollupsFunction"]
            gb_s = runs * ATHENA_FLEET_QUERY_S * self.f.memory_mb["RollupsFunction"] / 1024
            lines.append(
                Line(
                    f"Lambda duration (rollups waiting for Athena, {FLEET:,} machines, estimated)",
                    gb_s,
                    "GB-s",
                    gb_s * LAMBDA_GB_SECOND_ARM,
                )
            )
        if d.raw == "firehose" and not idle:
            objects = MONTH_S / FIREHOSE_BUFFER_S
            lines.append(
                Line(
                    "S3 PutObject: Firehose objects", objects, "requests", objects * S3_PUT_OR_LIST
                )
            )
        kms = (KMS_KEY_CALLERS_IDLE if idle else KMS_KEY_CALLERS) * 730
        lines.append(
            Line("KMS requests, AWS managed keys (assumed)", kms, "requests", kms * KMS_REQUEST)
        )
        lines.append(
            Line(
                "CloudWatch alarms, metrics listed",
                self.f.alarm_metrics,
                "alarm metrics",
                self.f.alarm_metrics * ALARM_METRIC_MONTH,
            )
        )
        lines.append(
            Line(
                "CloudWatch alarms, Metrics Insights (metrics analyzed, at most)",
                self.f.insights_alarm_metrics,
                "query metrics",
                self.f.insights_alarm_metrics * ALARM_METRIC_MONTH,
            )
        )
        kinds = [k for k in self.m.metrics if k.startswith("idle") or not idle]
        metrics = set().union(*(self.m.metrics[k] for k in kinds)) if kinds else set()
        lines.append(
            Line(
                "CloudWatch custom metrics (EMF)",
                len(metrics),
                "metrics",
                len(metrics) * CUSTOM_METRIC_MONTH,
            )
        )
        lines.append(Line("AWS Budgets (one budget, no actions)", 1, "budget", BUDGET_MONTH))
        return lines

    def total(self, d: Design) -> tuple[float, float, float]:
        """Per device-month: device items, the device's share of fixed items, and their sum."""
        device = sum(line.usd for line in self.device_lines(d))
        fixed = sum(line.usd for line in self.fixed_lines(d, idle=False)) / FLEET
        return device, fixed, device + fixed


def _cpu(calls: list[Invocation]) -> float:
    return sum(c.cpu_ms for c in calls) / max(1, len(calls))


def _scaled(units: Units, factor: float) -> Units:
    out = Units()
    out.add(units, factor)
    return out


def _priced(service: str, op: str, purpose: str, u: Units) -> list[Line]:
    """Price one group of requests in the unit its service bills."""
    if service == "dynamodb":
        lines = []
        if u.wru or u.index_wru:
            writes = u.wru + u.index_wru
            note = f" (incl. {u.index_wru:,.0f} index)" if u.index_wru else ""
            lines.append(
                Line(
                    f"DynamoDB writes: {purpose}{note}",
                    writes,
                    "write units",
                    writes * DYNAMODB_WRITE_UNIT,
                )
            )
        if u.rru:
            lines.append(
                Line(f"DynamoDB reads: {purpose}", u.rru, "read units", u.rru * DYNAMODB_READ_UNIT)
            )
        return lines
    price = {
        "s3": S3_GET if op == "GetObject" else S3_PUT_OR_LIST,
        "sns": SNS_PUBLISH,
        "iot": IOT_REGISTRY_OPERATION,
    }.get(service)
    if price is None:
        raise ValueError(f"{service} {op}: no price for this service in the model")
    label = {"s3": f"S3 {op}", "sns": "SNS Publish", "iot": f"IoT registry {op}"}[service]
    return [Line(f"{label}: {purpose}", u.requests, "requests", u.requests * price)]


# ---------- printing ----------
def table(lines: list[Line], title: str) -> float:
    """Print line items, dearest first, and return their total."""
    print(f"\n{title}")
    print(f"  {'line item':<62} {'quantity':>13} {'unit':<13} {'USD':>9}")
    total = 0.0
    for line in sorted(lines, key=lambda x: -x.usd):
        if not line.quantity:
            continue
        total += line.usd
        print(f"  {line.what:<62} {line.quantity:>13,.1f} {line.unit:<13} {line.usd:>9.4f}")
    print(f"  {'total':<62} {'':>13} {'':<13} {total:>9.4f}")
    return total


def print_measured(model: Model) -> None:
    m = model.m
    print(
        f"\nMeasured per message (mean of {m.counts['batch']} batches of "
        f"{m.readings['batch']:.0f} readings, {model.raw_bytes('batch'):.0f} B, and "
        f"{m.counts['health']} health messages of {model.raw_bytes('health'):.0f} B):"
    )
    for kind in ("batch", "health"):
        triggered, actions = model.rule_units(kind)
        calls = m.invocations[kind]
        wall = sum(c.wall_ms for c in calls) / len(calls)
        modelled = sum(model.lambda_ms(c) for c in calls) / len(calls)
        print(
            f"  {kind}: rule triggers {triggered:.2f}, rule actions {actions:.2f} (5 KB units); "
            f"Lambda invocations {len(calls) / m.counts[kind]:.2f}: local wall {wall:.1f} ms, "
            f"CPU {_cpu(calls):.1f} ms, modelled in AWS {modelled:.0f} ms; log bytes "
            f"{model.log_bytes(kind, Design('as built')):.0f}"
        )
        for (caller, service, op, purpose), u in sorted(m.mean(kind).items()):
            units = []
            if u.wru or u.index_wru:
                units.append(f"{u.wru:.2f} WRU + {u.index_wru:.2f} index WRU")
            if u.rru:
                units.append(f"{u.rru:.2f} RRU")
            if u.bytes:
                units.append(f"{u.bytes:,.0f} B")
            print(
                f"    {caller:<16} {service:<8} {op:<15} {purpose:<20} {u.requests:5.2f} req  "
                + ", ".join(units)
            )
    print(
        f"  last seen: {model.seen_per_minute():.2f} writes per simulated minute "
        f"(the engine rewrites it at most every {SEEN_REFRESH_MS / 1000:.0f} s)"
    )
    parts = [
        f"{u.requests:.0f} writes of {purpose} ({u.wru + u.index_wru:.0f} WRU)"
        if service == "dynamodb"
        else f"{u.requests:.0f} {service} {op}"
        for (service, op, purpose), u in sorted(model.alert_extra().items())
    ]
    print("  opening and clearing one alert adds: " + ", ".join(parts))
    stray = sum(
        u.requests
        for kind in m.readings
        for (_, _, _, purpose), u in m.per_kind.get(kind, {}).items()
        if purpose in ALERT_PURPOSES
    )
    print(f"  alert requests during the measured batches (left out of their means): {stray:.0f}")
    for probe in sorted(k for k in m.readings if k.startswith("batch ")):
        triggered, actions = model.rule_units(probe)
        calls = m.invocations[probe]
        writes = sum(
            u.requests for (_, _, op, _), u in m.mean(probe).items() if op == "BatchWriteItem"
        )
        print(
            f"  {probe} probe: {m.readings[probe]:.0f} readings, {model.raw_bytes(probe):,.0f} B, "
            f"rule triggers {triggered:.0f}, actions {actions:.0f}, {writes:.0f} BatchWriteItem, "
            f"modelled Lambda {sum(model.lambda_ms(c) for c in calls) / len(calls):.0f} ms"
        )
    same = m.mean("offline check, 1 machine") == m.mean("idle OfflineCheckFunction")
    print(
        "  offline check with the machine online: "
        + ("the same requests as on empty tables" if same else "more requests than when empty")
    )
    print(f"  requests outside handlers and rule actions (setup, provisioning): {m.unattributed}")


@functools.cache
def _replay_cached(equipment: str, shifts: bool, settings: tuple[tuple[str, float], ...]) -> Replay:
    return replay_kind(equipment, shifts, dict(settings))


def fleet(settings: Mapping[str, float] | None = None, shifts: bool = False) -> list[Replay]:
    """The simulated fleet (one machine of each kind, commands/simulator/fleet.py)."""
    key = tuple(sorted((settings or {}).items()))
    return [_replay_cached(equipment, shifts, key) for equipment in FLEET_MIX]


def one(equipment: str, settings: Mapping[str, float] | None = None) -> list[Replay]:
    return [_replay_cached(equipment, False, tuple(sorted((settings or {}).items())))]


BEFORE = {"health_interval_s": 900.0, "health_early_min_s": 300.0, "early_refill_s": 0.0}


def designs(m: Measured) -> list[Design]:
    """The default profile as shipped (the fleet around the clock and on shifts, steady and
    moving machines), the `live` profile, and options that change configuration only."""
    return [
        design("default profile: the simulated fleet around the clock (worst case)", fleet()),
        design("default profile: the fleet on site shifts (07-17 h, Mon-Fri)", fleet(shifts=True)),
        design("default profile: a steady machine (site cabin)", one("site-cabin")),
        design("default profile: a working excavator, around the clock", one("excavator")),
        design("live profile: a batch and a health message a minute", fleet(LIVE)),
        design("before: health every 15 min, early batches every 5 min", fleet(BEFORE)),
        design("before, the fleet on site shifts", fleet(BEFORE, shifts=True)),
        design("before, a steady machine (site cabin)", one("site-cabin", BEFORE)),
        design("no early budget (early_refill_s = 0)", fleet({"early_refill_s": 0.0})),
        design(
            "health every 15 min (health_interval_s = 900)", fleet({"health_interval_s": 900.0})
        ),
        design(f"early_refill_s = {SHORTER_REFILL_S}", fleet({"early_refill_s": SHORTER_REFILL_S})),
        design("early_refill_s = 900", fleet({"early_refill_s": 900.0})),
        design("early_burst = 6", fleet({"early_burst": 6.0})),
    ]


def print_replays() -> None:
    """Messages a day of each simulated kind, and how fresh moved values stay."""
    for shifts in (False, True):
        when = "on shifts, a week's mean" if shifts else "around the clock"
        print(f"\nThe default profile replayed, {when} (a day):")
        for equipment, r in zip(FLEET_MIX, fleet(shifts=shifts), strict=True):
            per_day = {k: v / r.days for k, v in r.reasons.items()}
            waits = sorted(r.waits)
            p95 = waits[int(0.95 * (len(waits) - 1))] if waits else 0.0
            aged, full = per_day.get("age", 0), per_day.get("full", 0)
            print(
                f"  {equipment:<15} {sum(per_day.values()):5.0f} batches ({aged:.0f} "
                f"at 15 min, {full:.0f} full, {per_day.get('moved', 0):.0f} "
                f"early), {r.health / r.days:4.0f} health messages, {r.seen / r.days:4.0f} "
                f"last-seen writes; a moved value waited p95 {p95 / 60:.1f} min, at most "
                f"{max(waits, default=0.0) / 60:.1f} min"
            )
    first, then, worst = freshness()
    print(
        f"\nA move after a quiet hour (1.2 °C a minute): {first} batches in its first 20 min, "
        f"then one at least every {then / 60:.1f} min; a moved value waited at most "
        f"{worst / 60:.1f} min"
    )
    first, then, worst = freshness({"early_refill_s": 0.0})
    print(
        f"  without the budget (early_refill_s = 0): {first} in the first 20 min, then every "
        f"{then / 60:.1f} min"
    )


def report(m: Measured, facts: Facts, args: argparse.Namespace) -> None:
    model = Model(m, facts)
    print(
        f"Cost model, {PRICE_REGION} list prices taken {PRICES_TAKEN}; one reading per "
        f"{READING_INTERVAL_S:.0f} s per device, {FLEET:,} devices, a month of 730 h.\nMeasured "
        f"on the local stack: {m.minutes} simulated minutes at {args.pace} s each "
        f"(whole run {m.wall_s:.0f} s)."
    )
    print("Prices assumed, not confirmed on that day: " + ", ".join(UNCONFIRMED))
    print_measured(model)
    options = designs(m)
    now = options[0]
    print_replays()
    device = table(model.device_lines(now), f"Per device-month, {now.name} (grows with devices):")
    fixed = table(
        model.fixed_lines(now, idle=False),
        "Fixed per month, whole fleet (scheduled functions, alarms, metrics):",
    )
    per_device = device + fixed / FLEET
    print(
        f"\nPer device-month at {FLEET:,} devices: {device:.4f} + {fixed:.2f} / {FLEET:,} = "
        f"${per_device:.4f} (target <= $0.05: {'met' if per_device <= 0.05 else 'NOT met'}); "
        f"{FLEET:,} devices: ${per_device * FLEET:,.2f} a month"
    )
    live = next(d for d in options if d.name.startswith("live profile"))
    dev, fix, tot = model.total(live)
    print(f"Per device-month at {FLEET:,} devices, {live.name}: {dev:.4f} + {fix:.4f} = ${tot:.4f}")
    table(model.device_lines(live), f"Per device-month, {live.name}:")
    idle_lines = model.fixed_lines(now, idle=True)
    idle = table(
        idle_lines, "Idle, no device sending (schedules, alarms and metrics keep running):"
    )
    # A Metrics Insights alarm's bill depends on the metrics it happens to analyze: with one,
    # the idle figure is only an upper bound.
    bound = "at most " if facts.insights_alarm_metrics else ""
    print(
        f"  idle at list price: {bound}${idle:.4f} a month, {facts.alarm_metrics} listed alarm "
        f"metrics, {facts.insights_alarm_metrics} Metrics Insights metrics "
        f"(target <= ${IDLE_TARGET_USD:.2f}: {'met' if idle <= IDLE_TARGET_USD else 'NOT met'})"
    )
    print(f"  with the never-expiring free tiers: ${_idle_free(idle_lines):.4f} a month")
    print(
        "  silent machines add nothing: the rollups query only the machines heard from "
        "since the day began"
    )
    print_storage(model, now)
    print(f"\nProfiles and options, per device-month at {FLEET:,} devices:")
    print(f"  {'option':<62} {'device':>8} {'fixed':>8} {'total':>8}  target")
    for d in options:
        dev, fix, tot = model.total(d)
        verdict = "met" if tot <= 0.05 else "-"
        print(f"  {d.name:<62} {dev:>8.4f} {fix:>8.4f} {tot:>8.4f}  {verdict}")
    steady = next(d for d in options if d.name.endswith("(site cabin)"))
    table(model.device_lines(steady), f"Per device-month, {steady.name}:")


def _idle_free(lines: list[Line]) -> float:
    """The idle bill once the never-expiring free tiers are taken off."""
    by_unit: dict[str, float] = defaultdict(float)
    usd = 0.0
    for line in lines:
        if line.unit in ("invocations", "GB-s", "traces", "alarm metrics", "metrics", "GB") and (
            line.what.startswith(("Lambda", "X-Ray", "CloudWatch"))
        ):
            by_unit[line.unit] += line.quantity
        else:
            usd += line.usd
    free = {
        "invocations": (FREE_LAMBDA_REQUESTS, LAMBDA_REQUEST),
        "GB-s": (FREE_LAMBDA_GB_SECONDS, LAMBDA_GB_SECOND_ARM),
        "traces": (FREE_XRAY_TRACES, XRAY_TRACE_RECORDED),
        "alarm metrics": (FREE_ALARM_METRICS, ALARM_METRIC_MONTH),
        "metrics": (FREE_CUSTOM_METRICS, CUSTOM_METRIC_MONTH),
        "GB": (FREE_LOGS_GB, LOGS_INGEST_GB),
    }
    for unit, quantity in by_unit.items():
        allowance, price = free[unit]
        usd += max(0.0, quantity - allowance) * price
    return usd


def print_storage(model: Model, d: Design) -> None:
    objects, size = model.raw_month(d)
    monthly = size / 1e9
    print(
        f"\nRaw data in S3 over the first year ({monthly * 1000:.1f} MB per device-month, "
        f"{objects:,.0f} objects; hot store and alerts stay flat):"
    )
    fleet = f"GB, {FLEET:,} devices"
    print(
        f"  {'month':>5} {'GB per device':>14} {fleet:>18} {'USD per device':>15} "
        f"{'USD, fleet':>11}"
    )
    for month in (1, 3, 6, 12, 24):
        gb = monthly * month
        print(
            f"  {month:>5} {gb:>14.3f} {gb * FLEET:>18.1f} {gb * S3_GB_MONTH:>15.4f} "
            f"{gb * FLEET * S3_GB_MONTH:>11.2f}"
        )
    year = sum(monthly * FLEET * k * S3_GB_MONTH for k in range(1, 13))
    print(f"  first-year storage bill for {FLEET:,} devices: ${year:,.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=60, help="simulated minutes measured")
    parser.add_argument("--pace", type=float, default=0.5, help="wall seconds per simulated minute")
    parser.add_argument("--warmup", type=int, default=3, help="first minutes left out")
    args = parser.parse_args()
    if args.minutes < 4 or args.pace < 0.1 or args.warmup < 1:
        parser.error("expected --minutes >= 4, --pace >= 0.1 and --warmup >= 1")
    measured = measure(args.minutes, args.pace, args.warmup)
    report(measured, Facts(LocalTemplate()), args)


if __name__ == "__main__":
    main()
