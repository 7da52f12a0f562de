"""`chantier simulate`: a run of N simulated machines, each the real agent, through the API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chantier.signals import stop_on_signals
from commands.api_client import ApiCallError, ApiConfigError, client_from
from commands.runs import add_api_options

if TYPE_CHECKING:
    from commands.simulator.runner import SimulateOptions

EXIT_REFUSED = 2
# Batches of a run started without --batch-age or --reporting: a short run shows data at once.
QUICK_BATCH_AGE_S = 5.0


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value

    return parse


def options_from(args: argparse.Namespace, state: Path) -> SimulateOptions:
    """The run the command line asks for."""
    from commands.simulator.runner import SimulateOptions
    from device.config import AgentConfig

    return SimulateOptions(
        devices=args.devices,
        duration_s=args.duration,
        interval_s=args.interval or (AgentConfig.sample_interval_s if args.reporting else 1.0),
        state=state,
        profile=args.profile,
        faults=tuple(args.faults or ()),
        fleet=args.fleet,
        site=args.site,
        # A reporting profile alone means the agent's own cadence for it; no option at all
        # keeps the quick 5 s batches a short run needs to show anything.
        batch_age_s=args.batch_age if args.batch_age or args.reporting else QUICK_BATCH_AGE_S,
        reporting=args.reporting or "default",
        seed=args.seed,
        ramp_s=args.ramp,
        processes=args.processes,
        queues=args.queue_dir.resolve() if args.queue_dir else None,
    )


def _command(args: argparse.Namespace) -> int:
    from cloud.local.stackinfo import StackNotRunningError, state_dir
    from commands.simulator.runner import (
        Simulation,
        SimulationRefusedError,
        print_summary,
        summary_json,
    )

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    state = Path(args.state_dir).resolve() if args.state_dir else state_dir()
    stop = stop_on_signals(
        on_signal=lambda name: print(f"\nstopping ({name}): finishing the run…", file=sys.stderr)
    )
    opts = options_from(args, state)
    try:
        api = client_from(args.url, args.token, state)
        # With --json, stdout carries the summary alone; progress goes to stderr.
        simulation = Simulation(opts, api, sys.stderr if args.json else sys.stdout)
        summary = simulation.run(stop)
    except SimulationRefusedError as exc:
        print(f"chantier simulate: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (ApiCallError, ApiConfigError, StackNotRunningError) as exc:
        print(f"chantier simulate: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary_json(summary), indent=2))
    else:
        print_summary(summary, sys.stdout)
    return 0 if summary.ok else 1


def register(sub: Any) -> None:
    from device.config import FAULT_KINDS, REPORTING_PROFILES, AgentConfig
    from device.sensors.simulated import PROFILES

    parser = sub.add_parser(
        "simulate",
        help="run a fleet of simulated machines through the API",
        description=__doc__ + " Needs a running local stack (`chantier stack up`).",
    )
    parser.add_argument("--devices", type=_positive(int), default=2, help="machines (default 2)")
    parser.add_argument(
        "--duration", type=_positive(float), default=60.0, help="seconds (default 60)"
    )
    parser.add_argument(
        "--interval",
        type=_positive(float),
        help="seconds between readings of a sensor (default 1, or the agent's own "
        f"{AgentConfig.sample_interval_s:g} with --reporting)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="equipment profile of every simulated sensor (default: each machine's own)",
    )
    parser.add_argument(
        "--faults",
        nargs="*",
        choices=FAULT_KINDS,
        metavar="FAULT",
        help=f"faults injected on the sensors their rule watches: {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument("--fleet", default="sim", help="thing name prefix (default sim)")
    parser.add_argument("--site", default="simulation", help="site of the machines")
    parser.add_argument(
        "--batch-age",
        type=_positive(float),
        help=f"seconds a batch may wait before it is sent (default {QUICK_BATCH_AGE_S:g}, "
        "or the reporting profile's when --reporting is given)",
    )
    parser.add_argument(
        "--reporting",
        choices=sorted(REPORTING_PROFILES),
        help="run the agents at a reporting profile's own cadence: default (by exception, a "
        "batch at least every 15 min) or live (every minute), as a deployed fleet would",
    )
    parser.add_argument("--seed", type=int, default=11, help="seed of the simulated sensors")
    parser.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        help="seconds over which the machines start one after the other (default 0: all at "
        "once; a batch age spreads their batches evenly)",
    )
    parser.add_argument(
        "--processes",
        type=_positive(int),
        default=1,
        help="worker processes the machines are shared among (default 1; about one per 250 "
        "machines keeps them from contending for one interpreter)",
    )
    parser.add_argument(
        "--queue-dir",
        type=Path,
        help="folder where the machines keep their durable queues (default: under the stack's "
        "state folder); for hundreds of machines on one host, a RAM-backed folder such as "
        "/dev/shm keeps their fsyncs from queueing on its one disk",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (progress goes to stderr); exit 1 if not ok",
    )
    add_api_options(parser)
    parser.set_defaults(func=_command)
