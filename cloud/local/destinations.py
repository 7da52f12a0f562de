"""On-failure destinations on the local stack: the record Lambda keeps of an asynchronous
event that failed every attempt, in Lambda's shape, sent to the same SQS queue (in moto)."""

from __future__ import annotations

import json
import traceback
from datetime import UTC, datetime
from typing import Any

RECORD_VERSION = "1.0"


class DestinationError(RuntimeError):
    """A failure record could not be kept in its destination."""


def failure_record(
    function_arn: str,
    request_id: str,
    event: Any,
    error: BaseException,
    attempts: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination after the last attempt failed."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": RECORD_VERSION,
        "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_tb(error.__traceback__),
        },
    }


def queue_name(arn: str) -> str:
    """The queue's name from its ARN (arn:aws:sqs:region:account:name)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise DestinationError(
            f"on-failure destination {arn!r}: the local stack keeps failures in SQS queues only "
            "(expected arn:aws:sqs:<region>:<account>:<name>)"
        )
    return parts[5]


class QueueDestination:
    """An SQS queue that keeps failure records, one message each."""

    def __init__(self, sqs: Any, name: str) -> None:
        self.name = name
        self._sqs = sqs
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self.name)["QueueUrl"])
        return self._url

    def keep(self, record: dict[str, Any]) -> None:
        try:
            self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(record))
        except Exception as exc:  # any client failure: the caller must not drop the event
            raise DestinationError(
                f"could not keep the failure in queue {self.name}: {exc}"
            ) from exc

    def count(self) -> int:
        """Records in the queue, visible or being replayed (SQS's approximate figures)."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())
