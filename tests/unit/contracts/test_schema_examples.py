"""The JSON Schema, the cloud parser and the example files agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from chantier.telemetry import schema_text
from cloud.ingest.validation import validate_bytes

EXAMPLES = Path(__file__).resolve().parents[3] / "chantier" / "contracts" / "examples"
VALID = sorted((EXAMPLES / "valid").glob("*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
SCHEMA = json.loads(schema_text())


def test_examples_exist() -> None:
    assert len(VALID) >= 3 and len(INVALID) >= 6


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_examples_pass_schema_and_parser(path: Path) -> None:
    raw = path.read_bytes()
    jsonschema.validate(json.loads(raw), SCHEMA)
    outcome = validate_bytes(raw)
    assert outcome.rejections == []
    assert outcome.batch is not None
    assert len(outcome.batch["readings"]) == len(json.loads(raw)["readings"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_examples_fail_schema_and_parser(path: Path) -> None:
    raw = path.read_bytes()
    try:
        document = json.loads(raw, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        document = None
    if document is not None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, SCHEMA)
    outcome = validate_bytes(raw)
    assert outcome.rejections, f"{path.name} was accepted by the parser"
    assert all(r.reason and r.detail for r in outcome.rejections)


def test_values_finer_than_the_cloud_keeps_are_rounded_not_refused() -> None:
    outcome = validate_bytes((EXAMPLES / "valid" / "tiny-values.json").read_bytes())
    assert outcome.batch is not None
    reading = outcome.batch["readings"][0]
    assert reading["temperature"] == 0.0 and reading["humidity"] == 0.0
    assert reading["pressure"] == 1008.31


@pytest.mark.parametrize(
    ("name", "reason", "detail"),
    [
        ("schema-true.json", "unknown-schema", "expected 1 (an integer)"),
        ("deeply-nested.json", "malformed-json", "nested too deeply"),
        ("null-humidity.json", "invalid-reading", "null is not a number"),
    ],
)
def test_each_refusal_says_what_was_wrong(name: str, reason: str, detail: str) -> None:
    outcome = validate_bytes((EXAMPLES / "invalid" / name).read_bytes())
    assert outcome.batch is None
    assert outcome.rejections[0].reason == reason
    assert detail in outcome.rejections[0].detail
