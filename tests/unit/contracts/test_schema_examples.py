"""The JSON Schemas, the cloud parser and the example files agree.

- `valid/`, `invalid/`: telemetry; `health/valid/`, `health/invalid/`: health messages. Schema
  and parser accept every valid example and refuse every invalid one.
- `refused/`: messages the schema and the parser accept, which ingestion refuses all the same:
  they disagree with the topic they came on, the registry or a run, or are stamped in the
  future, or re-send a batch name with other bytes. Each file gives the message, the topic it
  is published on, the receive time, the registry and runs it meets, any message published
  before it, and the reason ingestion must give; the test publishes it through the ingest
  service (in memory) as the topic rule would, and checks that nothing was stored for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from support.ingest_fakes import make_ingest, rule_event

from chantier.names import parse_topic
from chantier.telemetry import schema_text
from cloud.ingest.identity import ThingInfo
from cloud.ingest.validation import validate_bytes, validate_document, validate_health

EXAMPLES = Path(__file__).resolve().parents[3] / "chantier" / "contracts" / "examples"
VALID = sorted((EXAMPLES / "valid").glob("*.json"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))
SCHEMA = json.loads(schema_text())
HEALTH_SCHEMA = json.loads(schema_text("health-1.schema.json"))
HEALTH_VALID = sorted((EXAMPLES / "health" / "valid").glob("*.json"))
HEALTH_INVALID = sorted((EXAMPLES / "health" / "invalid").glob("*.json"))
REFUSED = sorted((EXAMPLES / "refused").glob("*.json"))


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


def test_health_and_refused_examples_exist() -> None:
    assert len(HEALTH_VALID) >= 3 and len(HEALTH_INVALID) >= 8 and len(REFUSED) >= 10


def test_health_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(HEALTH_SCHEMA)


@pytest.mark.parametrize("path", HEALTH_VALID, ids=lambda p: p.stem)
def test_valid_health_examples_pass_schema_and_parser(path: Path) -> None:
    document = json.loads(path.read_bytes())
    jsonschema.validate(document, HEALTH_SCHEMA)
    outcome = validate_health(document)
    assert outcome.rejections == [] and outcome.batch is not None


@pytest.mark.parametrize("path", HEALTH_INVALID, ids=lambda p: p.stem)
def test_invalid_health_examples_fail_schema_and_parser(path: Path) -> None:
    document = json.loads(path.read_bytes())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, HEALTH_SCHEMA)
    outcome = validate_health(document)
    assert outcome.batch is None and outcome.rejections[0].detail


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.stem)
def test_refused_examples_are_valid_messages_that_ingestion_refuses(path: Path) -> None:
    case = json.loads(path.read_bytes())
    message, topic = case["message"], parse_topic(case["topic"])
    schema, check = (
        (HEALTH_SCHEMA, validate_health) if topic.kind == "health" else (SCHEMA, validate_document)
    )
    jsonschema.validate(message, schema)
    assert check(message).rejections == [], "the parser alone must accept it"

    registry = [ThingInfo(t["thing"], t["site"], t["equipment"]) for t in case["registry"]]
    runs = {run: set(things) for run, things in case.get("runs", {}).items()}
    kit = make_ingest(*registry, runs=runs, now_ms=case["receivedAt"])
    for earlier in case.get("before", []):
        event = rule_event(topic.site, topic.thing, topic.kind, json.dumps(earlier).encode(), 0)
        assert kit.service.handle({**event, "receivedAt": case["receivedAt"]})["accepted"]
    raw_before, states_before = dict(kit.s3.under("raw/")), dict(kit.alerts.states)
    hot_before = dict(kit.readings.items)
    payload = json.dumps(message).encode()
    result = kit.service.handle(
        rule_event(topic.site, topic.thing, topic.kind, payload, case["receivedAt"])
    )
    assert result["refused"] == case["reason"]
    [kept] = [doc for doc in kit.s3.errors() if doc["reason"] == case["reason"]]
    assert kept["payloadBase64"] and kept["rejections"][0]["detail"]
    assert kit.s3.under("raw/") == raw_before and kit.readings.items == hot_before
    assert kit.health.messages == []
    if case["reason"] != "conflicting-resend":  # that one's readings may move its own alerts
        assert kit.alerts.states == states_before
