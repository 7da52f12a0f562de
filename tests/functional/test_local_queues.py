"""The local moto server keeps SQS messages as files until they are deleted, so a queue
created again after a restart starts with what it held."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cloud.local.moto_server import keep_queue_messages

pytestmark = pytest.mark.functional


def _bodies(sqs: object, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)  # type: ignore[attr-defined]
    return sorted(m["Body"] for m in messages.get("Messages", []))


def test_messages_outlive_the_server_until_deleted(tmp_path: Path) -> None:
    with mock_aws(), keep_queue_messages(tmp_path):
        sqs = boto3.client("sqs", region_name="eu-west-3")
        url = sqs.create_queue(QueueName="failures")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}')
        sqs.send_message(QueueUrl=url, MessageBody='{"n": 2}')
        (first,) = [
            m
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            if m["Body"] == '{"n": 1}'
        ]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert len(list((tmp_path / "failures").glob("*.json"))) == 1
    (tmp_path / "failures" / ".cut-short.json.123").write_text('{"n": 9}')  # a write cut short

    with mock_aws(), keep_queue_messages(tmp_path):  # a new, empty moto, as after a restart
        sqs = boto3.client("sqs", region_name="eu-west-3")
        url = sqs.create_queue(QueueName="failures")["QueueUrl"]
        assert _bodies(sqs, url) == ['{"n": 2}']
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        sqs.send_message(QueueUrl=url, MessageBody='{"n": 3}')
        sqs.purge_queue(QueueUrl=url)
    assert list((tmp_path / "failures").glob("*.json")) == []
