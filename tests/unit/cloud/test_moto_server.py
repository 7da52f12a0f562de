"""The local stack's moto launcher: same answers as moto, without its costs that grow with load."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from support.moto_tables import create_keyed_table

from cloud.local.moto_server import (
    application,
    dynamodb_straight,
    partition_queries,
    request_handler,
)

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


class _Body:
    """The raw body botocore reads an answer from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _answered_by(app: Any) -> Any:
    """A DynamoDB client whose requests `app` answers in this process, through WSGI."""
    from urllib.parse import urlsplit

    from botocore.awsrequest import AWSResponse
    from werkzeug.test import Client

    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:5000",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    wsgi = Client(app)

    def send(request: Any, **_: Any) -> AWSResponse:
        headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        answer = wsgi.open(
            urlsplit(request.url).path or "/",
            method=request.method,
            headers=headers,
            data=request.body,
        )
        return AWSResponse(
            request.url, answer.status_code, dict(answer.headers), _Body(answer.get_data())
        )

    client.meta.events.register("before-send", send)
    return client


def _calls(client: Any, table: str) -> list[Any]:
    """The answers to a run of DynamoDB calls on `table`, errors included, minus metadata."""
    item = {"pk": {"S": "THING#1"}, "sk": {"S": "STATE#1"}, "version": {"N": "1"}}
    steps: list[Callable[[], Any]] = [
        lambda: create_keyed_table(client, table),
        lambda: client.put_item(TableName=table, Item=item),
        lambda: client.put_item(
            TableName=table,
            Item={**item, "version": {"N": "2"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda: client.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]}),
        lambda: client.update_item(
            TableName=table,
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET version = version + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        ),
        lambda: client.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "THING#1"}},
        ),
        lambda: client.get_item(TableName=f"{table}-missing", Key={"pk": item["pk"]}),
        lambda: client.delete_item(
            TableName=table, Key={"pk": item["pk"], "sk": item["sk"]}, ReturnValues="ALL_OLD"
        ),
        lambda: client.delete_table(TableName=table)["TableDescription"]["TableStatus"],
    ]
    answers: list[Any] = []
    for step in steps:
        try:
            answer = step()
        except ClientError as exc:
            answer = {"error": exc.response["Error"], "item": exc.response.get("Item")}
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
            answer.pop("TableDescription", None)  # names the table, and its creation time
        answers.append(json.loads(json.dumps(answer, default=str).replace(table, "TABLE")))
    return answers


def test_dynamodb_calls_skip_moto_s_flask_layers_and_get_the_same_answers() -> None:
    via_flask = _calls(_answered_by(application()), "via-flask")
    straight = _calls(_answered_by(dynamodb_straight(application())), "straight")
    assert straight == via_flask
    assert straight[2]["error"]["Code"] == "ConditionalCheckFailedException"
    assert straight[2]["item"]["version"] == {"N": "1"}
    assert straight[4]["Attributes"]["version"] == {"N": "2"}
    assert straight[6]["error"]["Code"] == "ResourceNotFoundException"


def test_other_requests_go_on_to_moto_s_dispatcher() -> None:
    from werkzeug.test import Client

    reached: list[str] = []

    def fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        reached.append(environ.get("HTTP_X_AMZ_TARGET", environ["REQUEST_METHOD"]))
        start_response("204 No Content", [])
        return [b""]

    wsgi = Client(dynamodb_straight(fallback))
    wsgi.get("/")
    wsgi.post("/", headers={"X-Amz-Target": "DynamoDBStreams_20120810.ListStreams"})
    wsgi.post("/queue", headers={"X-Amz-Target": "DynamoDB_20120810.ListTables"})
    assert reached == [
        "GET",
        "DynamoDBStreams_20120810.ListStreams",
        "DynamoDB_20120810.ListTables",
    ]
