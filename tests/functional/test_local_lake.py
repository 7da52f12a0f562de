"""The local Athena: moto mirrors raw objects to files, DuckDB queries them like the Glue table."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cloud.analytics.daily_sql import daily_query
from cloud.analytics.rollups import day_bounds
from cloud.local.lake import DuckDbLake
from cloud.local.moto_server import mirror_raw_objects

pytestmark = pytest.mark.functional
DAY = "2026-11-20"
START, END = day_bounds(DAY)


def batch(seq: int, temperature: float) -> bytes:
    readings = [{"sensorId": "engine", "ts": START + seq * 1000, "temperature": temperature}]
    return json.dumps(
        {
            "schema": 1,
            "thing": "exc-01",
            "site": "lyon",
            "equipment": "excavator",
            "boot": "b00t",
            "seq": seq,
            "runId": None,
            "sentAt": START + seq * 1000,
            "clockSynced": True,
            "readings": readings,
        }
    ).encode()


def test_the_current_version_of_each_raw_object_is_queryable(tmp_path: Path) -> None:
    key = f"raw/site=lyon/thing=exc-01/date={DAY}/b00t-{{}}.json"
    with mock_aws(), mirror_raw_objects(tmp_path):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="raw")
        s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
        lake = DuckDbLake(tmp_path, "raw")
        query = daily_query(DAY, START, END, {"lyon": ["exc-01"]})
        assert lake.rows(query) == []  # nothing landed yet: no rows, no error
        s3.put_object(Bucket="raw", Key=key.format(1), Body=batch(1, 70.0))
        s3.put_object(Bucket="raw", Key=key.format(1), Body=batch(1, 70.0))  # re-delivered
        s3.put_object(Bucket="raw", Key=key.format(2), Body=batch(2, 80.0))
        s3.put_object(Bucket="raw", Key="errors/reason=x/1.json", Body=b"{}")  # kept, not read
        (row,) = lake.rows(query)
        assert (row["thing"], row["readings"], row["temperature_max"]) == ("exc-01", 2, 80.0)
        s3.delete_object(Bucket="raw", Key=key.format(2))  # a delete marker: no current version
        (row,) = lake.rows(query)
        assert (row["readings"], row["temperature_max"]) == (1, 70.0)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == [
        "raw/errors/reason=x/1.json",
        f"raw/raw/site=lyon/thing=exc-01/date={DAY}/b00t-1.json",
    ]


def test_a_bucket_created_over_a_mirror_starts_with_its_objects(tmp_path: Path) -> None:
    raw = f"raw/site=lyon/thing=exc-01/date={DAY}/b00t-1.json"
    with mock_aws(), mirror_raw_objects(tmp_path):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="raw")
        s3.put_object(Bucket="raw", Key=raw, Body=batch(1, 70.0))
        s3.put_object(Bucket="raw", Key="errors/reason=x/1.json", Body=b"{}")
        s3.put_object(Bucket="raw", Key="curated/daily/x.json", Body=b"{}")  # not mirrored
    (tmp_path / "raw" / "raw" / f".{Path(raw).name}.123").write_bytes(b"cut short")
    with mock_aws(), mirror_raw_objects(tmp_path):  # a new, empty moto, as after a restart
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="raw")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="raw")["Contents"]]
        assert sorted(keys) == ["errors/reason=x/1.json", raw]
        assert s3.get_object(Bucket="raw", Key=raw)["Body"].read() == batch(1, 70.0)
        # Landing again after the restart: a new version of the same object.
        s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="raw", Key=raw, Body=batch(1, 70.0))
        versions = s3.list_object_versions(Bucket="raw", Prefix=raw)["Versions"]
        assert len(versions) == 2
