"""Ingestion: validates batches and health messages, binds them to their sender, keeps the raw
bytes and the readings, drives alert state.

The same service serves the telemetry and health topic rules and the HTTP API's sensor input;
its collaborators are injected (cloud/bootstrap.py wires them). Every message is taken for
what its channel proves (cloud/ingest/identity.py), never for what it says of itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chantier.s3keys import raw_key
from chantier.telemetry import encode_message
from cloud.ingest.error_archive import ErrorArchive
from cloud.ingest.identity import (
    IDENTITY_REASONS,
    RuleEventError,
    RunMembers,
    Source,
    ThingDirectory,
    answers_at_once,
    bind,
    source_from_rule,
)
from cloud.ingest.raw_archive import CONFLICT, RawWrite
from cloud.ingest.readings_store import ReadingsStore
from cloud.ingest.validation import (
    Rejection,
    ValidationOutcome,
    decode_message,
    validate_document,
    validate_health,
)

if TYPE_CHECKING:
    from cloud.alerts.engine import AlertEngine


class HealthSink(Protocol):
    """Where the last health message of each machine is kept."""

    def put(self, message: dict[str, Any]) -> None: ...


class RawArchive(Protocol):
    """Where batches land as their exact bytes, each key written once (raw_archive.py)."""

    def keep(self, key: str, body: bytes) -> RawWrite: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class IngestService:
    """The ingestion logic with its collaborators injected."""

    readings: ReadingsStore
    errors: ErrorArchive
    raw: RawArchive
    alerts: AlertEngine
    logger: Logger
    metrics: Metrics
    # Keeps the last health message per machine for the dashboard (cloud/dashboard/health_store.py).
    health: HealthSink
    things: ThingDirectory
    runs: RunMembers
    clock: Callable[[], int] = field(default=now_ms)

    def handle(self, event: Any) -> dict[str, Any]:
        """A topic rule's event: the message as published and the topic's site and thing."""
        try:
            kind, raw, source = source_from_rule(event, self.clock())
        except RuleEventError as exc:
            body = encode_message(event) if _jsonable(event) else repr(event).encode()
            return self._refuse(body, [Rejection("invalid-event", str(exc))], {})
        if kind == "health":
            return self.health_message(raw, source)
        return self.telemetry(raw, source)

    def telemetry(self, raw: bytes, source: Source) -> dict[str, Any]:
        """A telemetry batch as received from `source`; see docs/architecture.md, step 6."""
        keys: dict[str, Any] = {"thing": source.thing, "site": source.site}
        self.logger.thread_safe_append_keys(**keys)
        try:
            outcome, refusal = self._admit(
                raw, source, validate_document, keys, before_bind=self._read_ahead
            )
            if outcome is None or outcome.batch is None:
                return refusal
            batch = outcome.batch
            keys.update(boot=batch["boot"], seq=batch["seq"])
            self.logger.thread_safe_append_keys(boot=batch["boot"], seq=batch["seq"])
            # Alerts first: they are the latency that matters (reading -> ACTIVE). A failure
            # after them is safe to retry, since the engine drops a batch it already applied.
            transitions = self.alerts.process_batch(batch)
            for transition in transitions:
                self.logger.info("alert transition", extra={"transition": transition.as_dict()})
            key = raw_key(source.site, source.thing, batch["sentAt"], batch["boot"], batch["seq"])
            written = self.raw.keep(key, raw)
            if written.outcome == CONFLICT:
                # The stored batch stays current, in raw/ and in the hot store. The alert engine
                # did see these readings, as it would under a new seq from the same machine.
                conflict = Rejection(
                    "conflicting-resend",
                    f"{key} already holds other bytes for batch {batch['boot']}-{batch['seq']} "
                    f"(version {written.version}): a re-sent batch must be byte-identical; the "
                    "stored one stays current, this one is kept here only",
                )
                return {
                    **self._refuse(raw, [conflict], {**keys, "rawKey": key}),
                    "transitions": len(transitions),
                }
            if outcome.rejections:
                self._note_rejections(raw, outcome.rejections, keys)
            stored = self.readings.put_batch(batch)
            self._accepted(batch, stored)
            return {
                "accepted": stored,
                "rejected": len(outcome.rejections),
                "rejections": [r.detail for r in outcome.rejections],
                "transitions": len(transitions),
                "rawKey": key,
                "raw": written.outcome,
                "bytes": len(raw),
                "receivedMs": source.received_ms,
                "storedMs": written.stored_ms,
                "batch": {
                    "thing": source.thing,
                    "boot": batch["boot"],
                    "seq": batch["seq"],
                    "sentAt": batch["sentAt"],
                    "runId": batch.get("runId"),
                    "readings": len(batch["readings"]) + len(outcome.rejections),
                },
            }
        finally:
            self.logger.thread_safe_remove_keys(["thing", "site", "boot", "seq"])

    def health_message(self, raw: bytes, source: Source) -> dict[str, Any]:
        """A health message as received from `source`: validated and bound like telemetry."""
        keys = {"thing": source.thing, "site": source.site, "kind": "health"}
        outcome, refusal = self._admit(raw, source, validate_health, keys)
        if outcome is None or outcome.batch is None:
            return refusal
        message = outcome.batch
        transitions = self.alerts.process_health(message)
        self.health.put(message)
        self.metrics.add_metric(name="health_received", unit=MetricUnit.Count, value=1)
        self.logger.info("health", extra={"thing": source.thing, "transitions": len(transitions)})
        return {"health": True, "transitions": len(transitions)}

    def _admit(
        self,
        raw: bytes,
        source: Source,
        validate: Callable[[Any, int | None], ValidationOutcome],
        keys: dict[str, Any],
        before_bind: Callable[[dict[str, Any], Source], None] | None = None,
    ) -> tuple[ValidationOutcome | None, dict[str, Any]]:
        """The message validated and bound to its sender, or the answer of refusing it."""
        document, refused = decode_message(raw)
        if refused is not None:
            return None, self._refuse(raw, [refused], keys)
        outcome = validate(document, source.received_ms)
        if outcome.batch is None:
            return None, self._refuse(raw, outcome.rejections, keys)
        if before_bind is not None:
            before_bind(outcome.batch, source)
        mismatch = bind(outcome.batch, source, self.things, self.runs)
        if mismatch is not None:
            return None, self._refuse(raw, [mismatch], keys)
        return outcome, {}

    def _read_ahead(self, batch: dict[str, Any], source: Source) -> None:
        # A machine this instance has not looked up yet: its alert states are read while the
        # registry answers, rather than after (only read, never written, before the binding).
        if source.equipment is None and not answers_at_once(self.things, source.thing):
            self.alerts.read_ahead(source.thing, batch.get("boot"), batch.get("seq"))

    def _accepted(self, batch: dict[str, Any], stored: int) -> None:
        temperatures = [r["temperature"] for r in batch["readings"]]
        self.metrics.add_metric(name="sensor_data_ingested", unit=MetricUnit.Count, value=stored)
        self.metrics.add_metric(
            name="temperature_avg",
            unit=MetricUnit.Count,
            value=sum(temperatures) / len(temperatures),
        )
        self.metrics.add_metric(
            name="processing_lag_ms",
            unit=MetricUnit.Milliseconds,
            value=max(0, self.clock() - batch["sentAt"]),
        )

    def _note_rejections(
        self, raw: bytes, rejections: list[Rejection], context: dict[str, Any]
    ) -> str:
        for rejection in rejections:
            self.logger.warning(
                "rejected", extra={"reason": rejection.reason, "detail": rejection.detail}
            )
            self.metrics.add_metric(name="readings_rejected", unit=MetricUnit.Count, value=1)
        key = self.errors.keep(raw, rejections, context)
        self.logger.info("kept refused input", extra={"key": key})
        return key

    def _refuse(
        self, raw: bytes, rejections: list[Rejection], context: dict[str, Any]
    ) -> dict[str, Any]:
        """Count, log and keep a message refused as a whole; it changes no state."""
        reason = rejections[0].reason
        if reason in IDENTITY_REASONS:
            self.metrics.add_metric(name="identity_refused", unit=MetricUnit.Count, value=1)
        elif reason == "conflicting-resend":
            self.metrics.add_metric(name="conflicting_resends", unit=MetricUnit.Count, value=1)
        key = self._note_rejections(raw, rejections, context)
        return {
            "accepted": 0,
            "rejected": len(rejections),
            "refused": reason,
            "rejections": [r.detail for r in rejections],
            "errorKey": key,
            "transitions": 0,
        }


def _jsonable(value: Any) -> bool:
    try:
        encode_message(value)
    except (TypeError, ValueError):
        return False
    return True
