"""Validation of incoming telemetry: every rejection has a reason, one bad reading sinks nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from chantier.telemetry import FUTURE_TOLERANCE_MS, MAX_MESSAGE_BYTES
from cloud.ingest.models import BatchEnvelope, HealthMessage, Reading


@dataclass(frozen=True)
class Rejection:
    """Why a message or a reading was refused; `reason` is a short metric-friendly code."""

    reason: str
    detail: str
    index: int | None = None  # position of the reading in the batch, None for the whole message


@dataclass
class ValidationOutcome:
    batch: dict[str, Any] | None = None  # the envelope with only the accepted readings
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected_whole(self) -> bool:
        return self.batch is None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def decode(raw: bytes) -> Any:
    """Parse JSON strictly: NaN and Infinity, which Python would accept, are refused."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply: expected a flat message") from None


def _summary(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    kind = first["type"]
    reason = "out-of-range" if kind in ("greater_than_equal", "less_than_equal") else "invalid"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return reason, f"{where}: {first['msg']}{more}"


def _schema_one(document: Any) -> Rejection | None:
    if not isinstance(document, dict):
        return Rejection("invalid-envelope", "message is not a JSON object")
    schema = document.get("schema")
    if type(schema) is not int or schema != 1:  # True and 1.0 equal 1 in Python, not in JSON
        return Rejection(
            "unknown-schema", f"schema {schema!r:.40} is not supported: expected 1 (an integer)"
        )
    return None


def _too_far_ahead(what: str, stamp: int, received_ms: int | None) -> str | None:
    if received_ms is None or stamp <= received_ms + FUTURE_TOLERANCE_MS:
        return None
    return (
        f"{what} {stamp} is {(stamp - received_ms) / 60_000:.1f} min after the message was "
        f"received ({received_ms}): expected at most {FUTURE_TOLERANCE_MS // 60_000} min ahead"
    )


def _parse(
    model: type[BatchEnvelope] | type[HealthMessage],
    reason: str,
    document: Any,
    received_ms: int | None,
) -> tuple[Any, Rejection | None]:
    """The message as `model` reads it, unless invalid or sent too far ahead (then why)."""
    refused = _schema_one(document)
    if refused is not None:
        return None, refused
    try:
        message = model.model_validate(document)
    except ValidationError as exc:
        return None, Rejection(reason, _summary(exc)[1])
    ahead = _too_far_ahead("sentAt", message.sentAt, received_ms)
    if ahead is not None:
        return None, Rejection("future-timestamp", ahead)
    return message, None


def validate_document(document: Any, received_ms: int | None = None) -> ValidationOutcome:
    """Validate a decoded schema-1 message; readings are accepted or rejected one by one.

    With `received_ms`, a batch or a reading stamped more than FUTURE_TOLERANCE_MS after it is
    refused: its time would pass for the newest for ever and hide every real reading after it.
    """
    envelope, refused = _parse(BatchEnvelope, "invalid-envelope", document, received_ms)
    if refused is not None:
        return ValidationOutcome(rejections=[refused])
    accepted: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(envelope.readings):
        try:
            reading = Reading.model_validate(item)
        except ValidationError as exc:
            reason, detail = _summary(exc)
            rejections.append(Rejection(f"{reason}-reading", f"readings[{index}].{detail}", index))
            continue
        ahead = _too_far_ahead(f"readings[{index}].ts", reading.ts, received_ms)
        if ahead is not None:
            rejections.append(Rejection("future-reading", ahead, index))
            continue
        accepted.append(reading.model_dump(exclude_none=True))
    if not accepted:
        return ValidationOutcome(rejections=rejections)
    batch = envelope.model_dump(by_alias=True)
    batch["readings"] = accepted
    return ValidationOutcome(batch=batch, rejections=rejections)


def decode_message(raw: bytes) -> tuple[Any, Rejection | None]:
    """The JSON document of a message as received, or why it is none (size, JSON)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return None, Rejection(
            "oversized", f"{len(raw)} bytes: expected at most {MAX_MESSAGE_BYTES}"
        )
    try:
        return decode(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, Rejection("malformed-json", str(exc))


def validate_bytes(raw: bytes, received_ms: int | None = None) -> ValidationOutcome:
    """Validate a message as received (size, JSON, schema)."""
    document, refused = decode_message(raw)
    if refused is not None:
        return ValidationOutcome(rejections=[refused])
    return validate_document(document, received_ms)


def validate_health(document: Any, received_ms: int | None = None) -> ValidationOutcome:
    """Validate a decoded health-1 message as a whole; `batch` holds it when accepted."""
    message, refused = _parse(HealthMessage, "invalid-health", document, received_ms)
    if refused is not None:
        return ValidationOutcome(rejections=[refused])
    return ValidationOutcome(batch=message.model_dump(by_alias=True))
