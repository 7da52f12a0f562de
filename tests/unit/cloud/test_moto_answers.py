"""The moto server's direct DynamoDB answers: the same JSON as moto's own serializer writes."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from unittest import mock

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws
from support.moto_tables import create_keyed_table

from cloud.local.moto_answers import direct_dynamodb_answers

REGION = "eu-west-3"
TABLE = "alerts"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _state(thing: int, n: int) -> dict[str, Any]:
    """An item with every kind of attribute value, nested ones too."""
    return {
        **_key(f"THING#{thing}", f"STATE#{n:02d}"),
        "g": {"S": f"OPEN#{n % 3}"},
        "version": {"N": str(n)},
        "value": {"N": "78.41"},
        "state": {"S": "ACTIVE" if n % 2 else "NORMAL"},
        "acked": {"BOOL": n % 2 == 0},
        "note": {"NULL": True},
        "sensors": {"SS": ["engine", "cabin"]},
        "levels": {"NS": ["72", "82.5"]},
        "memory": {"M": {"window": {"L": [{"N": "1"}, {"S": "x"}, {"B": b"\x00\xff"}]}}},
        **(
            {"raw": {"B": bytes([n, 0, 255])}, "chunks": {"BS": [b"a", b"b\x00"]}} if n == 5 else {}
        ),
    }


def _filled(client: Any) -> None:
    for thing in range(3):
        for n in range(8):
            client.put_item(TableName=TABLE, Item=_state(thing, n))


# Every request the stack sends on its hot path, and the variants of each a caller may use.
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "THING#1"}},
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "THING#1"}},
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": "THING#2"}, ":s": {"S": "STATE#0"}},
            "ScanIndexForward": False,
            "Limit": 3,
            "ReturnConsumedCapacity": "INDEXES",
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "THING#1"}},
            "Limit": 3,
            "ExclusiveStartKey": _key("THING#1", "STATE#02"),
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "FilterExpression": "version > :v",
            "ExpressionAttributeValues": {":p": {"S": "THING#0"}, ":v": {"N": "3"}},
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ProjectionExpression": "sk, #s, memory.window[2]",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":p": {"S": "THING#0"}},
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "Select": "COUNT",
            "ExpressionAttributeValues": {":p": {"S": "THING#0"}},
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "THING#9"}},
        },
    ),
    (
        "query",
        {
            "IndexName": "gsi1",
            "KeyConditionExpression": "g = :g",
            "ExpressionAttributeValues": {":g": {"S": "OPEN#1"}},
            "Limit": 4,
        },
    ),
    (
        "query",
        {"KeyConditionExpression": "nope = :p", "ExpressionAttributeValues": {":p": {"S": "x"}}},
    ),
    ("get_item", {"Key": _key("THING#1", "STATE#05"), "ConsistentRead": True}),
    ("get_item", {"Key": _key("THING#1", "STATE#05"), "ReturnConsumedCapacity": "TOTAL"}),
    (
        "get_item",
        {
            "Key": _key("THING#1", "STATE#05"),
            "ProjectionExpression": "#v, #r",
            "ExpressionAttributeNames": {"#v": "version", "#r": "raw"},
        },
    ),
    ("get_item", {"Key": _key("THING#1", "STATE#77")}),
    ("scan", {"FilterExpression": "version = :v", "ExpressionAttributeValues": {":v": {"N": "5"}}}),
    ("scan", {"Limit": 5, "ExclusiveStartKey": _key("THING#2", "STATE#03")}),
    ("put_item", {"Item": _state(4, 1)}),
    (
        "put_item",
        {"Item": _state(4, 1), "ReturnValues": "ALL_OLD", "ReturnConsumedCapacity": "TOTAL"},
    ),
    ("put_item", {"Item": _state(4, 5), "ReturnValues": "ALL_OLD"}),
    ("put_item", {"Item": _state(4, 5), "ReturnValues": "ALL_OLD"}),
    (
        "put_item",
        {
            "Item": _state(4, 1),
            "ConditionExpression": "attribute_not_exists(sk) OR version < :v",
            "ExpressionAttributeValues": {":v": {"N": "0"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "put_item",
        {
            "Item": _state(4, 2),
            "ConditionExpression": "attribute_not_exists(sk)",
        },
    ),
    *[
        (
            "update_item",
            {
                "Key": _key("THING#0", "STATE#03"),
                "UpdateExpression": "SET version = version + :one, #s = :s REMOVE note",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":s": {"S": f"S{returns}"}},
                "ReturnValues": returns,
            },
        )
        for returns in ("NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW")
    ],
    (
        "update_item",
        {
            "Key": _key("THING#0", "STATE#05"),
            "UpdateExpression": "SET #s = :s",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":s": {"S": "CLEARED"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    (
        "update_item",
        {
            "Key": _key("THING#0", "STATE#03"),
            "UpdateExpression": "SET #s = :s",
            "ConditionExpression": "version = :old",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":s": {"S": "LATE"}, ":old": {"N": "1"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "update_item",
        {
            "Key": _key("THING#7", "STATE#00"),
            "UpdateExpression": "ADD hits :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    ("delete_item", {"Key": _key("THING#2", "STATE#01"), "ReturnValues": "ALL_OLD"}),
    ("delete_item", {"Key": _key("THING#2", "STATE#01"), "ReturnValues": "ALL_OLD"}),
    (
        "delete_item",
        {
            "Key": _key("THING#2", "STATE#02"),
            "ConditionExpression": "version = :v",
            "ExpressionAttributeValues": {":v": {"N": "9"}},
        },
    ),
    (
        "batch_write_item",
        {"RequestItems": {TABLE: [{"PutRequest": {"Item": _state(5, n)}} for n in range(4)]}},
    ),
    (
        "transact_write_items",
        {
            "TransactItems": [
                {"Put": {"TableName": TABLE, "Item": _state(6, 0)}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("THING#5", "STATE#00"),
                        "UpdateExpression": "SET version = :v",
                        "ExpressionAttributeValues": {":v": {"N": "40"}},
                    }
                },
            ]
        },
    ),
    (
        "query",
        {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "THING#5"}},
        },
    ),
    ("scan", {}),
]


def _answers(direct: bool) -> tuple[list[tuple[str, int, str]], list[str]]:
    """Each request's operation, HTTP status and answer (JSON with its keys sorted, so 1 and
    1.0 still differ), on a fresh table; and the operations moto's serializer wrote."""
    from moto.core.serialize import JSONSerializer

    bodies: list[tuple[int, bytes]] = []
    serialized: list[str] = []
    serialize = JSONSerializer.serialize

    def counted(self: Any, result: Any) -> Any:
        serialized.append(str(self.operation_model.name))
        return serialize(self, result)

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        bodies.append((response_dict["status_code"], response_dict["body"]))

    with mock_aws(), contextlib.ExitStack() as patches:
        client = boto3.client("dynamodb", region_name=REGION)
        create_keyed_table(client, TABLE)
        _filled(client)
        client.meta.events.register("before-parse.dynamodb.*", keep)
        if direct:
            assert patches.enter_context(direct_dynamodb_answers())
        patches.enter_context(mock.patch.object(JSONSerializer, "serialize", counted))
        for operation, request in REQUESTS:
            params = (
                request
                if operation.startswith(("batch", "transact"))
                else {"TableName": TABLE, **request}
            )
            with contextlib.suppress(ClientError):  # a failure's answer is compared too
                getattr(client, operation)(**params)
    assert len(bodies) == len(REQUESTS)
    answers = [
        (operation, status, json.dumps(json.loads(body), sort_keys=True))
        for (operation, _), (status, body) in zip(REQUESTS, bodies, strict=True)
    ]
    return answers, serialized


def test_direct_answers_are_moto_answers() -> None:
    expected, _ = _answers(direct=False)
    found, _ = _answers(direct=True)
    for want, got in zip(expected, found, strict=True):
        assert got == want
    assert {status for _, status, _ in expected} == {200, 400}  # failures are compared too
    assert any('"raw": {"B"' in answer for operation, _, answer in expected if operation == "query")


def test_item_answers_skip_moto_serializer_unless_they_hold_what_it_alone_writes() -> None:
    _, by_moto = _answers(direct=False)
    _, still_by_moto = _answers(direct=True)
    assert {"Query", "GetItem", "Scan", "PutItem", "UpdateItem", "DeleteItem"} <= set(by_moto)
    # Left to moto: ReturnValues holding a binary attribute (the put over, and the update of,
    # an item that has one), and the writes whose answers are not items. Failures never
    # reach this serializer.
    assert still_by_moto == ["PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"]
