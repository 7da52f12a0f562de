"""`chantier alerts redrive`: replay the events kept in the on-failure queue.

Lambda keeps an asynchronous event that failed every attempt as a record in the failures queue
that the ingestion function and the scheduled functions share (cloud/template.yaml
*InvokeConfig; the local stack does the same in moto). Once the cause is fixed, each record's
event goes to the function named in it again, synchronously; a record leaves the queue only
once its event was processed, so one that fails again stays for a later replay. Processing an
event twice is harmless (cloud/ingest; a scheduled run redoes the same work).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commands.tables import table

Invoke = Callable[[str, Any], None]
# Long enough for one event's processing, short enough that a crash mid-replay only delays
# the records it held.
VISIBILITY_S = 120


class RedriveError(RuntimeError):
    """A replayed event failed again."""


@dataclass(frozen=True)
class Replay:
    request_id: str
    function: str
    event: str  # what the event is about, for people
    error: str | None  # None when the event was processed


def describe_event(event: Any) -> str:
    """A short name for an event: a rule's machine (the topic's) and batch, or a schedule's run."""
    if not isinstance(event, dict):
        return type(event).__name__
    if event.get("detail-type") == "Scheduled Event":
        return f"scheduled run of {event.get('time', '?')}"
    thing = event.get("thing", "?")
    if event.get("kind") == "health":
        return f"{thing} health"
    batch = _message(event)
    return f"{thing} batch {batch.get('boot', '?')}-{batch.get('seq', '?')}"


def _message(event: dict[str, Any]) -> dict[str, Any]:
    """The message inside a rule's event (its `payload`, base64), or {} when unreadable."""
    try:
        decoded = json.loads(base64.b64decode(str(event.get("payload") or "")))
    except (ValueError, RecursionError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def redrive(sqs: Any, queue_url: str, invoke: Invoke) -> list[Replay]:
    """Replay every record in the queue once; the failed ones are visible again at the end."""
    done: list[Replay] = []
    seen: set[str] = set()
    failed_receipts: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=VISIBILITY_S,
            WaitTimeSeconds=1,  # asks every SQS server, so an empty answer means empty
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            replay = _replay(message["Body"], invoke)
            done.append(replay)
            if replay.error is None:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                failed_receipts.append(message["ReceiptHandle"])
    for receipt in failed_receipts:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )
    return done


def _replay(body: str, invoke: Invoke) -> Replay:
    try:
        record = json.loads(body)
        context = record["requestContext"]
        function = str(context["functionArn"])
        event = record["requestPayload"]
        request_id = str(context.get("requestId", "?"))
    except (ValueError, KeyError, TypeError) as exc:
        return Replay("?", "?", "?", f"not a failure record ({exc!r}): left in the queue")
    try:
        invoke(function, event)
    except Exception as exc:  # whatever the function raised: the record stays
        return Replay(request_id, function, describe_event(event), f"{type(exc).__name__}: {exc}")
    return Replay(request_id, function, describe_event(event), None)


def _aws_invoker(region: str | None) -> Invoke:
    import boto3

    client = boto3.client("lambda", **({"region_name": region} if region else {}))

    def invoke(function: str, event: Any) -> None:
        response = client.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        if response.get("FunctionError"):
            answer = json.loads(response["Payload"].read() or b"{}")
            raise RedriveError(
                f"{answer.get('errorType', 'error')}: {answer.get('errorMessage', answer)}"
            )

    return invoke


def _local_invoker(info: Any) -> Invoke:
    from pathlib import Path

    from cloud.local.functions import LocalFunctions
    from cloud.local.template import LocalTemplate

    functions = LocalFunctions(
        LocalTemplate().functions(),
        info.boto3_kwargs,
        Path(info.state_dir) / "logs" / "functions.log",
    )

    def invoke(function: str, event: Any) -> None:
        functions.invoke(function.removesuffix(":$LATEST"), event)

    return invoke


def run(args: argparse.Namespace) -> int:
    """The `redrive` action: replay, print one row per record, exit 1 if any failed again."""
    import boto3

    if args.aws:
        if not args.queue_url:
            print(
                "chantier alerts redrive: --aws needs --queue-url URL (the stack output "
                "FailuresQueueUrl)",
                file=sys.stderr,
            )
            return 2
        sqs = boto3.client("sqs", **({"region_name": args.region} if args.region else {}))
        queue_url, invoke = args.queue_url, _aws_invoker(args.region)
    else:
        from cloud.local.stackinfo import StackInfo

        info = StackInfo.load()
        sqs = boto3.client("sqs", **info.boto3_kwargs("sqs"))
        queue_url = args.queue_url or sqs.get_queue_url(QueueName=info.failures_queue)["QueueUrl"]
        invoke = _local_invoker(info)
    replays = redrive(sqs, queue_url, invoke)
    if not replays:
        print(f"nothing to replay: {queue_url} is empty")
        return 0
    rows = [(r.request_id[:8], _name(r.function), r.event, r.error or "replayed") for r in replays]
    print(table(("request", "function", "event", "result"), rows))
    failed = sum(1 for r in replays if r.error is not None)
    print(f"{len(replays) - failed} replayed, {failed} failed again (kept in the queue)")
    return 1 if failed else 0


def _name(function_arn: str) -> str:
    parts = function_arn.split(":")  # arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]
    return parts[6] if len(parts) > 6 else function_arn


def add_parser(sub: Any, guard: Callable[[Callable[[argparse.Namespace], int]], Any]) -> None:
    parser = sub.add_parser(
        "redrive",
        help="replay events kept after failing every attempt (batches' alerts, scheduled runs)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--aws", action="store_true", help="use AWS instead of the local stack")
    parser.add_argument(
        "--queue-url", help="failures queue (with --aws: the stack output FailuresQueueUrl)"
    )
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.set_defaults(func=guard(run))
