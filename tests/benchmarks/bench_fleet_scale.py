"""Local stack at fleet scale: N simulated machines, zero loss and end-to-end latency.

Run: .venv/bin/python tests/benchmarks/bench_fleet_scale.py [--scenario quick|100|1000|1000-live]
     [--devices N] [--duration S] [--batch-age S] [--ramp S] [--health S] [--interval S]
     [--processes P] [--queue-dir DIR] [--progress] [--keep]
Prints figures only; the targets (docs/performance.md, design brief) are:
- scenario 1000: 1,000 machines at the agent's defaults (batches of at most 64 KiB or 15 min,
  early on a deadband within a budget, health hourly, each sensor read every 5 s):
  zero loss, p99 end-to-end <= 2 s; scenario 1000-live: the same in the `live` profile;
- scenario 100: 100 machines, one batch per 5 s (the old design's interval), sensors read every
  second: zero loss, p99 end-to-end <= 1 s;
- quick (the default, what `make bench` runs, about 90 s): scenario 100 for 60 s, not 300 s.
Options override the scenario's figures; the target stays the scenario's.

The local stack runs as `chantier stack up` in its own process (moto and Mosquitto are its
children), in a temporary folder, on free ports of 127.0.0.1. The machines run through
`chantier simulate`'s code (commands/simulator/runner.py): each is the real agent with its durable
SQLite queue and its own MQTT connection over mutual TLS, tagged with the run; they are shared
among worker processes (one per 250 machines, commands/simulator/agents.py) and start one after the
other over one batch age (--ramp), as a fleet's clocks are not aligned. Their queues live in
/dev/shm when the host has it (--queue-dir): each agent commits every reading with an fsync,
as it would on its Pi's own card, and 1,000 of them sharing this host's one disk made the
simulated machines, not the data path, the slowest part of the run (docs/performance.md).

End-to-end latency is measured per batch, from its `sentAt` (the agent's wall clock when it
formed the batch; it then commits it to its queue and publishes it) to the moment the local
rules engine's S3 PutObject of that batch returned (the stack's landing journal,
cloud/local/landings.py; same clock, same machine). It does not include the time readings wait
on the machine for their batch (up to the batch age, by design), nor the alerting Lambda's
work, which runs beside the S3 action (reading-to-alert latency is bench_alert_latency.py's).
The target is read on the batches formed while the fleet runs. When the run ends every agent
sends the batch it was filling (a clean stop does), all in the same second: those are shown
apart, as a real fleet never stops at once. The batches sent during the ramp are also shown apart
from the later ones: while 1,000 agents start, their handshakes, first batches and health take
the same two cores as the stack. The journal also splits each batch's time into
sentAt -> a rules worker takes the message (MQTT, then the wait behind earlier messages) and
the S3 put itself.

Loss: every batch the broker acknowledged must have landed in S3 (matched by thing, boot and
sequence number; the bucket is listed at the end to check each is there), and every reading
taken must be acknowledged or still in its machine's queue when the run stops:
lost = (taken - acknowledged - still queued) + readings of acknowledged batches never landed.

CPU is the mean share of one core of each group of processes between the last machine's start
and the stop, from /proc ("agents" is this process and its workers); "other" is what the rest
of the machine used meanwhile: a disturbed measurement shows there. Memory is the resident size
at the end of that phase.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from cloud.local.landings import JournalReader, journal_path  # noqa: E402
from cloud.local.stackinfo import StackInfo, StackNotRunningError  # noqa: E402
from commands.api_client import ApiClient  # noqa: E402
from commands.simulator.fleet import ram_folder  # noqa: E402
from commands.simulator.landings import Landed, percentile  # noqa: E402
from commands.simulator.runner import SimulateOptions, Simulation, SimulationSummary  # noqa: E402
from device.config import AgentConfig  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
STACK_START_S = 120.0
STACK_STOP_S = 30.0
SAMPLE_S = 1.0
# Beyond ramp + duration: provisioning (about 50 ms a machine), settling, the final listing.
OVERHEAD_S = 120.0
OVERHEAD_PER_DEVICE_S = 0.25
# Agents per worker process: more in one interpreter and its GIL becomes the bottleneck
# (commands/simulator/agents.py).
DEVICES_PER_PROCESS = 250


@dataclass(frozen=True)
class Scenario:
    devices: int
    duration_s: float
    p99_target_ms: int
    # None: the agent's own cadence for `reporting` (device/config.py REPORTING_PROFILES).
    batch_age_s: float | None = None
    reporting: str = "default"
    health_s: float | None = None
    ramp_s: float = 60.0
    # Seconds between two readings of one sensor: the agent's default unless set.
    interval_s: float = AgentConfig.__dataclass_fields__["sample_interval_s"].default

    def cadence(self) -> str:
        from device.config import REPORTING_PROFILES, AgentConfig

        age, health = REPORTING_PROFILES[self.reporting]
        age = age if self.batch_age_s is None else self.batch_age_s
        health = health if self.health_s is None else self.health_s
        budget = AgentConfig.__dataclass_fields__["batch_max_bytes"].default
        profile = f"`{self.reporting}` profile, " if self.batch_age_s is None else ""
        return (
            f"{profile}batches <= {age:g} s / {budget:,} B, health every {health:g} s, "
            f"each sensor read every {self.interval_s:g} s"
        )


SCENARIOS = {
    # The old design's interval: a batch every 5 s, health every minute.
    # Sensors read every second there, five times the agent's default: the heavier load.
    "quick": Scenario(100, 60, 1000, batch_age_s=5, health_s=60, ramp_s=5, interval_s=1.0),
    "100": Scenario(100, 300, 1000, batch_age_s=5, health_s=60, ramp_s=5, interval_s=1.0),
    # The agent as shipped (report by exception, each sensor read every 5 s), and its `live`
    # profile.
    "1000": Scenario(1000, 600, 2000),
    "1000-live": Scenario(1000, 600, 2000, reporting="live"),
}


class BenchError(RuntimeError):
    """The benchmark could not run (the stack did not start, or a bound was exceeded)."""


# ---------- process figures from /proc ----------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def child_pids(parent: int, marker: str) -> list[int]:
    """Children of `parent` whose command line holds `marker`."""
    found = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if marker.encode() in cmdline:
                    found.append(int(pid))
    return found


def function_pids(stack_pid: int) -> list[int]:
    """The stack's function worker processes and the fork server they come from."""
    servers = child_pids(stack_pid, "multiprocessing.forkserver")
    return [*servers, *(pid for server in servers for pid in child_pids(server, ""))]


def agent_pids() -> list[int]:
    """This process and its agent worker processes (spawned by multiprocessing)."""
    return [os.getpid(), *child_pids(os.getpid(), "multiprocessing")]


@dataclass
class Sample:
    at: float
    cpu: dict[str, float]
    rss: dict[str, float]
    busy: float


@dataclass
class ProcessMeter:
    """Samples the CPU and memory of named groups of processes every SAMPLE_S, until stopped."""

    groups: Callable[[], dict[str, list[int]]]
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> Sample:
        groups = self.groups()
        return Sample(
            time.monotonic(),
            {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()},
            {name: sum(rss_mb(pid) for pid in pids) for name, pids in groups.items()},
            machine_busy_s(),
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="process-meter", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.samples.append(self.sample())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def window(self, start: float, end: float) -> tuple[Sample, Sample] | None:
        inside = [s for s in self.samples if start <= s.at <= end]
        return (inside[0], inside[-1]) if len(inside) >= 2 else None


# ---------- the stack in its own process ----------
class StackProcess:
    """`chantier stack up` in a new session, stopped with SIGTERM (then killed) at the end."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.log = state.parent / "stack-up.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.info: StackInfo | None = None

    def start(self) -> StackInfo:
        argv = [sys.executable, "-m", "chantier.cli", "stack", "up", "--state-dir", str(self.state)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + STACK_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"`chantier stack up` exited at start: see {self.log}")
            with contextlib.suppress(StackNotRunningError, ValueError):
                info = StackInfo.load(self.state)
                if b"local stack running" in self.log.read_bytes():  # warmed, ready
                    self.info = info
                    return info
            time.sleep(0.2)
        raise BenchError(f"the local stack was not ready after {STACK_START_S:.0f} s: {self.log}")

    def pids(self) -> dict[str, list[int]]:
        assert self.process is not None and self.info is not None
        return {
            "stack": [self.process.pid],
            "moto": [self.info.moto_pid],
            "dynamodb": [self.info.dynamodb_pid],  # dynalite, or moto when it is not installed
            "mosquitto": [self.info.broker_pid],
        }

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STACK_STOP_S)
        except subprocess.TimeoutExpired:
            # Its children are in their own sessions: end them by pid, then the stack.
            for pids in self.pids().values():
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait(STACK_STOP_S)

    def errors_logged(self) -> int:
        """Lines of the stack's own log that report a failure (rule actions, functions)."""
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if line.startswith(("ERROR", "WARNING")))


# ---------- the broker's own limit ----------
FLOOD_S = 10.0
FLOOD_CONNECTIONS = 8
FLOOD_IN_FLIGHT = 100  # per connection; the client queues what the broker's window cannot take


@dataclass
class Flood:
    messages: int
    payload: int
    seconds: float
    refused: int

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds


def broker_limit(info: StackInfo, payload_bytes: int) -> Flood:
    """QoS 1 publishes as fast as the broker acknowledges them, from several machines' own mTLS
    connections, on a topic the ACL refuses: Mosquitto does all of a publish's work (TLS, parsing,
    ACL, PUBACK) except delivering it, so nothing reaches the rules engine or the stack."""
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder

    bundles = sorted(Path(info.state_dir, "certs").glob("*/*.pem"))
    certs = [p for p in bundles if p.with_suffix(".key").exists()][:FLOOD_CONNECTIONS]
    if not certs:
        raise BenchError(f"no device certificate under {info.state_dir}/certs for the flood")
    payload = b"x" * payload_bytes
    counts = {"acked": 0, "refused": 0}
    lock = threading.Lock()
    clients = []
    for cert in certs:
        up = threading.Event()
        client = mqtt5_client_builder.mtls_from_path(
            endpoint=info.broker_host,
            port=info.broker_port,
            cert_filepath=str(cert),
            pri_key_filepath=str(cert.with_suffix(".key")),
            ca_filepath=info.ca_file,
            client_id=cert.stem,
            on_lifecycle_connection_success=lambda _, up=up: up.set(),
        )
        client.start()
        if not up.wait(10):
            raise BenchError(f"flood client {cert.stem} could not connect")
        clients.append(client)
    slots = threading.Semaphore(FLOOD_IN_FLIGHT * len(clients))

    def done(future: Any) -> None:
        result = future.result()
        code = int(getattr(getattr(result, "puback", None), "reason_code", 0) or 0)
        with lock:
            counts["refused" if code >= 0x80 else "acked"] += 1
        slots.release()

    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < FLOOD_S:
        slots.acquire()
        client = clients[sent % len(clients)]
        packet = mqtt5.PublishPacket(
            topic="dt/chantier/flood/not-mine/telemetry",
            payload=payload,
            qos=mqtt5.QoS.AT_LEAST_ONCE,
        )
        client.publish(packet).add_done_callback(done)
        sent += 1
    for _ in range(FLOOD_IN_FLIGHT * len(clients)):
        slots.acquire(timeout=10)
    seconds = time.monotonic() - started
    for client in clients:
        client.stop()
    return Flood(counts["acked"] + counts["refused"], payload_bytes, seconds, counts["refused"])


# ---------- one run ----------
def run(
    scenario: Scenario,
    ramp_s: float,
    processes: int,
    niceness: int,
    progress: bool,
    keep: bool,
    queue_parent: Path | None = None,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    queues = (
        Path(tempfile.mkdtemp(prefix="bench-queues-", dir=queue_parent)) if queue_parent else None
    )
    stack = StackProcess(root / "stack")
    stop = threading.Event()
    budget = ramp_s + scenario.duration_s + OVERHEAD_S + OVERHEAD_PER_DEVICE_S * scenario.devices
    watchdog = threading.Timer(budget, stop.set)
    watchdog.daemon = True
    failed = True
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(
            lambda: _cleanup(root, failed, "landing journal: stack/logs/landings.jsonl")
        )
        if queues is not None:
            cleanup.callback(
                lambda: _cleanup(
                    queues, failed, "the machines' queues: remove it to free that space"
                )
            )
        cleanup.callback(stack.stop)
        cleanup.callback(watchdog.cancel)
        info = stack.start()
        stack_pids = stack.pids()
        stack_pid = stack_pids["stack"][0]
        meter = ProcessMeter(
            lambda: {**stack_pids, "functions": function_pids(stack_pid), "agents": agent_pids()}
        )
        meter.start()
        load_before = os.getloadavg()
        opts = SimulateOptions(
            devices=scenario.devices,
            duration_s=scenario.duration_s,
            interval_s=scenario.interval_s,
            state=Path(info.state_dir),
            fleet="fleet",
            site="fleet-bench",
            batch_age_s=scenario.batch_age_s,
            reporting=scenario.reporting,
            ramp_s=ramp_s,
            health_interval_s=scenario.health_s,
            count_api_readings=False,
            processes=processes,
            niceness=niceness,
            queues=queues,
        )
        stream = sys.stderr if progress else cleanup.enter_context(open(root / "progress.log", "w"))
        simulation = Simulation(opts, ApiClient(info.api_url, info.api_token), stream)
        watchdog.start()
        summary = simulation.run(stop)
        meter.stop()
        if stop.is_set():
            raise BenchError(f"the run exceeded its bound of {budget:.0f} s: see {root}")
        # Payloads the size of the run's mean batch: about 95 B a reading and 250 B of envelope.
        counts = [item.readings for item in simulation.landed] or [50]
        flood = broker_limit(info, int(250 + 95 * sum(counts) / len(counts)))
        report(scenario, ramp_s, summary, simulation, meter, stack, load_before)
        elapsed = max(1.0, (simulation.stopped_at or 0.0) - (simulation.started_at or 0.0))
        print(
            f"  throughput while running: {summary.landed / elapsed:.1f} batches/s landed; the "
            f"broker alone, measured after the run on {FLOOD_CONNECTIONS} connections of the "
            f"same machines: {flood.per_s:,.0f} publishes/s of {flood.payload:,} B "
            f"({flood.per_s * flood.payload / 1e6:.1f} MB/s; QoS 1, refused by the ACL so that "
            "nothing is delivered on)"
        )
        failed = keep or not summary.ok  # a loss keeps the logs


def _cleanup(folder: Path, failed: bool, kept: str) -> None:
    """Remove `folder`, or keep it after a failed run and say what it holds (`kept`)."""
    if failed:
        print(f"kept: {folder} ({kept})", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def report(
    scenario: Scenario,
    ramp_s: float,
    s: SimulationSummary,
    simulation: Simulation,
    meter: ProcessMeter,
    stack: StackProcess,
    load_before: tuple[float, float, float],
) -> None:
    stop_ms = simulation.stopped_at_ms or 0
    running = latencies([item for item in simulation.landed if item.sent_at_ms < stop_ms])
    stopping = latencies([item for item in simulation.landed if item.sent_at_ms >= stop_ms])
    device_gap = s.readings - s.acknowledged_readings - s.queued_at_stop
    lost = device_gap + s.lost_readings
    met = lost == 0 and s.lost_batches == 0 and (running["p99"] or 0) <= scenario.p99_target_ms
    print(
        f"fleet on the local stack: {scenario.devices} machines, {scenario.duration_s:.0f} s "
        f"after a {ramp_s:.0f} s ramp, {scenario.cadence()}; agents in "
        f"{simulation.opts.processes} process(es)"
        + (f" at nice {simulation.opts.niceness}" if simulation.opts.niceness else "")
        + f", their queues in {simulation.opts.queues or 'the stack folder'}"
    )
    print(
        f"  readings taken {s.readings}; acknowledged {s.acknowledged_readings} in "
        f"{s.acknowledged} batches; still queued on the machines at stop {s.queued_at_stop}"
    )
    print(
        f"  landed in S3 {s.landed_readings} readings in {s.landed} batches "
        f"({s.in_bucket} found again by listing the bucket); refused {s.refused}"
    )
    print(
        f"  lost {lost} readings ({s.lost_batches} acknowledged batches never landed, "
        f"{device_gap} readings unaccounted for on the machines"
        + (
            f"; {s.agents_not_stopped} agents had not stopped when counted"
            if s.agents_not_stopped
            else "; every agent had stopped when counted"
        )
        + ")"
    )
    print(
        f"  sentAt -> stored in S3, {running['n']} batches while running: p50 {running['p50']} ms"
        f"  p90 {running['p90']}  p99 {running['p99']}  max {running['max']}  (target: zero loss,"
        f" p99 <= {scenario.p99_target_ms} ms: {'met' if met else 'NOT met'})"
    )
    window = None
    if simulation.started_at is not None and simulation.stopped_at is not None:
        window = meter.window(simulation.started_at, simulation.stopped_at)
        # The ramp is the run's busiest minute: every agent's TLS handshake, first batch and
        # health, on the same two cores as the stack.
        ramp_end_ms = stop_ms - int(1000 * (simulation.stopped_at - simulation.started_at))
        ramp = latencies([item for item in simulation.landed if item.sent_at_ms < ramp_end_ms])
        after = latencies(
            [item for item in simulation.landed if ramp_end_ms <= item.sent_at_ms < stop_ms]
        )
        print(
            f"  of those, {ramp['n']} sent while machines were starting (the ramp): p50 "
            f"{ramp['p50']} ms  p99 {ramp['p99']}  max {ramp['max']}; {after['n']} after it: "
            f"p50 {after['p50']} ms  p99 {after['p99']}  max {after['max']}"
        )
    hop, put = breakdown(journal_path(stack.state), s.run_id, stop_ms)
    print(
        f"  all of them, sentAt -> a rules worker takes it: p50 {hop['p50']} ms  p99 {hop['p99']};"
        f"  its S3 put: p50 {put['p50']} ms  p99 {put['p99']}"
    )
    print(
        f"  sentAt -> stored in S3, {stopping['n']} partial batches sent as the machines all "
        f"stop in the same second: p50 {stopping['p50']} ms  p99 {stopping['p99']}  "
        f"max {stopping['max']}"
    )
    if window is not None:
        first, last = window
        span = last.at - first.at
        shares = {n: 100 * (last.cpu[n] - first.cpu[n]) / span for n in first.cpu}
        other = 100 * (last.busy - first.busy) / span - sum(shares.values())
        cpu = "  ".join(f"{n} {v:.0f}%" for n, v in shares.items())
        rss = "  ".join(f"{n} {v:.0f} MB" for n, v in last.rss.items())
        print(f"  CPU (share of one core, 2 cores in all): {cpu}  other {max(0.0, other):.0f}%")
        print(f"  resident memory: {rss}")
    print(
        f"  load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
        f"warnings and errors logged by the stack: {stack.errors_logged()}"
    )


def breakdown(journal: Path, run_id: str, stop_ms: int) -> tuple[dict[str, Any], ...]:
    """Time to the rules engine and time of the S3 put, for the run's batches while running."""
    hop, put = [], []
    for line in JournalReader(journal, from_start=True).read_new():
        if line.get("runId") == run_id and int(line.get("sentAt", stop_ms)) < stop_ms:
            hop.append(int(line["receivedMs"]) - int(line["sentAt"]))
            put.append(int(line["storedMs"]) - int(line["receivedMs"]))
    return tuple(
        {name: percentile(values, q) for name, q in (("p50", 0.5), ("p99", 0.99))}
        for values in (hop, put)
    )


def latencies(landed: list[Landed]) -> dict[str, int | None]:
    values = [item.latency_ms for item in landed]
    out = {name: percentile(values, q) for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
    return {**out, "max": max(values, default=None), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="quick")
    parser.add_argument("--devices", type=int, help="machines (default: the scenario's)")
    parser.add_argument("--duration", type=float, help="seconds after the ramp")
    parser.add_argument("--batch-age", type=float, help="seconds a batch may wait")
    parser.add_argument("--health", type=float, help="seconds between health messages")
    parser.add_argument("--interval", type=float, help="seconds between readings of a sensor")
    parser.add_argument(
        "--ramp", type=float, help="seconds over which machines start (default: the scenario's)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        help=f"agent worker processes (default: one per {DEVICES_PER_PROCESS} machines)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower CPU priority of the agents' worker processes (default 0; they stand for "
        "hardware with CPUs of their own, so 10 gives the stack the cores first)",
    )
    parser.add_argument(
        "--queue-dir",
        type=Path,
        default=ram_folder(),
        help="folder in which the machines' durable queues are made (default: "
        f"{ram_folder() or 'the run folder, on disk'}); see docs/performance.md for why",
    )
    parser.add_argument("--progress", action="store_true", help="progress lines on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the state folder and logs")
    args = parser.parse_args()
    base = SCENARIOS[args.scenario]
    scenario = Scenario(
        devices=args.devices or base.devices,
        duration_s=args.duration or base.duration_s,
        p99_target_ms=base.p99_target_ms,
        batch_age_s=args.batch_age or base.batch_age_s,
        reporting=base.reporting,
        health_s=args.health or base.health_s,
        ramp_s=base.ramp_s if args.ramp is None else args.ramp,
        interval_s=args.interval or base.interval_s,
    )
    for name, value in (("--devices", scenario.devices), ("--duration", scenario.duration_s)):
        if value <= 0:
            parser.error(f"{name}: expected a number above 0")
    ramp_s = scenario.ramp_s
    processes = args.processes or math.ceil(scenario.devices / DEVICES_PER_PROCESS)
    # The agents' own warnings (disconnected at stop, a thousand times) are not figures.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(scenario, ramp_s, processes, args.nice, args.progress, args.keep, args.queue_dir)
    except BenchError as exc:
        print(f"bench_fleet_scale: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
