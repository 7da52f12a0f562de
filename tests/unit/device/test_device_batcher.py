"""Batching: exact byte budget, schema-valid output, due rules."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chantier.telemetry import schema_text
from device.batcher import BatchTooSmallError, Envelope, batch_due, build_batch, reading_dict

ENV = Envelope("exc-01", "lyon-part-dieu", "excavator", "9c1e0f7a", None)
SCHEMA = json.loads(schema_text())


def readings(n: int) -> list[dict]:
    return [
        reading_dict("engine", 1763733595000 + i * 1000, 20.0 + i / 100, 45.5, 1008.31)
        for i in range(n)
    ]


@settings(max_examples=60, deadline=None)
@given(
    budget=st.integers(min_value=300, max_value=20_000), n=st.integers(min_value=1, max_value=400)
)
def test_payload_never_exceeds_budget_and_is_the_longest_prefix(budget: int, n: int) -> None:
    items = readings(n)
    payload, count = build_batch(ENV, 12, 1763733600123, True, items, budget)
    assert len(payload) <= budget
    message = json.loads(payload)
    jsonschema.validate(message, SCHEMA)
    assert message["readings"] == items[:count]
    if count < n:
        bigger, _ = build_batch(ENV, 12, 1763733600123, True, items[: count + 1], 10**9)
        assert len(bigger) > budget


def test_max_readings_and_too_small_budget() -> None:
    _, count = build_batch(ENV, 1, 1763733600123, True, readings(50), 10**6, max_readings=20)
    assert count == 20
    with pytest.raises(BatchTooSmallError, match="cannot hold one reading"):
        build_batch(ENV, 1, 1763733600123, True, readings(1), 100)


def test_optional_fields_left_out() -> None:
    payload, _ = build_batch(
        ENV, 1, 1763733600123, False, [reading_dict("cabin", 1763733595000, -3.2)], 4800
    )
    message = json.loads(payload)
    assert message["readings"] == [{"sensorId": "cabin", "ts": 1763733595000, "temperature": -3.2}]
    assert message["clockSynced"] is False
    jsonschema.validate(message, SCHEMA)


def test_due_rules() -> None:
    assert not batch_due(0, None, False, 4800, 60)
    assert not batch_due(100, 10, False, 4800, 60)
    assert batch_due(100, 10, True, 4800, 60)
    assert batch_due(4800, 1, False, 4800, 60)
    assert batch_due(100, 60, False, 4800, 60)
