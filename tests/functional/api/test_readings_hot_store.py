"""Readings through the hot store on moto: one item per batch, pages that may end inside one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cloud.api.readings_dynamodb import DynamoReadingsQuery
from cloud.api.sensors import ReadingFilter
from cloud.dashboard.dynamodb import DynamoDashboardReader
from cloud.ingest.readings_store import ReadingsStore
from cloud.local.resources import create_table
from cloud.local.template import LocalTemplate

pytestmark = pytest.mark.functional

T0 = 1_763_733_600_000
MINUTE = 60_000


@pytest.fixture(scope="module")
def resource() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3.resource(
            "dynamodb",
            endpoint_url=f"http://{host}:{port}",
            region_name="eu-west-3",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
    finally:
        server.stop()


@pytest.fixture
def table(resource: Any) -> Any:
    """A fresh table exactly as the template defines ReadingsTable."""
    name = f"readings-{uuid.uuid4().hex[:8]}"
    create_table(resource.meta.client, name, LocalTemplate().properties("ReadingsTable"))
    return resource.Table(name)


def batch(thing: str, seq: int, start_ms: int, count: int, run_id: str | None = None) -> dict:
    readings = []
    for i in range(count):
        readings.append(
            {
                "sensorId": ("engine", "ambient")[i % 2],
                "ts": start_ms + (i // 2) * 10_000,
                "temperature": 50.0 + seq + i / 100,
            }
        )
    return {
        "thing": thing,
        "site": "lyon",
        "boot": "0badcafe",
        "seq": seq,
        "runId": run_id,
        "readings": readings,
    }


def pages(query: DynamoReadingsQuery, where: ReadingFilter, limit: int) -> list[list[dict]]:
    out, cursor = [], None
    for _ in range(100):
        items, cursor = query.query(where, limit, cursor)
        out.append(items)
        if cursor is None:
            return out
    raise AssertionError("pagination did not end")


def test_each_batch_is_one_item_and_re_delivery_overwrites_it(table: Any) -> None:
    store = ReadingsStore(table)
    first = batch("exc-01", 1, T0, 180)
    assert store.put_batch(first) == 180
    assert store.put_batch(first) == 180  # re-delivered
    assert table.scan()["Count"] == 1
    where = ReadingFilter(thing="exc-01", sensor_id="engine")
    (items,) = pages(DynamoReadingsQuery(table), where, 1000)
    assert len(items) == 90
    assert items[0] == {
        "thing": "exc-01",
        "site": "lyon",
        "sensorId": "engine",
        "ts": T0,
        "temperature": 51.0,
    }


def test_pages_end_inside_batches_and_lose_or_repeat_nothing(table: Any) -> None:
    store = ReadingsStore(table)
    for seq in range(1, 6):
        store.put_batch(batch("exc-01", seq, T0 + seq * 15 * MINUTE, 40, run_id="r1"))
    store.put_batch(batch("crane-01", 1, T0 + 20 * MINUTE, 40, run_id="r1"))
    query = DynamoReadingsQuery(table)
    by_thing = ReadingFilter(thing="exc-01", sensor_id="ambient")
    got = [r for page in pages(query, by_thing, 7) for r in page]
    assert len(got) == 100 and len({(r["sensorId"], r["ts"]) for r in got}) == 100
    assert [r["ts"] for r in got] == sorted(r["ts"] for r in got)
    by_run = ReadingFilter(run_id="r1")
    got = [r for page in pages(query, by_run, 33) for r in page]
    assert len(got) == 240 and all(r["runId"] == "r1" for r in got)
    by_run_and_thing = ReadingFilter(run_id="r1", thing="crane-01", sensor_id="engine")
    got = [r for page in pages(query, by_run_and_thing, 1000) for r in page]
    assert len(got) == 20 and {r["thing"] for r in got} == {"crane-01"}


def test_a_time_range_finds_readings_of_batches_that_started_before_it(table: Any) -> None:
    store = ReadingsStore(table)
    store.put_batch(batch("exc-01", 1, T0, 180))  # readings T0 .. T0 + 895 s
    query = DynamoReadingsQuery(table)
    where = ReadingFilter(
        thing="exc-01", sensor_id="engine", start_ms=T0 + 10 * MINUTE, end_ms=T0 + 11 * MINUTE
    )
    (items,) = pages(query, where, 1000)
    assert [r["ts"] for r in items] == [T0 + 10 * MINUTE + s * 10_000 for s in range(7)]
    later = ReadingFilter(thing="exc-01", sensor_id="engine", start_ms=T0 + 16 * MINUTE)
    assert pages(query, later, 1000) == [[]]


def test_the_dashboard_finds_the_newest_reading_among_overlapping_batches(table: Any) -> None:
    store = ReadingsStore(table)
    store.put_batch(batch("exc-01", 1, T0, 180))  # a 15-minute batch, newest at T0 + 890 s
    urgent = {
        "thing": "exc-01",
        "site": "lyon",
        "boot": "0badcafe",
        "seq": 2,
        "runId": None,
        "readings": [{"sensorId": "engine", "ts": T0 + 5 * MINUTE, "temperature": 99.0}],
    }
    store.put_batch(urgent)  # sent alone, at once: it started later but holds an older reading
    reader = DynamoDashboardReader(alerts_table=None, readings_table=table)
    latest = reader.latest("exc-01", "engine")
    assert latest is not None and latest["ts"] == T0 + 890_000
    series = reader.series("exc-01", "engine", T0 + 4 * MINUTE, T0 + 6 * MINUTE, 3)
    assert [r["ts"] for r in series] == [T0 + 340_000, T0 + 350_000, T0 + 360_000]
    assert reader.latest("exc-01", "no-such-sensor") is None
