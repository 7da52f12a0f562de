"""Per-reading validation: one bad reading never sinks its batch."""

from __future__ import annotations

import json

from chantier.telemetry import MAX_MESSAGE_BYTES, encode_message
from cloud.ingest.validation import validate_bytes, validate_document


def _batch(readings: list[dict[str, object]]) -> dict[str, object]:
    return {
        "schema": 1,
        "thing": "exc-01",
        "site": "lyon",
        "equipment": "excavator",
        "boot": "9c1e0f7a",
        "seq": 9,
        "runId": None,
        "sentAt": 1763733600123,
        "clockSynced": True,
        "readings": readings,
    }


GOOD = {"sensorId": "engine", "ts": 1763733595000, "temperature": 20.5}


def test_bad_reading_is_rejected_and_the_rest_kept() -> None:
    outcome = validate_document(_batch([GOOD, {**GOOD, "temperature": 999}, {**GOOD, "ts": "x"}]))
    assert outcome.batch is not None
    assert outcome.batch["readings"] == [GOOD]
    reasons = sorted(r.reason for r in outcome.rejections)
    assert reasons == ["invalid-reading", "out-of-range-reading"]
    assert {r.index for r in outcome.rejections} == {1, 2}


def test_batch_with_only_bad_readings_is_rejected_whole() -> None:
    outcome = validate_document(_batch([{**GOOD, "humidity": -3}]))
    assert outcome.rejected_whole
    assert outcome.rejections[0].detail.startswith("readings[0].humidity")


def test_nan_is_refused_even_though_python_parses_it() -> None:
    raw = encode_message(_batch([GOOD])).replace(b"20.5", b"NaN")
    outcome = validate_bytes(raw)
    assert outcome.rejected_whole and outcome.rejections[0].reason == "malformed-json"


def test_oversized_message_is_refused_before_parsing() -> None:
    outcome = validate_bytes(b" " * (MAX_MESSAGE_BYTES + 1))
    assert outcome.rejections[0].reason == "oversized"


def test_unknown_schema_names_the_expected_version() -> None:
    outcome = validate_document({**_batch([GOOD]), "schema": 7})
    assert outcome.rejections[0].reason == "unknown-schema"
    assert "expected 1" in outcome.rejections[0].detail


def test_envelope_strictness_string_seq_is_refused() -> None:
    outcome = validate_bytes(json.dumps({**_batch([GOOD]), "seq": "9"}).encode())
    assert outcome.rejections[0].reason == "invalid-envelope"
    assert "seq" in outcome.rejections[0].detail
