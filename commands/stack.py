"""`chantier stack up|status`: run the local stack, or describe the running one."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from chantier.signals import stop_on_signals
from cloud.local.stackinfo import StackInfo, StackNotRunningError, StaleStackError, state_dir


def _describe(info: StackInfo) -> str:
    lines = [
        f"state folder   {info.state_dir}",
        f"MQTT broker    mqtts://{info.broker_host}:{info.broker_port} (CA {info.ca_file})",
        f"AWS APIs       {info.aws_endpoint} (region eu-west-3, any credentials)",
        f"DynamoDB       {info.endpoint('dynamodb')} (its own moto server, same region)",
        f"raw bucket     {info.raw_bucket}",
        f"alerts table   {info.alerts_table}",
    ]
    if info.api_url:
        lines.append(f"HTTP API       {info.api_url}")
        lines.append(f"API token      {info.api_token}")
        lines.append(f"dashboard      {info.api_url}/#/?token={info.api_token}")
    return "\n".join(lines)


# A leftover Mosquitto is asked to stop first: it saves the messages it queued for the rules
# engine, which the next broker delivers.
MOSQUITTO_SAVE_S = 10.0


def _up(args: argparse.Namespace) -> int:
    from cloud.local.stack import LocalStack

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop = stop_on_signals()
    directory = Path(args.state_dir).resolve()
    try:
        running = StackInfo.load(directory)
    except StaleStackError as stale:
        _clear_stale(stale.info)
    except StackNotRunningError:
        pass
    else:
        print(
            f"a local stack already runs with state in {directory} (process {running.pid}): "
            "stop it first (Ctrl-C in its terminal, or kill it)",
            file=sys.stderr,
        )
        return 1
    from cloud.local.statelock import StateFolderInUseError

    stack = LocalStack(directory)
    try:
        stack.start()
    except StateFolderInUseError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        assert stack.info is not None
        stack.warm()
        print("local stack running (Ctrl-C stops it)\n" + _describe(stack.info), flush=True)
        if stack.restored_things:
            print(
                f"registry       {len(stack.restored_things)} thing(s) registered again from "
                "their bundles in the state folder",
                flush=True,
            )
        while not stop.wait(1.0):
            pass
        print("stopping…", file=sys.stderr)
    finally:
        stack.stop()
    return 0


def _clear_stale(info: StackInfo) -> None:
    """End what a killed stack left running and say that its file is being replaced."""
    from cloud.local.processes import end_leftover

    ended = [
        name
        for name, pid, marker, grace in (
            ("mosquitto", info.broker_pid, "mosquitto", MOSQUITTO_SAVE_S),
            ("moto server", info.moto_pid, "cloud.local.moto_server", 0.0),
            ("DynamoDB moto server", info.dynamodb_pid, "cloud.local.moto_server", 0.0),
        )
        if end_leftover(pid, marker, grace)
    ]
    leftovers = f"; ended its leftover {', '.join(ended)}" if ended else ""
    print(
        f"replacing {info.path}: the stack that wrote it (process {info.pid}) is gone{leftovers}",
        file=sys.stderr,
    )
    info.path.unlink(missing_ok=True)


def _status(args: argparse.Namespace) -> int:
    try:
        info = StackInfo.load(Path(args.state_dir).resolve())
    except StackNotRunningError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(_describe(info))
    if info.failures_queue:
        print(f"failed events  {_kept_failures(info)}")
    return 0


def _kept_failures(info: StackInfo) -> str:
    """How many failed events (ingestion, scheduled runs) the stack keeps; how to replay them."""
    import boto3

    from cloud.local.destinations import QueueDestination

    sqs = boto3.client("sqs", **info.boto3_kwargs("sqs"))
    try:
        kept = QueueDestination(sqs, info.failures_queue).count()
    except Exception as exc:  # the status must still print when moto does not answer
        return f"unknown: the AWS APIs at {info.aws_endpoint} did not answer ({exc})"
    if kept == 0:
        return f"none kept (queue {info.failures_queue})"
    return (
        f"{kept} kept in queue {info.failures_queue}: their readings are not in the hot "
        "store, and maybe not under raw/ nor through the alerts; replay them with "
        "`chantier alerts redrive` once the cause is fixed"
    )


def register(sub: Any) -> None:
    parser = sub.add_parser("stack", help="the local stack: broker, AWS APIs, rules engine, API")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (
        ("up", _up, "start the local stack in the foreground"),
        ("status", _status, "show where the running local stack can be reached"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--state-dir",
            default=str(state_dir()),
            help="state folder (default ./state or $CHANTIER_STATE_DIR)",
        )
        action.set_defaults(func=func)
