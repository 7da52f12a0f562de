"""The template is lint-clean and holds what the design requires of it."""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import ManualArgs, lint_file

from cloud.local.template import TEMPLATE_PATH, LocalTemplate


def test_cfn_lint_finds_nothing() -> None:
    matches = lint_file(Path(TEMPLATE_PATH), config=ManualArgs(regions=["eu-west-3", "us-east-1"]))
    assert [str(m) for m in matches] == []


def test_raw_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    template = LocalTemplate()
    bucket = template.properties("RawBucket")
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policies = [template.properties(lid) for lid in template.of_type("AWS::S3::BucketPolicy")]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    assert any(
        s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        for s in statements
    )


def test_topic_rules_use_sql_2016_and_have_an_error_action() -> None:
    rules = LocalTemplate().topic_rules()
    assert {r.name for r in rules} == {"chantier_telemetry", "chantier_health"}
    assert all(r.error_action for r in rules)


def test_topic_rules_hand_the_function_the_bytes_and_the_topics_identity() -> None:
    template = LocalTemplate()
    for rule in template.topic_rules():
        sql = rule.sql.replace(" ", "")
        for selected in ("encode(*,'base64')ASpayload", "topic(3)ASsite", "topic(4)ASthing"):
            assert selected in sql, (rule.name, selected)
        assert [next(iter(a)) for a in rule.actions] == ["Lambda"]
    # The rules' role keeps failed messages only: the raw batches are the function's to write.
    role = template.properties("IotRuleRole")
    resources = [
        str(r)
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for r in (
            [statement["Resource"]]
            if isinstance(statement["Resource"], str)
            else statement["Resource"]
        )
    ]
    assert resources and all(r.endswith("/errors/*") for r in resources)
    ingest = template.properties("IngestFunction")["Policies"][0]["Statement"]
    allowed = {
        (str(a), str(s["Resource"]))
        for s in ingest
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert any(a == "s3:PutObject" and r.endswith("/raw/*") for a, r in allowed)
    assert any(a == "iot:DescribeThing" for a, _ in allowed)


def test_device_policy_publishes_only_as_itself() -> None:
    policy = LocalTemplate().iot_policy_document("chantier-device")
    publish = [s for s in policy["Statement"] if s["Action"] == "iot:Publish"]
    resources = [r for s in publish for r in s["Resource"]]
    assert resources and all("${iot:Connection.Thing.ThingName}" in r for r in resources)
    assert all("*" not in r.split(":topic/")[1] for r in resources)


def test_every_topic_rule_has_alarms_on_failed_actions_throttling_and_parse_errors() -> None:
    template = LocalTemplate()
    queries: list[str] = []
    watched: list[tuple[str, str]] = []
    for lid in template.of_type("AWS::CloudWatch::Alarm"):
        for query in template.properties(lid).get("Metrics", []):
            if "Expression" in query:
                queries.append(query["Expression"])
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "AWS/IoT":
                rule = next(d["Value"] for d in metric["Dimensions"] if d["Name"] == "RuleName")
                watched.append((metric["MetricName"], rule))
    rules = [spec.name for spec in template.topic_rules()]
    assert len(rules) >= 2
    for rule in rules:
        assert any(
            q.startswith('SELECT SUM(Failure) FROM SCHEMA("AWS/IoT", ActionType, RuleName)')
            and q.endswith(f"WHERE RuleName = '{rule}'")
            for q in queries
        ), rule
        assert ("RuleMessageThrottled", rule) in watched and ("ParseError", rule) in watched


def test_the_ingest_function_keeps_failed_events_in_an_alarmed_queue() -> None:
    template = LocalTemplate()
    queue = template.arn("IngestFailuresQueue")
    ingest = template.functions()[template.arn("IngestFunction")]
    assert ingest.asynchronous.on_failure == queue
    assert ingest.asynchronous.max_retries == 2
    assert ingest.asynchronous.max_event_age_s == 3600
    # The function's role may send to that queue and do nothing else with SQS.
    statements = [
        s
        for policy in template.properties("IngestFunction")["Policies"]
        for s in policy["Statement"]
        if any(str(a).startswith("sqs:") for a in _listed(s["Action"]))
    ]
    assert [(s["Action"], s["Resource"]) for s in statements] == [("sqs:SendMessage", queue)]
    watched = {
        (props["Namespace"], props["MetricName"], props["Dimensions"][0]["Value"])
        for props in (
            template.properties(lid) for lid in template.of_type("AWS::CloudWatch::Alarm")
        )
        if "MetricName" in props
    }
    name = template.physical_name("IngestFailuresQueue")
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", name) in watched
    function = template.physical_name("IngestFunction")
    assert ("AWS/Lambda", "DestinationDeliveryFailures", function) in watched


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]
