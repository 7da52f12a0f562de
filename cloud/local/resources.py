"""Creates the template's buckets (with their notifications), tables, IoT policies, SNS topics
and SQS queues in the local AWS APIs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cloud.local.stackinfo import REGION
from cloud.local.template import LocalTemplate


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """Translate a CloudFormation lifecycle rule to the S3 API's shape."""
    out: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule.get("Status", "Enabled"),
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "Transitions" in rule:
        out["Transitions"] = [
            {"Days": t.get("TransitionInDays", 0), "StorageClass": t["StorageClass"]}
            for t in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": rule["ExpirationInDays"]}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        }
    return out


def create_bucket(s3: Any, name: str, props: dict[str, Any]) -> None:
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if "BucketEncryption" in props:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
            }
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    lifecycle = props.get("LifecycleConfiguration", {}).get("Rules")
    if lifecycle:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in lifecycle]}
        )


def _queue_notification(config: dict[str, Any]) -> dict[str, Any]:
    """Translate a CloudFormation QueueConfiguration to the S3 API's shape."""
    out: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
    rules = config.get("Filter", {}).get("S3Key", {}).get("Rules")
    if rules:
        out["Filter"] = {
            "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
        }
    return out


def notify_queues(s3: Any, sqs: Any, name: str, props: dict[str, Any]) -> int:
    """Set a bucket's event notifications to SQS queues (which must exist), then take S3's
    test message out of each queue, as an operator does after the first deploy; returns how
    many notifications were set."""
    configs = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    if not configs:
        return 0
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [_queue_notification(c) for c in configs]
        },
    )
    for arn in {str(c["Queue"]) for c in configs}:
        url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
        drop_s3_test_messages(sqs, url, name)
    return len(configs)


def drop_s3_test_messages(sqs: Any, queue_url: str, bucket: str) -> int:
    """Delete the `s3:TestEvent` messages of `bucket` from a queue, leaving every other
    message visible as it was; returns how many were deleted."""
    others: list[str] = []
    dropped = 0
    try:
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not messages:
                return dropped
            for message in messages:
                if _is_test_message(message["Body"], bucket):
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                    dropped += 1
                else:
                    others.append(message["ReceiptHandle"])
    finally:
        for receipt in others:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )


def _is_test_message(body: str, bucket: str) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(message, dict)
        and message.get("Event") == "s3:TestEvent"
        and message.get("Bucket") == bucket
    )


def create_table(dynamodb: Any, name: str, props: dict[str, Any]) -> None:
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in props:
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        request["SSESpecification"] = {"Enabled": True}
    dynamodb.create_table(**request)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        _setting(
            dynamodb.update_time_to_live,
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        _setting(
            dynamodb.update_continuous_backups,
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )


def _setting(call: Any, **request: Any) -> None:
    """A table setting that only matters in AWS; dynalite has neither TTL nor backups."""
    from botocore.exceptions import ClientError

    try:
        call(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "UnknownOperationException":
            raise


def create_topic(sns: Any, name: str, props: dict[str, Any]) -> str:
    """Create an SNS topic with the template's attributes; returns its ARN."""
    attributes = {key: str(props[key]) for key in ("DisplayName", "KmsMasterKeyId") if key in props}
    response = sns.create_topic(Name=name, Attributes=attributes)
    return str(response["TopicArn"])


def create_queue(sqs: Any, name: str, props: dict[str, Any]) -> str:
    """Create an SQS queue with the template's attributes; returns its URL."""
    attributes = {
        key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        for key in ("MessageRetentionPeriod", "VisibilityTimeout", "SqsManagedSseEnabled")
        if key in props
    }
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def create_from_template(
    template: LocalTemplate,
    clients: dict[str, Any],
    table_clients: Mapping[str, Any | None] | None = None,
) -> dict[str, str]:
    """Create every supported resource whose service has a client in `clients` (a restarted
    server gets back its own). A table named in `table_clients` is created with the client
    given there instead (None: on a server not set up by this call). Returns logical id →
    physical name."""
    elsewhere = table_clients or {}
    created: dict[str, str] = {}
    for logical_id in template.of_type("AWS::S3::Bucket") if "s3" in clients else ():
        name = template.physical_name(logical_id)
        create_bucket(clients["s3"], name, template.properties(logical_id))
        created[logical_id] = name
    for logical_id in template.of_type("AWS::DynamoDB::Table"):
        name = template.physical_name(logical_id)
        dynamodb = elsewhere[name] if name in elsewhere else clients.get("dynamodb")
        if dynamodb is not None:
            create_table(dynamodb, name, template.properties(logical_id))
            created[logical_id] = name
    for logical_id in template.of_type("AWS::IoT::Policy") if "iot" in clients else ():
        props = template.properties(logical_id)
        clients["iot"].create_policy(
            policyName=props["PolicyName"], policyDocument=json.dumps(props["PolicyDocument"])
        )
        created[logical_id] = props["PolicyName"]
    for logical_id in template.of_type("AWS::SNS::Topic") if "sns" in clients else ():
        created[logical_id] = create_topic(
            clients["sns"], template.physical_name(logical_id), template.properties(logical_id)
        )
    for logical_id in template.of_type("AWS::SQS::Queue") if "sqs" in clients else ():
        name = template.physical_name(logical_id)
        create_queue(clients["sqs"], name, template.properties(logical_id))
        created[logical_id] = name
    # Once their queues exist: a bucket that notifies a queue (a rule action's failure).
    for logical_id in template.of_type("AWS::S3::Bucket") if {"s3", "sqs"} <= set(clients) else ():
        name = template.physical_name(logical_id)
        notify_queues(clients["s3"], clients["sqs"], name, template.properties(logical_id))
    return created
