"""The template is lint-clean and holds what the design requires of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.api import ManualArgs, lint_file

from cloud.local.stackinfo import ACCOUNT_ID
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


def _alarms(template: LocalTemplate) -> list[dict[str, Any]]:
    return [template.properties(lid) for lid in template.of_type("AWS::CloudWatch::Alarm")]


def test_alarms_read_four_listed_metrics_and_no_metrics_insights_query() -> None:
    """Idle at most $0.50 a month for certain (docs/cost.md): $0.10 per listed metric, and
    no query alarm, whose bill depends on the metrics it happens to analyze."""
    alarms = _alarms(LocalTemplate())
    assert [props for props in alarms if "Metrics" in props or "MetricName" not in props] == []
    assert len(alarms) == 4


def test_a_failed_rule_action_reaches_the_alarmed_failures_queue() -> None:
    template = LocalTemplate()
    prefix = "errors/reason=rule-action/"
    for rule in template.topic_rules():
        ((kind, params),) = rule.error_action.items()
        assert kind == "S3" and params["BucketName"] == template.physical_name("RawBucket")
        assert str(params["Key"]).startswith(prefix), rule.name
    (notification,) = template.properties("RawBucket")["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    assert notification["Queue"] == template.arn("FailuresQueue")
    assert notification["Event"] == "s3:ObjectCreated:*"
    # Only the rules' failures: the function's refusals under errors/ are not replayed.
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": prefix}]
    # S3 may send there (checked when the bucket's notification is set: the bucket waits).
    assert template.resources["RawBucket"]["DependsOn"] == "FailuresQueuePolicy"
    statements = template.properties("FailuresQueuePolicy")["PolicyDocument"]["Statement"]
    (from_s3,) = [s for s in statements if s.get("Principal") == {"Service": "s3.amazonaws.com"}]
    assert (from_s3["Effect"], from_s3["Action"]) == ("Allow", "sqs:SendMessage")
    assert from_s3["Resource"] == template.arn("FailuresQueue")
    assert from_s3["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    watched = {(p["Namespace"], p["MetricName"]) for p in _alarms(template)}
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in watched
    assert ("AWS/IoT", "Failure") not in watched


def test_rules_throttling_is_alarmed_on_the_telemetry_rule() -> None:
    template = LocalTemplate()
    throttled = [
        props
        for props in _alarms(template)
        if (props["Namespace"], props["MetricName"]) == ("AWS/IoT", "RuleMessageThrottled")
    ]
    assert [p["Dimensions"] for p in throttled] == [
        [{"Name": "RuleName", "Value": template.physical_name("TelemetryRule")}]
    ]


def test_every_asynchronous_function_keeps_failed_events_in_one_alarmed_queue() -> None:
    template = LocalTemplate()
    queue = template.arn("FailuresQueue")
    functions = template.functions()
    ingest = functions[template.arn("IngestFunction")]
    assert ingest.asynchronous.max_retries == 2
    # A throttled event reaches the alarmed queue within ten minutes: no throttles alarm.
    assert ingest.asynchronous.max_event_age_s == 600
    scheduled = {spec.function_arn for spec in template.schedules()}
    assert len(scheduled) == 3
    for arn in {template.arn("IngestFunction")} | scheduled:
        assert functions[arn].asynchronous.on_failure == queue, arn
        # The function's role may send to that queue and do nothing else with SQS.
        owner = next(
            lid for lid in template.of_type("AWS::Serverless::Function") if template.arn(lid) == arn
        )
        statements = [
            s
            for policy in template.properties(owner)["Policies"]
            for s in policy["Statement"]
            if any(str(a).startswith("sqs:") for a in _listed(s["Action"]))
        ]
        assert [(s["Action"], s["Resource"]) for s in statements] == [("sqs:SendMessage", queue)], (
            owner
        )
    watched = {
        (props["Namespace"], props["MetricName"], props["Dimensions"][0]["Value"])
        for props in _alarms(template)
        if "MetricName" in props
    }
    name = template.physical_name("FailuresQueue")
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", name) in watched
    function = template.physical_name("IngestFunction")
    assert ("AWS/Lambda", "DestinationDeliveryFailures", function) in watched
    # The HTTP API's function (synchronous): through the API's 5xx count.
    assert ("AWS/ApiGateway", "5xx", template.physical_name("HttpApi")) in watched


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def test_each_function_carries_its_timeout_its_own_or_the_globals_one() -> None:
    template = LocalTemplate()
    functions = template.functions()
    default = template.document["Globals"]["Function"]["Timeout"]
    for logical_id in template.of_type("AWS::Serverless::Function"):
        own = template.properties(logical_id).get("Timeout", default)
        assert functions[template.arn(logical_id)].timeout_s == float(own), logical_id
    # The local workers stop an invocation at this limit, as Lambda does.
    assert functions[template.arn("IngestFunction")].timeout_s == 30.0
    assert functions[template.arn("RollupsFunction")].timeout_s == 900.0
