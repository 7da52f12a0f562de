"""The local stack's two AWS servers: DynamoDB in its own (dynalite once installed), every other
AWS API and the tables that need transactions in moto; each client goes where the stack's
description says, and a killed server comes back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from support.alert_stack import wait_for

from chantier.cli import main
from cloud.local.stack import LocalStack
from cloud.local.stackinfo import StackInfo, pid_alive

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]


def _described(stack: LocalStack) -> StackInfo:
    return StackInfo.load(stack.state_dir)


def _tables(endpoint: str, info: StackInfo) -> list[str]:
    kwargs = {**info.boto3_kwargs("dynamodb"), "endpoint_url": endpoint}
    return list(boto3.client("dynamodb", **kwargs).list_tables()["TableNames"])


def _buckets(endpoint: str, info: StackInfo) -> list[str]:
    kwargs = {**info.boto3_kwargs("s3"), "endpoint_url": endpoint}
    return [b["Name"] for b in boto3.client("s3", **kwargs).list_buckets()["Buckets"]]


def test_dynamodb_and_s3_are_served_from_the_endpoints_the_description_names(
    stack: LocalStack,
) -> None:
    info = _described(stack)
    assert info.dynamodb_endpoint and info.dynamodb_endpoint != info.aws_endpoint
    assert info.dynamodb_pid != info.moto_pid and pid_alive(info.dynamodb_pid)
    assert info.alerts_table in _tables(info.dynamodb_endpoint, info)
    # Nothing of DynamoDB's went astray: only the tables the description sends there.
    assert sorted(_tables(info.aws_endpoint, info)) == sorted(info.table_endpoints)
    assert info.table_endpoints == {info.runs_table: info.aws_endpoint}  # dynalite is installed
    assert info.runs_table not in _tables(info.dynamodb_endpoint, info)
    runs = boto3.client("dynamodb", **info.boto3_kwargs("dynamodb", info.runs_table))
    assert runs.describe_table(TableName=info.runs_table)["Table"]["TableStatus"] == "ACTIVE"
    assert info.raw_bucket in _buckets(info.aws_endpoint, info)
    with pytest.raises(ClientError):  # dynalite serves DynamoDB alone
        _buckets(info.dynamodb_endpoint, info)
    # the parts the stack hands out use them
    assert stack.client("dynamodb").meta.endpoint_url == info.dynamodb_endpoint
    assert stack.resource("dynamodb").meta.client.meta.endpoint_url == info.dynamodb_endpoint
    assert stack.client("sqs").meta.endpoint_url == info.aws_endpoint


def test_the_commands_find_both_servers(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    info = _described(stack)
    assert main(["stack", "status", "--state-dir", str(stack.state_dir)]) == 0
    status = capsys.readouterr().out
    assert f"AWS APIs       {info.aws_endpoint}" in status
    assert f"DynamoDB       {info.dynamodb_endpoint}" in status
    assert "failed events  none kept" in status  # SQS, on the other server
    monkeypatch.setenv("CHANTIER_STATE_DIR", str(stack.state_dir))
    assert main(["alerts", "list"]) == 0  # DynamoDB


def _restarted(stack: LocalStack, old_pid: int, field: str) -> StackInfo:
    os.kill(old_pid, signal.SIGKILL)
    assert wait_for(
        lambda: getattr(_described(stack), field) not in (0, old_pid), 30, poll_s=0.1
    ), f"the moto server {old_pid} was not restarted"
    return _described(stack)


def test_a_killed_moto_server_comes_back_with_the_template_s_resources(
    stack: LocalStack,
) -> None:
    info = _described(stack)
    s3 = stack.client("s3")
    key = "raw/site=s/thing=t/date=2026-11-26/b-1.json"
    s3.put_object(Bucket=info.raw_bucket, Key=key, Body=b'{"seq": 1}')

    again = _restarted(stack, info.dynamodb_pid, "dynamodb_pid")
    assert again.dynamodb_endpoint == info.dynamodb_endpoint  # clients need no new address
    assert info.alerts_table in _tables(again.dynamodb_endpoint, again)

    assert info.runs_table not in _tables(again.dynamodb_endpoint, again)

    again = _restarted(stack, info.moto_pid, "moto_pid")
    assert again.aws_endpoint == info.aws_endpoint
    assert _tables(again.aws_endpoint, again) == [info.runs_table]
    assert s3.get_object(Bucket=info.raw_bucket, Key=key)["Body"].read() == b'{"seq": 1}'
    assert stack.client("sqs").get_queue_url(QueueName=info.failures_queue)["QueueUrl"]
    assert stack.supervisor is not None
    restarts = stack.supervisor.restarts()
    assert restarts["moto server"] == 1 and restarts["DynamoDB server (dynalite)"] == 1
    assert (Path(stack.state_dir) / "logs" / "dynalite.log").exists()


def test_without_dynalite_moto_serves_dynamodb_and_every_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("cloud.local.stack.dynalite_available", lambda: False)
    with LocalStack(tmp_path / "stack") as fallback:
        info = _described(fallback)
        assert info.table_endpoints == {}
        tables = _tables(info.dynamodb_endpoint, info)
        assert info.runs_table in tables and info.alerts_table in tables
        assert _tables(info.aws_endpoint, info) == []
        assert _buckets(info.dynamodb_endpoint, info) == []  # a moto server of its own
        assert (tmp_path / "stack" / "logs" / "moto-dynamodb.log").exists()
    assert "dynalite is not installed (run `make install`)" in caplog.text
