"""A simulation run: start it through the API, run N real agents on the local stack, finish it.

Each simulated machine is the real agent (durable queue, MQTT over mutual TLS with its own
certificate) against simulated sensors; readings carry the run id, so the run's data can be
read back through GET /api/sensors/data?runId=….
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from cloud.api.client import ApiCallError, ApiClient
from cloud.api.landing import LandingWatcher, percentile

SETTLE_S = 20.0  # how long acknowledged batches may take to appear in S3 after the agents stop
AGENT_JOIN_S = 15.0
PROGRESS_EVERY_S = 2.0


class SimulationRefusedError(RuntimeError):
    """The API refused to start the run (e.g. 5 runs are already running)."""


@dataclass(frozen=True)
class SimulateOptions:
    devices: int
    duration_s: float
    interval_s: float
    state: Path
    profile: str | None = None
    faults: tuple[str, ...] = ()
    fleet: str = "sim"
    site: str = "simulation"
    batch_age_s: float = 5.0
    seed: int = 11


@dataclass
class SimulationSummary:
    run_id: str = ""
    status: str = ""
    readings: int = 0
    queued_at_stop: int = 0
    published: int = 0
    acknowledged: int = 0
    refused: int = 0
    landed: int = 0
    landed_readings: int = 0
    readings_in_api: int = 0
    alerts_open: list[str] = field(default_factory=list)
    latency_ms: dict[str, int | None] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: int = 0

    @property
    def ok(self) -> bool:
        return self.published > 0 and self.refused == 0 and self.landed >= self.acknowledged


def machine_names(fleet: str, count: int) -> list[tuple[str, str]]:
    """Thing names and equipment: <fleet>-exc-01, <fleet>-crane-01, ..."""
    from cloud.local.fleet import fleet_names

    return [(f"{fleet}-{thing}", equipment) for thing, equipment in fleet_names(count)]


def fault_configs(names: tuple[str, ...], duration_s: float) -> tuple[Any, ...]:
    """One fault of each named kind, starting a fifth into the run, lasting half of it."""
    from device.config import FaultConfig

    start = max(1.0, duration_s / 5)
    return tuple(FaultConfig(kind=n, start_s=start, duration_s=duration_s / 2) for n in names)


class Simulation:
    """One run of the simulator; `run(stop)` returns its summary."""

    def __init__(self, opts: SimulateOptions, api: ApiClient, stream: TextIO) -> None:
        self.opts = opts
        self.api = api
        self.stream = stream
        self.summary = SimulationSummary()
        self._started = time.monotonic()
        self._agents: list[Any] = []

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        print(f"[{elapsed:5.1f}s] {text}", file=self.stream, flush=True)

    def start_run(self) -> dict[str, Any]:
        o = self.opts
        body = {
            "duration": max(1, round(o.duration_s)),
            "interval": o.interval_s,
            "devices": o.devices,
            "params": {
                "site": o.site,
                "fleet": o.fleet,
                "profile": o.profile,
                "faults": list(o.faults),
                "batchAge": o.batch_age_s,
                "source": "chantier simulate",
            },
        }
        try:
            run: dict[str, Any] = self.api.call("POST", "/api/runs/start", body)
        except ApiCallError as exc:
            if exc.status == 400:
                raise SimulationRefusedError(
                    f"the API refused the run: {exc.message} (see `chantier runs list --running`)"
                ) from None
            raise
        return run

    def _configs(self, run_id: str) -> list[Any]:
        from cloud.local.fleet import Machine, agent_config
        from cloud.local.stackinfo import StackInfo
        from provisioning.localfleet import provision_local_fleet
        from provisioning.service import DeviceSpec

        o = self.opts
        info = StackInfo.load(o.state)
        specs = [DeviceSpec(t, o.site, e) for t, e in machine_names(o.fleet, o.devices)]
        devices = provision_local_fleet(specs, state_dir=o.state)
        self.summary.reused = sum(d.reused for d in devices)
        self.say(
            f"{len(devices)} machines ready ({self.summary.reused} reused, "
            f"{len(devices) - self.summary.reused} provisioned) on site {o.site}"
        )
        faults = fault_configs(o.faults, o.duration_s)
        handle = SimpleNamespace(info=info)  # agent_config only reads the stack's description
        configs = []
        for index, device in enumerate(devices):
            machine = Machine(device.thing, device.site, device.equipment, device.bundle_dir)
            config = agent_config(
                machine,
                handle,  # type: ignore[arg-type]
                seed=o.seed + index,
                batch_age_s=o.batch_age_s,
                faults=faults,
                run_id=run_id,
            )
            sensors = tuple(
                dataclasses.replace(s, profile=o.profile) if o.profile else s
                for s in config.sensors
            )
            # A queue per run: readings still queued when a run stops must never be sent later
            # under another run's id by the same machine.
            queue_dir = Path(info.state_dir) / "devices" / device.thing / "runs" / run_id
            configs.append(
                dataclasses.replace(
                    config, sample_interval_s=o.interval_s, sensors=sensors, state_dir=queue_dir
                )
            )
        return configs

    def run(self, stop: threading.Event) -> SimulationSummary:
        import boto3

        from cloud.local.stackinfo import StackInfo
        from device.agent import Agent

        o = self.opts
        info = StackInfo.load(o.state)  # before anything else: a clear error without a stack
        run = self.start_run()
        run_id = self.summary.run_id = run["id"]
        self.say(f"run {run_id} started ({run.get('dashboardUrl') or 'no dashboard'})")
        s3 = boto3.client("s3", **info.boto3_kwargs())
        watcher = LandingWatcher(s3, info.raw_bucket, o.site)
        agents_stop = threading.Event()
        threads: list[threading.Thread] = []
        status, note = "COMPLETED", ""
        try:
            configs = self._configs(run_id)
            watcher.start()
            for config in configs:
                agent = Agent(config)
                self._agents.append(agent)
                thread = threading.Thread(
                    target=agent.run, args=(agents_stop,), name=f"agent-{config.thing}"
                )
                threads.append(thread)
                thread.start()
            deadline = time.monotonic() + o.duration_s
            next_progress = time.monotonic()
            while not stop.is_set() and time.monotonic() < deadline:
                if time.monotonic() >= next_progress:
                    self._progress(watcher, run_id, deadline)
                    next_progress += PROGRESS_EVERY_S
                stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            if stop.is_set():
                status, note = "FAILED", "stopped before its duration"
        except BaseException as exc:
            status, note = "FAILED", f"simulator error: {exc}"[:500]
            raise
        finally:
            agents_stop.set()
            for thread in threads:
                thread.join(AGENT_JOIN_S)
            self._settle(watcher, run_id)
            watcher.stop()
            self._finish(run_id, status, note)
        self._collect(watcher, run_id, info)
        return self.summary

    def _counters(self) -> dict[str, int]:
        totals = {"readings": 0, "batches_published": 0, "batches_acked": 0, "batches_refused": 0}
        for agent in self._agents:
            stats = agent.stats()
            for name in totals:
                totals[name] += int(stats.get(name, 0))
        return totals

    def _progress(self, watcher: LandingWatcher, run_id: str, deadline: float) -> None:
        c = self._counters()
        left = max(0.0, deadline - time.monotonic())
        self.say(
            f"{len(self._agents)} agents: {c['readings']} readings, "
            f"{c['batches_published']} batches published, {c['batches_acked']} acked, "
            f"{len(watcher.landed(run_id))} landed in S3; {left:.0f} s left"
        )

    def _settle(self, watcher: LandingWatcher, run_id: str) -> None:
        acked = self._counters()["batches_acked"]
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            watcher.poll()
            if len(watcher.landed(run_id)) >= acked:
                return
            time.sleep(0.2)
        self.say(f"only {len(watcher.landed(run_id))} of {acked} batches landed after {SETTLE_S} s")

    def _finish(self, run_id: str, status: str, note: str) -> None:
        try:
            run = self.api.call(
                "POST", f"/api/runs/{run_id}/finish", {"status": status, "note": note}
            )
            self.summary.status = run["status"]
        except ApiCallError as exc:
            if exc.status == 409:  # interrupted or closed meanwhile: report what it became
                self.summary.status = self.api.call("GET", f"/api/runs/{run_id}")["status"]
            else:
                self.summary.status = "UNKNOWN"
                self.say(f"could not finish run {run_id}: {exc}")
        self.say(f"run {run_id} {self.summary.status}")

    def _collect(self, watcher: LandingWatcher, run_id: str, info: Any) -> None:
        s = self.summary
        c = self._counters()
        s.readings = c["readings"]
        s.published, s.acknowledged = c["batches_published"], c["batches_acked"]
        s.refused = c["batches_refused"]
        for agent in self._agents:
            s.devices[agent.config.thing] = stats = agent.stats()
            s.queued_at_stop += int(stats.get("queue_depth", 0))
        landed = watcher.landed(run_id)
        s.landed = len(landed)
        s.landed_readings = sum(item.readings for item in landed)
        latencies = [item.latency_ms for item in landed]
        s.latency_ms = {
            name: percentile(latencies, fraction)
            for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        }
        s.readings_in_api = self._count_readings(run_id)
        s.alerts_open = self._alerts(info)

    def _count_readings(self, run_id: str, cap: int = 1_000_000) -> int:
        count, cursor = 0, None
        while count < cap:
            page = self.api.call(
                "GET", "/api/sensors/data", query={"runId": run_id, "limit": 1000, "cursor": cursor}
            )
            count += int(page["count"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return count

    def _alerts(self, info: Any) -> list[str]:
        import boto3
        from boto3.dynamodb.conditions import Attr

        things = [agent.config.thing for agent in self._agents]
        if not things:
            return []
        table = boto3.resource("dynamodb", **info.boto3_kwargs()).Table(info.alerts_table)
        condition = Attr("thing").is_in(things) & Attr("state").is_in(
            ["ACTIVE", "ACKNOWLEDGED", "LATCHED", "SNOOZED"]
        )
        out: list[str] = []
        request: dict[str, Any] = {"FilterExpression": condition}
        while True:
            response = table.scan(**request)
            out.extend(
                f"{i.get('thing')}/{i.get('sensorId')}/{i.get('rule')} {i.get('state')}"
                f" ({i.get('severity', '')})"
                for i in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                return sorted(out)
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def print_summary(summary: SimulationSummary, stream: TextIO) -> None:
    s = summary
    lat = s.latency_ms
    print(f"== run {s.run_id}: {s.status}", file=stream)
    print(
        f"  readings taken {s.readings}; batches published {s.published}, "
        f"acknowledged {s.acknowledged}, refused {s.refused}",
        file=stream,
    )
    if s.queued_at_stop:
        print(
            f"  still queued on the machines at stop: {s.queued_at_stop} readings "
            "(their batch was not due yet; kept in the run's queue on disk, not sent)",
            file=stream,
        )
    print(
        f"  landed in S3: {s.landed} batches, {s.landed_readings} readings; "
        f"readable through the API: {s.readings_in_api} readings",
        file=stream,
    )
    if lat.get("p50") is not None:
        print(
            f"  latency sentAt → landing (ms, ±100): p50 {lat['p50']}, p95 {lat['p95']}, "
            f"p99 {lat['p99']}, max {lat['max']}",
            file=stream,
        )
    print(f"  alerts open: {len(s.alerts_open)}", file=stream)
    for line in s.alerts_open:
        print(f"    {line}", file=stream)
