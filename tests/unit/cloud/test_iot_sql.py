"""The local IoT SQL subset: statements, topic filters and substitution templates."""

from __future__ import annotations

import json

import pytest

from cloud.local.iot_sql import (
    EvaluationError,
    IotSqlError,
    MessageContext,
    compile_statement,
    render_template,
    topic_matches,
)
from cloud.local.template import LocalTemplate

TOPIC = "dt/chantier/lyon/exc-01/telemetry"
PAYLOAD = {
    "thing": "exc-01",
    "boot": "9c1e0f7a",
    "seq": 12,
    "sentAt": 1763733600123,
    "nested": {"v": 2.5},
}


def ctx(payload: object = PAYLOAD, topic: str = TOPIC) -> MessageContext:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return MessageContext.create(topic, raw, "exc-01", 1763733600999)


@pytest.mark.parametrize(
    ("flt", "topic", "expected"),
    [
        ("dt/chantier/+/+/telemetry", TOPIC, True),
        ("dt/chantier/+/+/telemetry", "dt/chantier/lyon/exc-01/health", False),
        ("dt/#", TOPIC, True),
        ("dt/chantier/+", TOPIC, False),
        ("dt/chantier/lyon/exc-01/telemetry/x", TOPIC, False),
    ],
)
def test_topic_filters(flt: str, topic: str, expected: bool) -> None:
    assert topic_matches(flt, topic) is expected


def test_select_star_passes_the_exact_bytes() -> None:
    raw = b'{"seq": 1,   "odd spacing": true}'
    statement = compile_statement("SELECT * FROM 'dt/chantier/+/+/telemetry'")
    assert statement.select(ctx(raw)) == raw


def test_select_fields_and_where() -> None:
    statement = compile_statement(
        "SELECT topic(4) AS thing, nested.v AS v, encode(*, 'base64') AS b FROM 'dt/#' "
        "WHERE seq >= 12 AND NOT (thing = 'other')"
    )
    out = statement.select(ctx())
    assert isinstance(out, dict)
    assert out["thing"] == "exc-01" and out["v"] == 2.5 and out["b"]
    assert statement.accepts(ctx())
    assert not statement.accepts(ctx({**PAYLOAD, "seq": 3}))
    assert not statement.accepts(ctx(b"not json"))  # Undefined in WHERE is false


def test_template_key_of_the_design() -> None:
    key = render_template(
        'raw/site=${topic(3)}/thing=${topic(4)}/date=${parse_time("yyyy-MM-dd", sentAt, "UTC")}'
        "/${boot}-${seq}.json",
        ctx(),
    )
    assert key == "raw/site=lyon/thing=exc-01/date=2025-11-21/9c1e0f7a-12.json"


@pytest.mark.parametrize("payload", [b"{broken", {"boot": "x"}])
def test_template_with_missing_field_fails_instead_of_writing_a_bad_key(payload: object) -> None:
    with pytest.raises(EvaluationError):
        render_template("${boot}-${seq}", ctx(payload))


def test_unsupported_sql_is_refused_clearly() -> None:
    with pytest.raises(IotSqlError, match="not in the supported"):
        compile_statement("SELECT md5(thing) FROM 'a/b'")
    with pytest.raises(IotSqlError, match="FROM"):
        compile_statement("SELECT *")


def test_every_rule_of_the_template_compiles_and_renders() -> None:
    rules = LocalTemplate().topic_rules()
    assert {r.name for r in rules} == {"chantier_telemetry", "chantier_health"}
    for rule in rules:
        compile_statement(rule.sql)
        for action in [*rule.actions, rule.error_action or {}]:
            for params in action.values():
                if "Key" in params:
                    render_template(params["Key"], ctx())


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(PAYLOAD).encode(),
        b"not json at all \xff",
        b"[" * 5000 + b"]" * 5000,  # deeper than a rule reads as JSON
        b'{"a": NaN}',
    ],
    ids=["json", "binary", "deep", "nan"],
)
def test_the_templates_rules_select_the_exact_bytes_and_the_topics_identity(
    payload: bytes,
) -> None:
    import base64

    for rule in LocalTemplate().topic_rules():
        kind = rule.name.rsplit("_", 1)[1]
        topic = f"dt/chantier/lyon/exc-01/{kind}"
        statement = compile_statement(rule.sql)
        assert statement.matches(topic)
        selected = statement.select(ctx(payload, topic))
        assert isinstance(selected, dict)
        assert base64.b64decode(selected["payload"]) == payload
        assert (selected["site"], selected["thing"], selected["kind"]) == ("lyon", "exc-01", kind)
        assert selected["receivedAt"] == 1763733600999
