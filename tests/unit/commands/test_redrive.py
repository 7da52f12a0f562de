"""`chantier alerts redrive`: a record leaves the queue only once its event was processed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from cloud.local.destinations import failure_record
from commands.redrive import describe_event, redrive

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
