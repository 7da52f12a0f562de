"""The stack's description file: a stack that died is told apart from one that runs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from cloud.local.stackinfo import StackInfo, StackNotRunningError, StaleStackError


def _info(state: Path, pid: int) -> StackInfo:
    return StackInfo(
        state_dir=str(state),
        aws_endpoint="http://127.0.0.1:1",
        broker_host="127.0.0.1",
        broker_port=1,
        ca_file="ca.pem",
        raw_bucket="raw",
        alerts_table="alerts",
        readings_table="readings",
        runs_table="runs",
        rule_name="chantier_telemetry",
        pid=pid,
    )


def test_a_running_stack_is_loaded(tmp_path: Path) -> None:
    _info(tmp_path, os.getpid()).save()
    assert StackInfo.load(tmp_path).pid == os.getpid()


def test_a_file_left_by_a_dead_stack_is_stale(tmp_path: Path) -> None:
    gone = 2**22 + 1  # above Linux's largest process id: no process has it
    _info(tmp_path, gone).save()
    with pytest.raises(StaleStackError, match=f"process {gone} is gone") as caught:
        StackInfo.load(tmp_path)
    assert caught.value.info.pid == gone
    assert StackInfo.read(tmp_path).pid == gone


def test_missing_or_garbled_file_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(StackNotRunningError, match="stack up"):
        StackInfo.load(tmp_path)
    (tmp_path / "stack.json").write_text("{not json")
    with pytest.raises(StackNotRunningError, match="not JSON"):
        StackInfo.load(tmp_path)


def test_a_file_from_an_older_release_still_loads(tmp_path: Path) -> None:
    data = asdict(_info(tmp_path, 0))
    del data["pid"], data["moto_pid"], data["dynamodb_endpoint"], data["dynamodb_pid"]
    data["retired_field"] = 1
    (tmp_path / "stack.json").write_text(json.dumps(data))
    old = StackInfo.load(tmp_path)
    assert old.pid == 0
    # a stack of one moto server served DynamoDB from the same endpoint as the rest
    assert old.boto3_kwargs("dynamodb")["endpoint_url"] == "http://127.0.0.1:1"


def test_dynamodb_clients_go_to_dynamodb_s_own_server_the_others_to_the_shared_one(
    tmp_path: Path,
) -> None:
    info = replace(_info(tmp_path, 0), dynamodb_endpoint="http://127.0.0.1:2")
    info.save()
    loaded = StackInfo.load(tmp_path)
    assert loaded.boto3_kwargs("dynamodb")["endpoint_url"] == "http://127.0.0.1:2"
    for service in ("s3", "sqs", "sns", "iot"):
        assert loaded.boto3_kwargs(service)["endpoint_url"] == "http://127.0.0.1:1"
    assert (
        loaded.boto3_kwargs("s3")["region_name"] == loaded.boto3_kwargs("dynamodb")["region_name"]
    )


def test_a_table_served_elsewhere_is_reached_there_and_the_others_as_before(
    tmp_path: Path,
) -> None:
    info = replace(
        _info(tmp_path, 0),
        dynamodb_endpoint="http://127.0.0.1:2",
        table_endpoints={"runs": "http://127.0.0.1:1"},
    )
    info.save()
    loaded = StackInfo.load(tmp_path)
    assert loaded.table_endpoints == {"runs": "http://127.0.0.1:1"}
    assert loaded.boto3_kwargs("dynamodb", "runs")["endpoint_url"] == "http://127.0.0.1:1"
    assert loaded.boto3_kwargs("dynamodb", "alerts")["endpoint_url"] == "http://127.0.0.1:2"
    assert loaded.boto3_kwargs("dynamodb")["endpoint_url"] == "http://127.0.0.1:2"
