"""`chantier alerts redrive`: a record leaves the queue only once its event was processed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from cloud.local.destinations import failure_record
from commands.redrive import RuleFailures, describe_event, redrive

ARN = "arn:aws:lambda:eu-west-3:123456789012:function:ingest"


class FakeQueue:
    """The SQS calls redrive makes, on a list of messages in memory."""

    def __init__(self, bodies: list[str]) -> None:
        self.messages = {f"m{i}": body for i, body in enumerate(bodies)}
        self.invisible: set[str] = set()
        self.deleted: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["VisibilityTimeout"] > 0
        ready = [m for m in self.messages if m not in self.invisible][
            : kwargs["MaxNumberOfMessages"]
        ]
        self.invisible.update(ready)
        return {
            "Messages": [
                {"MessageId": m, "ReceiptHandle": f"r-{m}", "Body": self.messages[m]} for m in ready
            ]
        }

    def delete_message(self, **kwargs: str) -> None:
        message = kwargs["ReceiptHandle"].removeprefix("r-")
        del self.messages[message]
        self.invisible.discard(message)
        self.deleted.append(message)

    def change_message_visibility(self, **kwargs: Any) -> None:
        assert kwargs["VisibilityTimeout"] == 0
        self.invisible.discard(kwargs["ReceiptHandle"].removeprefix("r-"))


def _record(event: dict[str, Any]) -> str:
    return json.dumps(failure_record(ARN, "req-1", event, KeyError("x"), 3))


def _event(thing: str, boot: str, seq: int) -> dict[str, Any]:
    """A topic rule's event for a batch of `thing` (the message base64, the topic's identity)."""
    payload = json.dumps({"thing": thing, "boot": boot, "seq": seq}).encode()
    return {"payload": base64.b64encode(payload).decode(), "thing": thing, "kind": "telemetry"}


def test_processed_events_leave_the_queue_and_failed_ones_are_visible_again() -> None:
    good = _event("exc-01", "b1", 1)
    bad = _event("exc-02", "b2", 2)
    queue = FakeQueue([_record(good), _record(bad), "not json"])
    calls: list[tuple[str, Any]] = []

    def invoke(function: str, event: Any) -> None:
        calls.append((function, event))
        if event["thing"] == "exc-02":
            raise RuntimeError("table missing")

    replays = redrive(queue, "url", invoke)
    assert [(r.event, r.error) for r in replays][:2] == [
        ("exc-01 batch b1-1", None),
        ("exc-02 batch b2-2", "RuntimeError: table missing"),
    ]
    assert replays[2].error is not None and "not a failure record" in replays[2].error
    assert calls == [(f"{ARN}:$LATEST", good), (f"{ARN}:$LATEST", bad)]
    assert queue.deleted == ["m0"]
    assert set(queue.messages) == {"m1", "m2"} and not queue.invisible


def test_an_empty_queue_replays_nothing() -> None:
    assert redrive(FakeQueue([]), "url", lambda f, e: None) == []


def test_events_are_named_for_people() -> None:
    assert describe_event({"thing": "crane-01", "kind": "health"}) == "crane-01 health"
    assert describe_event(_event("exc-01", "9c1e", 4)) == "exc-01 batch 9c1e-4"
    assert describe_event({"thing": "exc-01", "payload": "%%"}) == "exc-01 batch ?-?"
    assert describe_event([1]) == "list"


def test_the_failure_record_has_lambdas_shape() -> None:
    try:
        raise TimeoutError("DynamoDB did not answer")
    except TimeoutError as exc:
        error = exc
    moment = datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC)
    record = failure_record(ARN, "req-9", {"seq": 3}, error, 3, now=moment)
    assert record["version"] == "1.0"
    assert record["timestamp"] == "2026-11-26T10:00:00.123Z"
    assert record["requestContext"] == {
        "requestId": "req-9",
        "functionArn": f"{ARN}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"seq": 3}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "TimeoutError"
    assert record["responsePayload"]["errorMessage"] == "DynamoDB did not answer"
    assert record["responsePayload"]["stackTrace"]


# ---------- rule-action failures: S3's notification of the error action's object ----------

BUCKET = "raw-bucket"
FAILED_KEY = "errors/reason=rule-action/date=2026-11-26/1795687200123-0c4e.json"
RULE_ARN = "arn:aws:lambda:eu-west-3:123456789012:function:ingest-from-rule"


def _notification(key: str = FAILED_KEY, event_name: str = "ObjectCreated:Put") -> str:
    """What S3 sends the queue for a new object (the key URL-encoded, as S3 does)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-26T10:00:00.500Z",
        "eventName": event_name,
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key), "size": 10}},
    }
    return json.dumps({"Records": [record]})


def _error_message(topic: str, payload: bytes, rule: str = "chantier_telemetry") -> bytes:
    """IoT's error-action message, as the rules' error action keeps it under errors/."""
    return json.dumps(
        {
            "ruleName": rule,
            "topic": topic,
            "cloudwatchTraceId": "trace-1",
            "clientId": "exc-01",
            "base64OriginalPayload": base64.b64encode(payload).decode(),
            "failures": [
                {
                    "failedAction": "LambdaAction",
                    "failedResource": "ingest",
                    "errorMessage": "Failed to invoke lambda function",
                }
            ],
        }
    ).encode()


class Objects:
    """Kept objects by (bucket, key), and the rules' function, as RuleFailures reads them."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def rules(self) -> RuleFailures:
        def read(bucket: str, key: str) -> bytes:
            assert bucket == BUCKET
            return self.objects[key]

        def function(rule: str) -> str:
            if rule != "chantier_telemetry":
                raise LookupError(f"no rule {rule}")
            return RULE_ARN

        return RuleFailures(read, function)


BATCH = json.dumps({"thing": "exc-01", "site": "lyon", "boot": "b1", "seq": 9}).encode()


def test_a_rule_action_failure_is_replayed_as_the_rule_made_the_event() -> None:
    objects = Objects(
        {
            FAILED_KEY: _error_message(
                "$aws/rules/chantier_telemetry/dt/chantier/lyon/exc-01/telemetry", BATCH
            )
        }
    )
    queue = FakeQueue([_notification()])
    calls: list[tuple[str, Any]] = []
    replays = redrive(queue, "url", lambda f, e: calls.append((f, e)), objects.rules())
    assert calls == [
        (
            RULE_ARN,
            {
                "payload": base64.b64encode(BATCH).decode(),
                "site": "lyon",
                "thing": "exc-01",
                "kind": "telemetry",
                "receivedAt": 1795687200123,  # the rule's timestamp(), from the key
            },
        )
    ]
    assert [(r.event, r.error) for r in replays] == [
        ("exc-01 batch b1-9 (rule chantier_telemetry failed)", None)
    ]
    assert queue.deleted == ["m0"] and not queue.messages


def test_identity_comes_from_the_kept_topic_not_from_the_payload() -> None:
    claims_other = json.dumps({"thing": "crane-07", "site": "paris", "boot": "b", "seq": 1})
    key = "errors/reason=rule-action/date=2026-11-26/no-timestamp.json"
    objects = Objects(
        {key: _error_message("dt/chantier/lyon/exc-01/health", claims_other.encode())}
    )
    events: list[Any] = []
    redrive(FakeQueue([_notification(key)]), "url", lambda f, e: events.append(e), objects.rules())
    ((event,),) = [events]
    assert (event["site"], event["thing"], event["kind"]) == ("lyon", "exc-01", "health")
    # No timestamp in the key: S3's event time stands in for the rule's.
    assert event["receivedAt"] == 1795687200500


def test_s3s_test_message_is_removed_without_a_replay() -> None:
    test = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    queue = FakeQueue([json.dumps(test)])
    calls: list[Any] = []
    assert redrive(queue, "url", lambda f, e: calls.append(e), Objects({}).rules()) == []
    assert calls == [] and queue.deleted == ["m0"]


def test_a_non_conforming_kept_object_is_reported_and_left_in_the_queue() -> None:
    topic = "$aws/rules/chantier_telemetry/dt/chantier/lyon/exc-01/telemetry"
    cases = {
        "errors/reason=rule-action/1-a.json": b"not json",
        "errors/reason=rule-action/1-b.json": b"[1, 2]",
        "errors/reason=rule-action/1-c.json": json.dumps(
            {"ruleName": "chantier_telemetry"}
        ).encode(),
        "errors/reason=rule-action/1-d.json": _error_message("dt/chantier/lyon/telemetry", BATCH),
        "errors/reason=rule-action/1-e.json": _error_message(topic, BATCH, rule="chantier_health"),
        "errors/reason=rule-action/1-f.json": _error_message(topic, BATCH).replace(
            base64.b64encode(BATCH), b"%%%"
        ),
    }
    objects = Objects(cases)
    bodies = [_notification(key) for key in cases]
    bodies.append(_notification("errors/reason=rule-action/gone.json"))  # expired or deleted
    bodies.append(_notification("errors/reason=identity-mismatch/1-g.json"))  # not a rule's
    bodies.append(_notification(FAILED_KEY, event_name="ObjectRemoved:Delete"))
    bodies.append(json.dumps({"Records": [{"eventSource": "aws:s3"}]}))
    queue = FakeQueue(bodies)
    calls: list[Any] = []
    replays = redrive(queue, "url", lambda f, e: calls.append(e), objects.rules())
    assert calls == []
    assert len(replays) == len(bodies)
    assert all(r.error for r in replays), replays
    assert queue.deleted == [] and len(queue.messages) == len(bodies) and not queue.invisible
    errors = [r.error or "" for r in replays]
    assert "not JSON" in errors[0] and "JSON object" in errors[1]
    assert "ruleName and topic" in errors[2] and "does not follow" in errors[3]
    assert "names rule 'chantier_telemetry'" in errors[4] and "not base64" in errors[5]
    assert "KeyError" in errors[6] and "expected an object under" in errors[7]
    assert "expected ObjectCreated" in errors[8] and "s3.bucket.name" in errors[9]


def test_without_rule_replays_a_rule_failure_is_left_in_the_queue() -> None:
    queue = FakeQueue([_notification()])
    (replay,) = redrive(queue, "url", lambda f, e: None)
    assert replay.error and "left" in replay.error
    assert queue.deleted == []
