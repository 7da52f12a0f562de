"""`chantier demo`: a simulated site running through the whole pipeline on this machine."""

from __future__ import annotations

import argparse
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

SITE = "demo-lyon"


@dataclass(frozen=True)
class DemoOptions:
    devices: int = 3
    duration_s: float = 60.0
    seed: int = 7
    batch_age_s: float = 5.0
    state: Path = field(default_factory=state_dir)
    overheat_at_s: float = 5.0


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

    @property
    def ok(self) -> bool:
        return self.published > 0 and self.refused == 0 and self.raw_objects > 0


class Printer:
    """Progress lines for a person watching; thread-safe, one line per event."""

    def __init__(self, stream: TextIO, started: float) -> None:
        self._stream = stream
        self._started = started
        self._lock = threading.Lock()

    def line(self, symbol: str, text: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self._started
            print(f"[{elapsed:5.1f}s] {symbol} {text}", file=self._stream, flush=True)


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


def _watch_alerts(table: Any, seen: dict[str, str], printer: Printer, opened: list[str]) -> None:
    for item in _alert_states(table):
        key = _alert_name(item)
        state = str(item.get("state"))
        if seen.get(key, "NORMAL") != state:
            symbol = "!!" if state == "ACTIVE" else "ok" if state == "NORMAL" else ".."
            severity = f"{item['severity']}, " if item.get("severity") else ""
            printer.line(
                symbol,
                f"alert {key}: {seen.get(key, 'NORMAL')} -> {state} "
                f"({severity}value {item.get('value')})",
            )
            if state == "ACTIVE":
                opened.append(key)
        seen[key] = state


def run_demo(
    opts: DemoOptions, stream: TextIO = sys.stdout, stop: threading.Event | None = None
) -> DemoSummary:
    """Run the demo; returns its summary. Setting `stop` ends it early and cleanly."""
    from cloud.local.stack import LocalStack
    from commands.simulator.fleet import agent_config, fleet_names, provision_machine, provisioner
    from device.bootstrap import build_agent
    from device.config import FaultConfig

    stop = stop or threading.Event()
    printer = Printer(stream, time.monotonic())
    summary = DemoSummary()

    def on_stack_event(kind: str, details: dict[str, Any]) -> None:
        if kind == "s3":
            printer.line("<-", f"landed s3://…/{details['key']} ({details['bytes']} B)")
        elif kind == "error-action":
            printer.line("xx", f"rule {details['rule']} failed, kept {details['key']}")

    printer.line("..", f"starting the local stack in {opts.state}")
    with LocalStack(opts.state, on_event=on_stack_event) as stack:
        info = stack.info
        assert info is not None
        stack.warm()
        printer.line(
            "ok",
            f"broker mqtts://{info.broker_host}:{info.broker_port}, AWS APIs {info.aws_endpoint}",
        )
        # The token rides in the fragment, which browsers never send to the server.
        printer.line("ok", f"dashboard {info.api_url}/#/site/{SITE}?token={info.api_token}")
        service = provisioner(stack)
        configs = []
        # One broker reload for the whole fleet rather than one per machine.
        with service.backend.deferred_refresh():
            for index, (thing, equipment) in enumerate(fleet_names(opts.devices)):
                machine, certificate_id = provision_machine(stack, thing, SITE, equipment, service)
                printer.line(
                    "ok", f"provisioned {thing} ({equipment}), certificate {certificate_id[:12]}…"
                )
                # Long enough to pass the rule's `for` delay, short enough to see the alert clear.
                faults = (
                    (
                        FaultConfig(
                            kind="overheat",
                            start_s=opts.overheat_at_s,
                            duration_s=max(25.0, opts.duration_s / 2),
                        ),
                    )
                    if index == 0
                    else ()
                )
                configs.append(
                    agent_config(
                        machine, stack, seed=opts.seed, batch_age_s=opts.batch_age_s, faults=faults
                    )
                )

        agents: list[Any] = []
        threads: list[threading.Thread] = []
        for config in configs:
            agent = build_agent(config, on_event=_agent_printer(config.thing, printer))
            agents.append(agent)
            thread = threading.Thread(target=agent.run, args=(stop,), name=f"agent-{config.thing}")
            threads.append(thread)
            thread.start()
        printer.line(
            "..",
            f"{len(agents)} machines running for {opts.duration_s:.0f} s "
            f"(batches every {opts.batch_age_s:.0f} s; Ctrl-C stops)",
        )

        alerts_table = stack.resource("dynamodb").Table(info.alerts_table)
        seen: dict[str, str] = {}
        deadline = time.monotonic() + opts.duration_s
        while not stop.wait(1.0) and time.monotonic() < deadline:
            _watch_alerts(alerts_table, seen, printer, summary.opened)
        stop.set()
        for thread in threads:
            thread.join(15.0)
        stack.drain(10.0)
        _watch_alerts(alerts_table, seen, printer, summary.opened)
        _summarise(stack, agents, summary, info)
    _print_summary(summary, printer, stream)
    return summary


def _agent_printer(thing: str, printer: Printer) -> Callable[[str, dict[str, Any]], None]:
    def on_event(kind: str, details: dict[str, Any]) -> None:
        if kind == "published":
            printer.line(
                "->",
                f"{thing} published batch {details.get('seq')} "
                f"({details.get('readings')} readings, {details.get('priority')})",
            )
        elif kind == "refused":
            printer.line(
                "xx",
                f"{thing} batch {details.get('seq')} refused by the broker: "
                f"{details.get('reason')}",
            )
        elif kind in ("connected", "disconnected", "sensor-error"):
            printer.line("..", f"{thing} {kind}")

    return on_event


def _summarise(stack: Any, agents: list[Any], summary: DemoSummary, info: Any) -> None:
    for agent in agents:
        stats = agent.stats()
        summary.devices[agent.config.thing] = stats
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
    for item in summary.alerts:
        print(
            f"  still {item.get('state')}: {_alert_name(item)} ({item.get('severity')})",
            file=stream,
        )


def _command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    opts = DemoOptions(
        devices=args.devices,
        duration_s=args.duration,
        seed=args.seed,
        batch_age_s=args.batch_age,
        state=Path(args.state_dir).resolve(),
    )
    stop = stop_on_signals(on_signal=lambda name: print(f"\nstopping ({name})…", file=sys.stderr))
    summary = run_demo(opts, stop=stop)
    if not summary.ok:
        print("demo finished with problems: see the summary above and state/logs/", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="provision a simulated site and watch the pipeline", description=__doc__
    )
    parser.add_argument("--devices", type=int, default=3, help="simulated machines (default 3)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated sensors")
    parser.add_argument(
        "--batch-age",
        type=float,
        default=5.0,
        help="seconds a batch may wait before it is sent (agent default is 60)",
    )
    parser.add_argument(
        "--state-dir",
        default=str(state_dir()),
        help="where keys, logs and queues go (default ./state)",
    )
    parser.set_defaults(func=_command)
