"""The local stack's moto launcher: same answers as moto, without its costs that grow with load."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from support.moto_tables import create_keyed_table

from cloud.local.moto_server import application, partition_queries, request_handler

REGION = "eu-west-3"


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_keyed_table(client, "alerts")
        resource = boto3.resource("dynamodb", region_name=REGION).Table("alerts")
        with resource.batch_writer() as writer:
            for thing in range(20):
                for n in range(12):
                    writer.put_item(
                        Item={"pk": f"THING#{thing}", "sk": f"S#{n:02d}", "g": f"G{n % 3}", "n": n}
                    )
        yield resource


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": "THING#3"}},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {":p": "THING#3", ":s": "S#1"},
    },
    {
        "KeyConditionExpression": "pk = :p AND sk < :s",
        "ExpressionAttributeValues": {":p": "THING#4", ":s": "S#05"},
        "ScanIndexForward": False,
    },
    {
        "KeyConditionExpression": "pk = :p",
        "FilterExpression": "n > :n",
        "ExpressionAttributeValues": {":p": "THING#5", ":n": 6},
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": "THING#none"}},
    {
        "IndexName": "gsi1",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": "G1"},
    },
]


def _pages(table: Any, request: dict[str, Any], limit: int | None) -> list[list[Any]]:
    pages, start = [], None
    while True:
        extra: dict[str, Any] = {"Limit": limit} if limit else {}
        if start:
            extra["ExclusiveStartKey"] = start
        response = table.query(**request, **extra)
        pages.append(response["Items"])
        start = response.get("LastEvaluatedKey")
        if not start:
            return pages


@pytest.mark.parametrize("request_", QUERIES)
@pytest.mark.parametrize("limit", [None, 5])
def test_partition_queries_answer_as_moto_does(
    table: Any, request_: dict[str, Any], limit: int | None
) -> None:
    expected = _pages(table, request_, limit)
    with partition_queries() as active:
        assert active
        assert _pages(table, request_, limit) == expected
    assert _pages(table, request_, limit) == expected  # and moto is itself again after


def test_partition_queries_read_one_partition_only(table: Any) -> None:
    from moto.dynamodb.models.table import Table

    original = Table.all_items
    listings: list[int] = []

    def counted(self: Any) -> Any:
        items = original(self)
        listings.append(len(items))
        return items

    Table.all_items = counted  # type: ignore[method-assign]
    try:
        with partition_queries():
            table.query(
                KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": "THING#1"}
            )
            assert listings == []  # a base-table Query never lists the whole table
            table.query(
                IndexName="gsi1",
                KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": "G1"},
            )
            assert listings == [240]  # an index Query still does, as moto does
    finally:
        Table.all_items = original  # type: ignore[method-assign]


def test_the_dispatcher_remembers_each_host_and_the_handler_is_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.server import DomainDispatcherApplication, MotoRequestHandler

    calls: list[str | None] = []
    parent = DomainDispatcherApplication.get_backend_for_host

    def counting(self: Any, host: str | None) -> Any:
        calls.append(host)
        return parent(self, host)

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counting)
    app = application()
    host = "dynamodb.eu-west-3.amazonaws.com"
    assert app.get_backend_for_host(host) == app.get_backend_for_host(host) == "dynamodb"
    assert calls == [host]
    handler = request_handler()
    assert issubclass(handler, MotoRequestHandler)
    assert handler.log_request(object.__new__(handler), 200, 10) is None  # writes nothing


def test_the_heap_is_frozen_periodically_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import threading

    from cloud.local.moto_server import freeze_heap_every

    calls: list[str] = []
    twice = threading.Event()

    def freeze() -> None:
        calls.append("freeze")
        if calls.count("freeze") >= 2:
            twice.set()

    monkeypatch.setattr(gc, "collect", lambda: calls.append("collect"))
    monkeypatch.setattr(gc, "freeze", freeze)
    stop = threading.Event()
    thread = freeze_heap_every(0.01, stop)
    assert twice.wait(5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert calls[:4] == ["collect", "freeze", "collect", "freeze"]
