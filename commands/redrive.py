"""`chantier alerts redrive`: replay the events kept in the failures queue.

Lambda keeps an asynchronous event that failed every attempt, or waited too long (throttled),
as a record in the failures queue that the ingestion function and the scheduled functions
share (cloud/template.yaml *InvokeConfig; the local stack does the same in moto). A topic
rule whose action failed keeps the message under `errors/reason=rule-action/`, and S3 notifies
the same queue (commands/rule_failures.py rebuilds the rule's event from that object). Once
the cause is fixed, each record's event goes to its function again, synchronously; a record
leaves the queue only once its event was processed, so one that fails again stays for a later
replay. Processing an event twice is harmless (cloud/ingest; a scheduled run redoes the same
work). S3's test message, sent once when the notification is set, is removed without a word.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commands.rule_failures import (
    RuleFailureError,
    is_s3_notification,
    is_test_event,
    kept_objects,
    rebuild_event,
)
from commands.tables import table

Invoke = Callable[[str, Any], None]
ReadObject = Callable[[str, str], bytes]  # (bucket, key) -> the object's bytes
RuleFunction = Callable[[str], str]  # topic rule name -> the function its Lambda action invokes
# Long enough for one event's processing, short enough that a crash mid-replay only delays
# the records it held.
VISIBILITY_S = 120


class RedriveError(RuntimeError):
    """A replayed event failed again."""


@dataclass(frozen=True)
class RuleFailures:
    """What replaying a rule-action failure needs: its kept object, and the rule's function."""

    read_object: ReadObject
    rule_function: RuleFunction


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


def redrive(
    sqs: Any, queue_url: str, invoke: Invoke, rules: RuleFailures | None = None
) -> list[Replay]:
    """Replay every record in the queue once; the failed ones are visible again at the end.
    Without `rules`, a rule-action failure's record is reported as failed and left."""
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
            replay = _replay(message["Body"], invoke, rules)
            if replay is not None:
                done.append(replay)
            if replay is None or replay.error is None:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                failed_receipts.append(message["ReceiptHandle"])
    for receipt in failed_receipts:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )
    return done


def _replay(body: str, invoke: Invoke, rules: RuleFailures | None) -> Replay | None:
    """One record replayed; None for S3's test message (nothing to replay, removed)."""
    try:
        record = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return Replay("?", "?", "?", f"not a failure record ({exc!r}): left in the queue")
    if is_test_event(record):
        return None
    if is_s3_notification(record):
        return _replay_rule_failure(record, invoke, rules)
    try:
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


def _replay_rule_failure(
    notification: dict[str, Any], invoke: Invoke, rules: RuleFailures | None
) -> Replay:
    """Invoke the rule's function with the event the rule would have made, for each object
    the notification announces (one, as S3 sends them)."""
    replay = Replay("?", "?", "rule action failed", "no rule-action replay configured: left")
    if rules is None:
        return replay
    try:
        objects = kept_objects(notification)
    except RuleFailureError as exc:
        return Replay("?", "?", "S3 notification", f"{exc}: left in the queue")
    for kept in objects:
        try:
            rebuilt = rebuild_event(rules.read_object(kept.bucket, kept.key), kept)
            function = rules.rule_function(rebuilt.rule)
        except Exception as exc:  # unreadable object, unknown rule: reported, the record stays
            return Replay("?", "?", kept.key, f"{type(exc).__name__}: {exc}")
        described = f"{describe_event(rebuilt.event)} (rule {rebuilt.rule} failed)"
        try:
            invoke(function, rebuilt.event)
        except Exception as exc:  # whatever the function raised: the record stays
            return Replay(rebuilt.trace_id, function, described, f"{type(exc).__name__}: {exc}")
        replay = Replay(rebuilt.trace_id, function, described, None)
    return replay


def _aws_rules(region: str | None) -> RuleFailures:
    import boto3

    kwargs = {"region_name": region} if region else {}
    s3, iot = boto3.client("s3", **kwargs), boto3.client("iot", **kwargs)
    functions: dict[str, str] = {}

    def rule_function(rule: str) -> str:
        if rule not in functions:
            actions = iot.get_topic_rule(ruleName=rule)["rule"].get("actions", [])
            lambdas = [a["lambda"]["functionArn"] for a in actions if "lambda" in a]
            if len(lambdas) != 1:
                raise RedriveError(f"topic rule {rule} has {len(lambdas)} Lambda actions, not 1")
            functions[rule] = str(lambdas[0])
        return functions[rule]

    return RuleFailures(_object_reader(s3), rule_function)


def _local_rules(info: Any, template: Any) -> RuleFailures:
    import boto3

    functions: dict[str, str] = {}
    for spec in template.topic_rules():
        lambdas = [a["Lambda"]["FunctionArn"] for a in spec.actions if "Lambda" in a]
        if len(lambdas) == 1:
            functions[spec.name] = str(lambdas[0])

    def rule_function(rule: str) -> str:
        if rule not in functions:
            raise RedriveError(f"no topic rule {rule} with one Lambda action in the template")
        return functions[rule]

    return RuleFailures(
        _object_reader(boto3.client("s3", **info.boto3_kwargs("s3"))), rule_function
    )


def _object_reader(s3: Any) -> ReadObject:
    def read(bucket: str, key: str) -> bytes:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    return read


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


def _local_invoker(info: Any, template: Any) -> Invoke:
    from pathlib import Path

    from cloud.local.functions import LocalFunctions

    functions = LocalFunctions(
        template.functions(),
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
        rules = _aws_rules(args.region)
    else:
        from cloud.local.stackinfo import StackInfo
        from cloud.local.template import LocalTemplate

        info = StackInfo.load()
        template = LocalTemplate()  # read once: the functions and the rules' actions
        sqs = boto3.client("sqs", **info.boto3_kwargs("sqs"))
        queue_url = args.queue_url or sqs.get_queue_url(QueueName=info.failures_queue)["QueueUrl"]
        invoke = _local_invoker(info, template)
        rules = _local_rules(info, template)
    replays = redrive(sqs, queue_url, invoke, rules)
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
        help="replay events kept after failing (batches' alerts, rule actions, scheduled runs)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--aws", action="store_true", help="use AWS instead of the local stack")
    parser.add_argument(
        "--queue-url", help="failures queue (with --aws: the stack output FailuresQueueUrl)"
    )
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.set_defaults(func=guard(run))
