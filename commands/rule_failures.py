"""Rule-action failures in the failures queue: S3's notification of an object the topic rules'
error action kept under `errors/reason=rule-action/`, and the ingestion event rebuilt from it.

The error action writes IoT's error-action message (JSON: `ruleName`, `topic`, `clientId`,
`base64OriginalPayload`, `failures`, ...; cloud/local/rules_engine.py writes the same). The
topic rules' SQL hands the function `encode(*, 'base64') AS payload, topic(3) AS site,
topic(4) AS thing, topic(5) AS kind, timestamp() AS receivedAt` (cloud/template.yaml): the
event is rebuilt from the kept topic and bytes alone, so identity still comes from the topic
the device was allowed to publish on, never from the payload.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from chantier.names import TopicError, parse_topic, strip_basic_ingest

RULE_ACTION_PREFIX = "errors/reason=rule-action/"
TEST_EVENT = "s3:TestEvent"


class RuleFailureError(ValueError):
    """A notification or a kept object is not what the topic rules' error action leaves."""


@dataclass(frozen=True)
class KeptObject:
    bucket: str
    key: str
    event_time: str  # S3's eventTime (ISO 8601), the fallback for the rule's timestamp


@dataclass(frozen=True)
class RuleEvent:
    rule: str
    event: dict[str, Any]
    trace_id: str  # the error action's cloudwatchTraceId, to tell records apart


def is_test_event(message: Any) -> bool:
    """True for the message S3 sends once when a bucket's notification is set."""
    return isinstance(message, dict) and message.get("Event") == TEST_EVENT


def is_s3_notification(message: Any) -> bool:
    """True for an S3 event notification (`Records` of `aws:s3` events)."""
    records = message.get("Records") if isinstance(message, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)
    )


def kept_objects(message: dict[str, Any]) -> list[KeptObject]:
    """The rule-action objects an S3 notification announces (keys URL-decoded, as S3 encodes)."""
    kept: list[KeptObject] = []
    for record in message["Records"]:
        try:
            bucket = str(record["s3"]["bucket"]["name"])
            key = unquote_plus(str(record["s3"]["object"]["key"]))
        except (KeyError, TypeError):
            raise RuleFailureError(
                "S3 notification without s3.bucket.name and s3.object.key"
            ) from None
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            raise RuleFailureError(
                f"S3 notification {record.get('eventName')!r} for {key}: expected ObjectCreated"
            )
        if not key.startswith(RULE_ACTION_PREFIX):
            raise RuleFailureError(
                f"S3 notification for {key}: expected an object under {RULE_ACTION_PREFIX}"
            )
        kept.append(KeptObject(bucket, key, str(record.get("eventTime", ""))))
    return kept


def rebuild_event(document: bytes, kept: KeptObject) -> RuleEvent:
    """The event the rule named in the error-action message would have handed its function."""
    try:
        message = json.loads(document)
    except (ValueError, RecursionError):
        raise RuleFailureError(f"{kept.key}: not JSON, expected an error-action message") from None
    if not isinstance(message, dict):
        raise RuleFailureError(f"{kept.key}: expected a JSON object (an error-action message)")
    rule, topic = message.get("ruleName"), message.get("topic")
    payload = message.get("base64OriginalPayload")
    if not isinstance(rule, str) or not rule or not isinstance(topic, str):
        raise RuleFailureError(f"{kept.key}: expected the error action's ruleName and topic")
    if not isinstance(payload, str):
        raise RuleFailureError(f"{kept.key}: expected the message as base64OriginalPayload")
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RuleFailureError(f"{kept.key}: base64OriginalPayload is not base64") from None
    basic_ingest_rule, plain = strip_basic_ingest(topic)
    if basic_ingest_rule is not None and basic_ingest_rule != rule:
        raise RuleFailureError(
            f"{kept.key}: topic {topic!r} names rule {basic_ingest_rule!r}, the message {rule!r}"
        )
    try:
        parsed = parse_topic(plain)
    except TopicError as exc:
        raise RuleFailureError(f"{kept.key}: {exc}") from None
    event = {
        "payload": payload,
        "site": parsed.site,
        "thing": parsed.thing,
        "kind": parsed.kind,
        "receivedAt": _received_ms(kept),
    }
    return RuleEvent(rule, event, str(message.get("cloudwatchTraceId") or kept.key))


def _received_ms(kept: KeptObject) -> int:
    """The rule's timestamp(): the key's `<timestamp()>-<uuid>.json`, else S3's event time."""
    stamp = kept.key.rsplit("/", 1)[-1].split("-", 1)[0]
    if stamp.isdigit():
        return int(stamp)
    try:
        return int(
            datetime.fromisoformat(kept.event_time.replace("Z", "+00:00")).timestamp() * 1000
        )
    except ValueError:
        raise RuleFailureError(
            f"{kept.key}: no reception time (neither the key's timestamp nor S3's eventTime)"
        ) from None
