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

from commands.api_client import ApiCallError, ApiClient
from commands.simulator.agents import BatchId, ProcessRunner, Results, ThreadRunner
from commands.simulator.landings import Landed, LandingWatcher, bucket_keys, percentile

# After the agents stop, acknowledged batches still on their way to S3 are awaited as long as
# some keep landing, with no news for at most SETTLE_S, and SETTLE_MAX_S in all.
SETTLE_S = 20.0
SETTLE_MAX_S = 600.0
# Each agent bounds its own stop (a few seconds of waiting for acknowledgements); when a
# thousand stop in the same second on two cores, CPU is what they wait for, so the bound grows
# with the fleet.
AGENT_JOIN_S = 15.0
AGENT_JOIN_PER_AGENT_S = 0.05
PROGRESS_EVERY_S = 2.0
IN_LIMIT = 100
# From this many machines on one host, queues on its disk slow the run (docs/performance.md).
QUEUE_HINT_DEVICES = 200


class SimulationRefusedError(RuntimeError):
    """The run cannot go on: the API refused it (5 running), or its fleet is in use."""


def fleet_owner(run: dict[str, Any], running: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earlier running run that drives the same fleet as `run`, if any.

    Two runs on one fleet would share thing names, hence client ids and certificates: the
    broker would drop one agent each time the other connects and batches would be lost. The
    run that started first keeps the fleet; ties go to the smaller id, so of two runs started
    in the same millisecond exactly one goes on.
    """
    fleet = (run.get("params") or {}).get("fleet")
    mine = (run.get("startedAt", 0), run.get("id", ""))
    for other in sorted(running, key=lambda r: (r.get("startedAt", 0), r.get("id", ""))):
        params = other.get("params") or {}
        if other.get("id") == run.get("id") or not isinstance(params, dict):
            continue
        if params.get("fleet") == fleet and (other.get("startedAt", 0), other.get("id", "")) < mine:
            return other
    return None


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
    # None: the agent's own cadence for `reporting` ("default": by exception, 15 min at most;
    # "live": a minute), as a fleet runs it; a number: batches at most that old.
    batch_age_s: float | None = 5.0
    reporting: str = "default"
    seed: int = 11
    # Machines start one after the other, evenly over this many seconds (0: all at once), so
    # a fleet's batches do not all fall due in the same second.
    ramp_s: float = 0.0
    # None: the simulation's own (three batch ages, at least 5 s; with batch_age_s None, the
    # reporting profile's).
    health_interval_s: float | None = None
    # Paging a large run's readings back through the API costs moto a scan of the whole readings
    # table per page: a fleet benchmark turns it off.
    count_api_readings: bool = True
    # Worker processes the agents are shared among (1: threads of this process); see
    # commands/simulator/agents.py for why a large fleet needs several.
    processes: int = 1
    # Lower CPU priority of those worker processes (0: as this one): a benchmark gives the
    # stack the cores first, since the machines stand for hardware with CPUs of their own.
    niceness: int = 0
    # Where the machines keep their durable queues (None: under the stack's state folder). A
    # thousand machines on one host share its disk: each commits every reading with an fsync,
    # as a Pi does on its own SD card, and the host's disk then paces the whole run.
    queues: Path | None = None


@dataclass
class SimulationSummary:
    run_id: str = ""
    status: str = ""
    readings: int = 0
    queued_at_stop: int = 0
    published: int = 0
    acknowledged: int = 0
    acknowledged_readings: int = 0
    refused: int = 0
    landed: int = 0
    landed_readings: int = 0
    lost_batches: int = 0  # acknowledged by the broker, never stored in S3
    lost_readings: int = 0  # the readings of those batches
    in_bucket: int = 0  # landed batches found again by listing the bucket at the end
    readings_in_api: int | None = 0  # None when not counted
    alerts_open: list[str] = field(default_factory=list)
    latency_ms: dict[str, int | None] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: int = 0
    stack_stopped: str = ""  # what was seen when the local stack stopped during the run
    agents_not_stopped: int = 0  # still stopping when counted (or their process never said)

    @property
    def ok(self) -> bool:
        return (
            self.published > 0
            and not self.stack_stopped
            and self.refused == 0
            and self.landed >= self.acknowledged
            and self.lost_batches == 0
            and self.in_bucket == self.landed
        )


def machine_names(fleet: str, count: int) -> list[tuple[str, str]]:
    """Thing names and equipment: <fleet>-exc-01, <fleet>-crane-01, ..."""
    from commands.simulator.fleet import fleet_names

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
        self.started_at_ms = 0  # the run's startedAt: alerts older than it are not its own
        self._runner: ThreadRunner | ProcessRunner = (
            # A priority belongs to a process: threads of this one could not be lowered alone.
            ThreadRunner()
            if opts.processes <= 1 and not opts.niceness
            else ProcessRunner(opts.processes, niceness=opts.niceness)
        )
        # Monotonic times the last agent started and all were told to stop: the steady phase,
        # for a benchmark measuring the processes meanwhile; the wall clock of the stop tells
        # the batches each agent sends as it stops (its partial batch) from the others.
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.stopped_at_ms: int | None = None
        self.landed: list[Landed] = []

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
                "reporting": o.reporting,
                "source": "chantier simulate",
            },
            # Only the machines listed here may write into the run (their batches name it).
            "things": [thing for thing, _ in machine_names(o.fleet, o.devices)],
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
        from cloud.local.provisioning import provision_local_fleet
        from cloud.local.stackinfo import StackInfo
        from commands.simulator.fleet import Machine, agent_config, ram_folder
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
        if o.queues is None and o.devices >= QUEUE_HINT_DEVICES and ram_folder() is not None:
            self.say(
                f"their queues are on this host's disk, where {o.devices} machines' fsyncs "
                f"wait for each other: --queue-dir {ram_folder()} keeps them in memory"
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
                reporting=o.reporting,
            )
            if o.health_interval_s is not None:
                config = dataclasses.replace(config, health_interval_s=o.health_interval_s)
            sensors = tuple(
                dataclasses.replace(s, profile=o.profile) if o.profile else s
                for s in config.sensors
            )
            # A queue per run: readings still queued when a run stops must never be sent later
            # under another run's id by the same machine.
            queue_dir = self._queues_root(info) / device.thing / "runs" / run_id
            configs.append(
                dataclasses.replace(
                    config, sample_interval_s=o.interval_s, sensors=sensors, state_dir=queue_dir
                )
            )
        return configs

    def run(self, stop: threading.Event) -> SimulationSummary:
        import boto3

        from cloud.local.landings import journal_path
        from cloud.local.stackinfo import StackInfo

        o = self.opts
        info = StackInfo.load(o.state)  # before anything else: a clear error without a stack
        run = self.start_run()
        run_id = self.summary.run_id = run["id"]
        self.started_at_ms = int(run.get("startedAt") or 0)
        self._claim_fleet(run)
        self.say(f"run {run_id} started ({run.get('dashboardUrl') or 'no dashboard'})")
        s3 = boto3.client("s3", **info.boto3_kwargs("s3"))
        watcher = LandingWatcher(journal_path(Path(info.state_dir)), o.site)
        status, note = "COMPLETED", ""
        try:
            configs = self._configs(run_id)
            watcher.start()
            spacing = o.ramp_s / len(configs) if configs else 0.0
            first = time.monotonic()
            self._runner.start(configs, [first + i * spacing for i in range(len(configs))], stop)
            if o.ramp_s or o.processes > 1:
                self.say(
                    f"{self._runner.started} agents started over {time.monotonic() - first:.1f} s"
                    + (f" in {o.processes} processes" if o.processes > 1 else "")
                )
            self.started_at = time.monotonic()
            deadline = time.monotonic() + o.duration_s
            next_progress = time.monotonic()
            while not stop.is_set() and time.monotonic() < deadline:
                if time.monotonic() >= next_progress:
                    if self._stack_stopped(info):
                        break
                    self._progress(watcher, run_id, deadline)
                    next_progress += PROGRESS_EVERY_S
                stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            if stop.is_set():
                status, note = "FAILED", "stopped before its duration"
            elif self.summary.stack_stopped:
                status, note = "FAILED", "the local stack stopped during the run"
        except BaseException as exc:
            status, note = "FAILED", f"simulator error: {exc}"[:500]
            raise
        finally:
            self.stopped_at = time.monotonic()
            self.stopped_at_ms = int(time.time() * 1000)
            results = self._stop_agents()
            if not self.summary.stack_stopped:
                self._settle(watcher, run_id, set(results.acked))
            watcher.stop()
            self._finish(run_id, status, note)
        self._collect(watcher, run_id, info, s3, results)
        return self.summary

    def _stop_agents(self) -> Results:
        """Stop every agent (each sends the batch it was filling) and say how long it took."""
        count = self._runner.started
        bound = AGENT_JOIN_S + AGENT_JOIN_PER_AGENT_S * count
        self.say(
            f"stopping {count} agents: each sends the batch it was filling (waiting up to "
            f"{bound:.0f} s for all)"
        )
        began = time.monotonic()
        self._runner.stop(bound)
        results = self._runner.results()
        self.summary.agents_not_stopped = results.still_running
        if results.still_running:
            self.say(
                f"{results.still_running} of {count} agents had not stopped after "
                f"{time.monotonic() - began:.0f} s: their counts are as they were then"
            )
        else:
            self.say(f"{count} agents stopped in {time.monotonic() - began:.1f} s")
        return results

    def _queues_root(self, info: Any) -> Path:
        return self.opts.queues or Path(info.state_dir) / "devices"

    def _stack_stopped(self, info: Any) -> bool:
        """True (and said once) when the local stack's process is gone: nothing can land."""
        from cloud.local.stackinfo import pid_alive

        if not info.pid or pid_alive(info.pid):
            return False
        self.summary.stack_stopped = (
            f"the local stack (process {info.pid}) stopped during the run: nothing more can "
            "land, so the run ends now; what the machines had not sent stays in their queues "
            f"under {self._queues_root(info)}"
        )
        self.say(self.summary.stack_stopped)
        return True

    def _claim_fleet(self, run: dict[str, Any]) -> None:
        """Refuse (and close our run) when an earlier running run drives the same fleet."""
        running = self.api.call("GET", "/api/runs/running")["items"]
        owner = fleet_owner(run, running)
        if owner is None:
            return
        fleet = self.opts.fleet
        note = f"fleet {fleet!r} is in use by run {owner['id']}"
        try:
            self.api.call(
                "POST", f"/api/runs/{run['id']}/finish", {"status": "FAILED", "note": note}
            )
        except ApiCallError as exc:
            self.say(f"could not close run {run['id']}: {exc}")
        raise SimulationRefusedError(
            f"{note} (started by {owner.get('username')}, {owner.get('devices')} machines): "
            f"two runs on one fleet would take each other's connections and lose readings. "
            f"Pass another --fleet (e.g. --fleet {fleet}2), or wait for that run to end "
            f"(`chantier runs finish {str(owner['id'])[:8]}` ends it now)"
        )

    def _progress(self, watcher: LandingWatcher, run_id: str, deadline: float) -> None:
        c = self._runner.counters()
        left = max(0.0, deadline - time.monotonic())
        self.say(
            f"{self._runner.started} agents: {c['readings']} readings, "
            f"{c['batches_published']} batches published, {c['batches_acked']} acked, "
            f"{len(watcher.landed(run_id))} landed in S3; {left:.0f} s left"
        )

    def _settle(self, watcher: LandingWatcher, run_id: str, acked: set[BatchId]) -> None:
        started = time.monotonic()
        missing, quiet_until = len(acked) + 1, 0.0
        while time.monotonic() < started + SETTLE_MAX_S:
            watcher.poll()
            now_missing = len(acked - {item.batch for item in watcher.landed(run_id)})
            if not now_missing:
                return
            if now_missing < missing:  # still coming: a backlog drains, give it time
                missing, quiet_until = now_missing, time.monotonic() + SETTLE_S
            elif time.monotonic() > quiet_until:
                break
            time.sleep(0.2)
        self.say(
            f"{missing} of {len(acked)} acknowledged batches had not landed "
            f"{time.monotonic() - started:.0f} s after the agents stopped"
        )

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

    def _collect(
        self, watcher: LandingWatcher, run_id: str, info: Any, s3: Any, results: Results
    ) -> None:
        s = self.summary
        s.devices = results.stats
        totals = dict.fromkeys(("readings", "published", "acked", "refused", "queued"), 0)
        for stats in results.stats.values():
            totals["readings"] += int(stats.get("readings", 0))
            totals["published"] += int(stats.get("batches_published", 0))
            totals["acked"] += int(stats.get("batches_acked", 0))
            totals["refused"] += int(stats.get("batches_refused", 0))
            totals["queued"] += int(stats.get("queue_depth", 0))
        s.readings, s.queued_at_stop = totals["readings"], totals["queued"]
        s.published, s.acknowledged = totals["published"], totals["acked"]
        s.refused = totals["refused"]
        landed = self.landed = watcher.landed(run_id)
        s.landed = len(landed)
        s.landed_readings = sum(item.readings for item in landed)
        acked = results.acked
        s.acknowledged_readings = sum(acked.values())
        lost = acked.keys() - {item.batch for item in landed}
        s.lost_batches = len(lost)
        s.lost_readings = sum(acked[batch] for batch in lost)
        latencies = [item.latency_ms for item in landed]
        s.latency_ms = {
            name: percentile(latencies, fraction)
            for name, fraction in (
                ("p50", 0.5),
                ("p90", 0.9),
                ("p95", 0.95),
                ("p99", 0.99),
                ("max", 1.0),
            )
        }
        if s.stack_stopped:  # the bucket, the API and the alerts went with it
            s.readings_in_api = None
            return
        listed = bucket_keys(s3, info.raw_bucket, f"raw/site={self.opts.site}/")
        s.in_bucket = sum(1 for item in landed if item.key in listed)
        s.readings_in_api = self._count_readings(run_id) if self.opts.count_api_readings else None
        s.alerts_open = self._alerts(info, self.started_at_ms)

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

    def _alerts(self, info: Any, since_ms: int) -> list[str]:
        """Alerts of the run's machines open at the end that opened during the run."""
        import boto3
        from boto3.dynamodb.conditions import Attr

        things = sorted(self.summary.devices)
        table = boto3.resource("dynamodb", **info.boto3_kwargs("dynamodb")).Table(info.alerts_table)
        out: list[str] = []
        # DynamoDB takes at most 100 values in an IN: one scan per hundred machines.
        for first in range(0, len(things), IN_LIMIT):
            condition = (
                Attr("thing").is_in(things[first : first + IN_LIMIT])
                & Attr("state").is_in(["ACTIVE", "ACKNOWLEDGED", "LATCHED", "SNOOZED"])
                & Attr("since").gte(since_ms)
            )
            request: dict[str, Any] = {"FilterExpression": condition}
            while True:
                response = table.scan(**request)
                out.extend(
                    f"{i.get('thing')}/{i.get('sensorId')}/{i.get('rule')} {i.get('state')}"
                    f" ({i.get('severity', '')})"
                    for i in response.get("Items", [])
                )
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(out)


def summary_json(summary: SimulationSummary) -> dict[str, Any]:
    """The summary as one JSON object, for CI: every figure of the text summary, and `ok`."""
    out = dataclasses.asdict(summary)
    out["ok"] = summary.ok
    return out


def print_summary(summary: SimulationSummary, stream: TextIO) -> None:
    s = summary
    lat = s.latency_ms
    print(f"== run {s.run_id}: {s.status}", file=stream)
    if s.stack_stopped:
        print(f"  {s.stack_stopped}", file=stream)
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
    if s.agents_not_stopped:
        print(
            f"  {s.agents_not_stopped} agents had not stopped when counted: their readings "
            "may show as neither acknowledged nor queued",
            file=stream,
        )
    api = "not counted" if s.readings_in_api is None else f"{s.readings_in_api} readings"
    checked = (
        "before the stack stopped; not checked again)"
        if s.stack_stopped
        else f"{s.in_bucket} batches found again in the bucket); readable through the API: {api}"
    )
    print(
        f"  landed in S3: {s.landed} batches, {s.landed_readings} readings ({checked}",
        file=stream,
    )
    if s.lost_batches and s.stack_stopped:
        print(
            f"  not landed when the stack stopped: {s.lost_batches} acknowledged batches "
            f"({s.lost_readings} readings)",
            file=stream,
        )
    elif s.lost_batches:
        print(
            f"  LOST: {s.lost_batches} batches ({s.lost_readings} readings) acknowledged by the "
            "broker never reached S3",
            file=stream,
        )
    if lat.get("p50") is not None:
        print(
            f"  latency sentAt → stored in S3 (ms): p50 {lat['p50']}, p95 {lat['p95']}, "
            f"p99 {lat['p99']}, max {lat['max']}",
            file=stream,
        )
    if not s.stack_stopped:
        print(f"  alerts of this run still open: {len(s.alerts_open)}", file=stream)
    for line in s.alerts_open:
        print(f"    {line}", file=stream)
