"""`chantier demo`: a simulated site running through the whole pipeline on this machine."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chantier.signals import stop_on_signals
from cloud.local.stackinfo import state_dir
from commands.demo_scenes import (
    DEFAULT_DURATION_S,
    DEMO_SCHEDULE_SCALE,
    Scene,
    SceneOutcome,
    demo_rules,
    describe_outcome,
    explain,
    load_both,
    meaning,
    plan,
    scene_for,
    weather_clock,
)

SITE = "demo-lyon"
DEFAULT_DEVICES = 6


@dataclass(frozen=True)
class DemoOptions:
    devices: int = DEFAULT_DEVICES
    duration_s: float = DEFAULT_DURATION_S
    seed: int = 7
    batch_age_s: float = 5.0
    state: Path = field(default_factory=state_dir)
    keep: bool = False  # leave the stack (and the dashboard) up after the summary


@dataclass
class DemoSummary:
    published: int = 0
    acked: int = 0
    refused: int = 0
    raw_objects: int = 0
    raw_versions: int = 0
    error_objects: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)  # not NORMAL at the end
    opened: list[str] = field(default_factory=list)  # alerts that went ACTIVE during the run
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenes: list[Scene] = field(default_factory=list)
    outcomes: dict[str, SceneOutcome] = field(default_factory=dict)  # by scene alert
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.published > 0 and self.refused == 0 and self.raw_objects > 0


class Printer:
    """Progress lines for a person watching; thread-safe, one line per event."""

    def __init__(self, stream: TextIO, started: float) -> None:
        self._stream = stream
        self.started = started
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, symbol: str, text: str) -> None:
        with self._lock:
            print(f"[{self.elapsed():5.1f}s] {symbol} {text}", file=self._stream, flush=True)


def _alert_states(table: Any) -> list[dict[str, Any]]:
    """Every alert state item (one per thing, sensor and rule)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "FilterExpression": "attribute_exists(#s)",
        "ExpressionAttributeNames": {"#s": "state"},
    }
    while True:
        page = table.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _alert_name(item: dict[str, Any]) -> str:
    return f"{item.get('thing')}/{item.get('sensorId')}/{item.get('rule')}"


class AlertWatcher:
    """Reports every alert transition, with what it means and which scene caused it."""

    def __init__(self, table: Any, printer: Printer, summary: DemoSummary, t0: float) -> None:
        self._table = table
        self._printer = printer
        self._summary = summary
        self._t0 = t0
        self._seen: dict[str, str] = {}

    def poll(self) -> None:
        for item in _alert_states(self._table):
            key = _alert_name(item)
            state = str(item.get("state"))
            before = self._seen.get(key, "NORMAL")
            self._seen[key] = state
            if before == state:
                continue
            symbol = "!!" if state == "ACTIVE" else "ok" if state == "NORMAL" else ".."
            severity = f"{item['severity']}, " if item.get("severity") else ""
            scene = scene_for(self._summary.scenes, key)
            cause = f": the {scene.name} scene" if scene else ""
            self._printer.line(
                symbol,
                f"alert {key}: {before} -> {state} ({severity}value {item.get('value')}) "
                f"— {meaning(state)}{cause}",
            )
            if state == "ACTIVE":
                self._summary.opened.append(key)
            if scene is not None:
                outcome = self._summary.outcomes.setdefault(key, SceneOutcome())
                outcome.states.append(state)
                at = time.monotonic() - self._t0
                if state == "ACTIVE" and outcome.opened_s is None:
                    outcome.opened_s = at
                elif state in ("NORMAL", "LATCHED") and outcome.opened_s is not None:
                    outcome.cleared_s = at


def run_demo(
    opts: DemoOptions, stream: TextIO = sys.stdout, stop: threading.Event | None = None
) -> DemoSummary:
    """Run the demo; returns its summary. Setting `stop` ends it early and cleanly."""
    from cloud.local.stack import LocalStack

    stop = stop or threading.Event()
    printer = Printer(stream, time.monotonic())
    summary = DemoSummary()

    def on_stack_event(kind: str, details: dict[str, Any]) -> None:
        if kind == "landed":
            again = " again, the same bytes" if details["raw"] == "duplicate" else ""
            printer.line("<-", f"landed s3://…/{details['key']} ({details['bytes']} B){again}")
        elif kind == "lambda" and (details.get("result") or {}).get("refused"):
            result = details["result"]
            printer.line("xx", f"refused ({result['refused']}), kept {result['errorKey']}")
        elif kind == "error-action":
            printer.line("xx", f"rule {details['rule']} failed, kept {details['key']}")

    rules_file = demo_rules(opts.state / "demo" / "alert-rules.json")
    printer.line("..", f"starting the local stack in {opts.state}")
    env = {"ALERT_RULES_FILE": str(rules_file), "ALERT_SEEN_REFRESH_MS": "0"}
    with LocalStack(
        opts.state,
        on_event=on_stack_event,
        function_env=env,
        schedule_scale=DEMO_SCHEDULE_SCALE,
    ) as stack:
        info = stack.info
        assert info is not None
        stack.warm()
        printer.line(
            "ok",
            f"broker mqtts://{info.broker_host}:{info.broker_port}, AWS APIs {info.aws_endpoint}"
            f" (DynamoDB {info.endpoint('dynamodb')})",
        )
        # The token rides in the fragment, which browsers never send to the server.
        printer.line("ok", f"dashboard {info.api_url}/#/site/{SITE}?token={info.api_token}")
        _run_machines(stack, opts, rules_file, printer, summary, stop)
        _summarise(stack, summary, info)
        _print_summary(summary, printer, stream)
        if opts.keep and not stop.is_set():
            printer.line(
                "ok",
                f"the stack stays up (--keep): dashboard {info.api_url}/#/site/{SITE}"
                f"?token={info.api_token} ; `chantier stack status --state-dir {opts.state}` "
                "says where everything is; Ctrl-C stops it",
            )
            while not stop.wait(1.0):
                pass
    return summary


def _run_machines(
    stack: Any,
    opts: DemoOptions,
    rules_file: Path,
    printer: Printer,
    summary: DemoSummary,
    stop: threading.Event,
) -> None:
    """Provision the site, run every machine with its scene's fault, report as it goes."""
    from commands.simulator.fleet import agent_config, fleet_names, provision_machine, provisioner
    from device.bootstrap import build_agent
    from device.sensors.factory import build_sensors

    info = stack.info
    names = fleet_names(opts.devices)
    scenes, summary.skipped = plan(names, opts.duration_s)
    summary.scenes = scenes
    demo_set, real_set = load_both(rules_file)
    service = provisioner(stack)
    configs, links = [], {}
    # One broker reload for the whole fleet rather than one per machine.
    with service.backend.deferred_refresh():
        for index, (thing, equipment) in enumerate(names):
            machine, certificate_id = provision_machine(stack, thing, SITE, equipment, service)
            printer.line(
                "ok", f"provisioned {thing} ({equipment}), certificate {certificate_id[:12]}…"
            )
            # Each machine its own seed: its own weather exposure, so ambient values differ.
            config = agent_config(
                machine, stack, seed=opts.seed + index, batch_age_s=opts.batch_age_s
            )
            config = dataclasses.replace(config, rules_file=rules_file)
            for scene in (s for s in scenes if s.thing == thing):
                config, link = _with_scene(config, scene, info)
                if link is not None:
                    links[thing] = link
            configs.append(config)
    for line in summary.skipped:
        printer.line("..", f"not in this demo: {line}")

    agents_stop = threading.Event()
    agents: list[Any] = []
    threads: list[threading.Thread] = []
    t0 = time.monotonic()
    weather = weather_clock()
    for config in configs:
        agent = build_agent(
            config,
            on_event=_agent_printer(config.thing, printer),
            sensors=build_sensors(config, wall=weather),
        )
        agents.append(agent)
        thread = threading.Thread(
            target=agent.run, args=(agents_stop,), name=f"agent-{config.thing}"
        )
        threads.append(thread)
        thread.start()
    printer.line(
        "..",
        f"{len(agents)} machines running for {opts.duration_s:.0f} s "
        f"(batches every {opts.batch_age_s:.0f} s; Ctrl-C stops)",
    )
    watcher = AlertWatcher(
        stack.resource("dynamodb").Table(info.alerts_table), printer, summary, t0
    )
    narrated: set[tuple[str, str]] = set()
    deadline = t0 + opts.duration_s
    try:
        while not stop.wait(0.5) and time.monotonic() < deadline:
            elapsed = time.monotonic() - t0
            _narrate(scenes, elapsed, narrated, links, demo_set, real_set, printer)
            watcher.poll()
    finally:
        for link in links.values():
            link.restore()
        agents_stop.set()
        for thread in threads:
            thread.join(15.0)
        stack.drain(10.0)
        watcher.poll()
        for link in links.values():
            link.stop()
    for agent in agents:
        summary.devices[agent.config.thing] = agent.stats()


def _with_scene(config: Any, scene: Scene, info: Any) -> tuple[Any, Any]:
    """The machine's config with its scene's fault (and a cuttable link for a network cut)."""
    from commands.simulator.netcut import CuttableLink
    from device.config import FaultConfig

    if scene.fault == "network-cut":
        link = CuttableLink(info.broker_host, info.broker_port).start()
        # Reconnect soon after the cable is back, as a site's router would bring it back.
        return dataclasses.replace(config, port=link.port, reconnect_max_s=3.0), link
    fault = FaultConfig(
        kind=scene.fault, start_s=scene.start_s, duration_s=scene.duration_s, value=scene.value
    )
    sensors = tuple(
        dataclasses.replace(s, faults=(*s.faults, fault)) if s.name == scene.sensor else s
        for s in config.sensors
    )
    return dataclasses.replace(config, sensors=sensors), None


def _narrate(
    scenes: list[Scene],
    elapsed: float,
    narrated: set[tuple[str, str]],
    links: dict[str, Any],
    demo_set: Any,
    real_set: Any,
    printer: Printer,
) -> None:
    """Say what each scene does as it starts and ends; cut and restore network links."""
    for scene in scenes:
        if elapsed >= scene.start_s and (scene.name, "start") not in narrated:
            narrated.add((scene.name, "start"))
            if scene.thing in links:
                links[scene.thing].cut()
            printer.line("**", explain(scene, demo_set, real_set))
        end = scene.start_s + scene.duration_s
        if elapsed >= end and (scene.name, "end") not in narrated:
            narrated.add((scene.name, "end"))
            if scene.thing in links:
                links[scene.thing].restore()
            printer.line("**", f"{scene.name} on {scene.thing} is over: {_after(scene)}")


def _after(scene: Scene) -> str:
    return {
        "network-cut": "the link is back; the agent reconnects and replays what it queued",
        "dropout": "the sensor answers again; the agent reports it recovered",
    }.get(scene.fault, "values return to normal; the alert clears past the rule's clear level")


def _agent_printer(thing: str, printer: Printer) -> Callable[[str, dict[str, Any]], None]:
    explained_urgent = False

    def on_event(kind: str, details: dict[str, Any]) -> None:
        nonlocal explained_urgent
        if kind == "published":
            priority = details.get("priority")
            why = ""
            if priority == "urgent" and not explained_urgent:
                explained_urgent = True
                why = (
                    " — a reading crossed a level of the alert rules, so it leaves at once "
                    "instead of waiting for the batch (once a minute per level and way)"
                )
            printer.line(
                "->",
                f"{thing} published batch {details.get('seq')} "
                f"({details.get('readings')} readings, {priority}){why}",
            )
        elif kind == "refused":
            printer.line(
                "xx",
                f"{thing} batch {details.get('seq')} refused by the broker: "
                f"{details.get('reason')}",
            )
        elif kind == "sensor-error":
            printer.line(
                "..", f"{thing} sensor {details.get('sensor')} failing: {details.get('error')}"
            )
        elif kind == "sensor-recovered":
            printer.line("..", f"{thing} sensor {details.get('sensor')} answers again")
        elif kind in ("connected", "disconnected"):
            printer.line("..", f"{thing} {kind}")
        elif kind == "backlog":
            printer.line("..", f"{thing} replays {details.get('readings')} queued readings")

    return on_event


def _summarise(stack: Any, summary: DemoSummary, info: Any) -> None:
    for stats in summary.devices.values():
        summary.published += int(stats.get("batches_published", 0))
        summary.acked += int(stats.get("batches_acked", 0))
        summary.refused += int(stats.get("batches_refused", 0))
    s3 = stack.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=info.raw_bucket):
        for version in page.get("Versions", []):
            if version["Key"].startswith("raw/"):
                summary.raw_versions += 1
                summary.raw_objects += int(bool(version["IsLatest"]))
            elif version["Key"].startswith("errors/"):
                summary.error_objects += int(bool(version["IsLatest"]))
    table = stack.resource("dynamodb").Table(info.alerts_table)
    items = [i for i in _alert_states(table) if i.get("state") != "NORMAL"]
    summary.alerts = sorted(items, key=lambda i: (str(i.get("thing")), str(i.get("rule"))))


def _print_summary(summary: DemoSummary, printer: Printer, stream: TextIO) -> None:
    printer.line("==", "summary")
    print(
        f"  batches published {summary.published}, acknowledged {summary.acked}, "
        f"refused {summary.refused}",
        file=stream,
    )
    print(
        f"  raw objects in S3 {summary.raw_objects} ({summary.raw_versions} versions), "
        f"kept under errors/ {summary.error_objects}",
        file=stream,
    )
    for thing, stats in summary.devices.items():
        print(
            f"  {thing:<10} readings {stats.get('readings', 0):>4}  "
            f"acked batches {stats.get('batches_acked', 0):>3}  "
            f"queue {stats.get('queue_depth', 0):>3}",
            file=stream,
        )
    opened = ", ".join(summary.opened) if summary.opened else "none"
    print(f"  alerts opened during the run: {len(summary.opened)} ({opened})", file=stream)
    print("  faults shown:", file=stream)
    for scene in summary.scenes:
        print(f"    {describe_outcome(scene, summary.outcomes.get(scene.alert))}", file=stream)
    for line in summary.skipped:
        print(f"    not shown: {line}", file=stream)
    for item in summary.alerts:
        print(
            f"  still {item.get('state')}: {_alert_name(item)} ({item.get('severity')})",
            file=stream,
        )


def _command(args: argparse.Namespace) -> int:
    from cloud.local.statelock import StateFolderInUseError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    opts = DemoOptions(
        devices=args.devices,
        duration_s=args.duration,
        seed=args.seed,
        batch_age_s=args.batch_age,
        state=Path(args.state_dir).resolve(),
        keep=args.keep,
    )
    stop = stop_on_signals(on_signal=lambda name: print(f"\nstopping ({name})…", file=sys.stderr))
    try:
        summary = run_demo(opts, stop=stop)
    except StateFolderInUseError as exc:
        print(f"chantier demo: {exc}", file=sys.stderr)
        return 1
    if not summary.ok:
        print("demo finished with problems: see the summary above and state/logs/", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="provision a simulated site and watch the pipeline", description=__doc__
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=DEFAULT_DEVICES,
        help=f"simulated machines (default {DEFAULT_DEVICES}: one of each kind, every fault)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_S,
        help=f"seconds (default {DEFAULT_DURATION_S:.0f}; the faults' times scale with it)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated sensors")
    parser.add_argument(
        "--batch-age",
        type=float,
        default=5.0,
        help="seconds a batch may wait before it is sent (agent default is 900)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack and the dashboard running after the summary (Ctrl-C stops)",
    )
    parser.add_argument(
        "--state-dir",
        default=str(state_dir()),
        help="where keys, logs and queues go (default ./state)",
    )
    parser.set_defaults(func=_command)
