"""RunsTable adapter: run items plus one counter item kept exact by transactions.

Layout (one table):
- run: pk `RUN#<id>`, sk `RUN`; `listPk`="RUNS" and `listSk`=`<startedAt:013d>#<id>` feed the
  `byStart` index (newest first); `runningPk`="RUNNING" exists only while the run runs, so the
  sparse `running` index holds exactly the running runs, sorted by planned end.
- counter: pk `COUNTER`, sk `RUNNING`, attribute `running`.
- machines: pk `RUN#<id>`, sk `MACHINES`, attribute `things` (a string set): the things the run
  was started with, the only ones whose batches may name it (cloud/ingest/identity.py). Written
  before the run itself, so no machine of a run ever finds its run without its list.
Starting puts the run and increments the counter under `running < limit` in one transaction;
closing updates the run under `status = RUNNING` and decrements the counter in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import threading
from decimal import Decimal
from typing import Any

from cloud.api.cursor import decode_cursor, encode_cursor
from cloud.api.errors import RunConflictError, RunLimitError, RunNotFoundError
from cloud.api.runs import RUNNING, Page, Run, closed

COUNTER_KEY = {"pk": "COUNTER", "sk": "RUNNING"}
MACHINES_SK = "MACHINES"
LIST_KEY_NAMES = frozenset({"pk", "sk", "listPk", "listSk"})
RETENTION_S = 400 * 24 * 3600  # finished runs stay listable for over a year
_RUN_FIELDS = (
    "id",
    "status",
    "username",
    "startedAt",
    "endsAt",
    "duration",
    "interval",
    "devices",
    "params",
    "dashboardUrl",
    "finishedAt",
    "finishedBy",
    "note",
)

# moto (the local AWS APIs) neither isolates concurrent transactions nor rolls a failed one
# back without undoing others' writes; DynamoDB does both. Locally, and only there, writes to
# the runs table go one at a time so the emulator behaves like the real service.
_EMULATOR_LOCK = threading.Lock()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


def run_from_item(item: dict[str, Any]) -> Run:
    data = _plain({k: item[k] for k in _RUN_FIELDS if k in item})
    if "paramsJson" in item:
        data["params"] = json.loads(item["paramsJson"])
    data["interval"] = float(data["interval"])
    return Run(**data)


class DynamoRunRepository:
    """Runs in DynamoDB through the low-level client (transactions need it)."""

    def __init__(self, client: Any, table: Any, emulated: bool = False) -> None:
        self._client = client
        self._table = table
        self._name = table.name
        self._serial = _EMULATOR_LOCK if emulated else contextlib.nullcontext()
        from boto3.dynamodb.types import TypeSerializer

        self._ser = TypeSerializer()

    def _wire(self, value: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(_dynamo(v)) for k, v in value.items()}

    def create(self, run: Run, limit: int) -> None:
        fields = {k: v for k, v in run.to_dict().items() if v is not None}
        # Free-form params are kept as their JSON text: as a DynamoDB map, an empty key or a
        # number like 1e-200 (below DynamoDB's exponent range) would fail every later read.
        params = fields.pop("params", {})
        item = {
            **fields,
            "paramsJson": json.dumps(params, separators=(",", ":"), allow_nan=False),
            "pk": f"RUN#{run.id}",
            "sk": "RUN",
            "listPk": "RUNS",
            "listSk": f"{run.startedAt:013d}#{run.id}",
            "runningPk": RUNNING,
        }
        request = [
            {
                "Update": {
                    "TableName": self._name,
                    "Key": self._wire(COUNTER_KEY),
                    "UpdateExpression": "SET running = if_not_exists(running, :zero) + :one",
                    "ConditionExpression": "attribute_not_exists(running) OR running < :limit",
                    "ExpressionAttributeValues": self._wire(
                        {":zero": 0, ":one": 1, ":limit": limit}
                    ),
                }
            },
            {
                "Put": {
                    "TableName": self._name,
                    "Item": self._wire(item),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        try:
            with self._serial:
                self._client.transact_write_items(TransactItems=request)
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise RunLimitError(
                    f"{limit} runs are already running: wait for one to finish "
                    "(GET /api/runs/running lists them)"
                ) from None
            raise

    def set_members(self, run_id: str, things: frozenset[str], expires_at_s: int) -> None:
        if not things:
            return  # DynamoDB has no empty set; no item reads as no machines
        self._table.put_item(
            Item={
                "pk": f"RUN#{run_id}",
                "sk": MACHINES_SK,
                "things": set(things),
                "expiresAt": expires_at_s,
            }
        )

    def members(self, run_id: str) -> frozenset[str]:
        return DynamoRunMembers(self._table).members(run_id)

    def close(self, run_id: str, status: str, finished_at: int, by: str, note: str) -> Run:
        key = {"pk": f"RUN#{run_id}", "sk": "RUN"}
        request = [
            {
                "Update": {
                    "TableName": self._name,
                    "Key": self._wire(key),
                    "UpdateExpression": (
                        "SET #s = :status, finishedAt = :at, finishedBy = :by, note = :note, "
                        "expiresAt = :expires REMOVE runningPk"
                    ),
                    "ConditionExpression": "#s = :running",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": self._wire(
                        {
                            ":status": status,
                            ":at": finished_at,
                            ":by": by,
                            ":note": note,
                            ":running": RUNNING,
                            ":expires": finished_at // 1000 + RETENTION_S,
                        }
                    ),
                }
            },
            {
                "Update": {
                    "TableName": self._name,
                    "Key": self._wire(COUNTER_KEY),
                    "UpdateExpression": "SET running = running - :one",
                    "ConditionExpression": "running > :zero",
                    "ExpressionAttributeValues": self._wire({":one": 1, ":zero": 0}),
                }
            },
        ]
        try:
            with self._serial:
                self._client.transact_write_items(TransactItems=request)
        except self._client.exceptions.TransactionCanceledException:
            current = self.get(run_id)
            if current is None:
                raise RunNotFoundError(f"run {run_id!r} does not exist") from None
            raise RunConflictError(
                f"run {run_id} is already {current.status}: expected RUNNING"
            ) from None
        run = self.get(run_id)
        assert run is not None
        return closed(run, status, finished_at, by, note) if run.status == RUNNING else run

    def get(self, run_id: str) -> Run | None:
        item = self._table.get_item(
            Key={"pk": f"RUN#{run_id}", "sk": "RUN"}, ConsistentRead=True
        ).get("Item")
        return run_from_item(item) if item else None

    def running(self) -> list[Run]:
        runs: list[Run] = []
        request: dict[str, Any] = {
            "IndexName": "running",
            "KeyConditionExpression": "runningPk = :r",
            "ExpressionAttributeValues": {":r": RUNNING},
        }
        while True:
            response = self._table.query(**request)
            runs.extend(run_from_item(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return runs
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def running_count(self) -> int:
        item = self._table.get_item(Key=COUNTER_KEY, ConsistentRead=True).get("Item") or {}
        return int(item.get("running", 0))

    def page(self, limit: int, cursor: str | None) -> Page:
        request: dict[str, Any] = {
            "IndexName": "byStart",
            "KeyConditionExpression": "listPk = :p",
            "ExpressionAttributeValues": {":p": "RUNS"},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor, LIST_KEY_NAMES)
        if start is not None:
            request["ExclusiveStartKey"] = start
        response = self._table.query(**request)
        runs = [run_from_item(i) for i in response.get("Items", [])]
        return Page(runs, encode_cursor(response.get("LastEvaluatedKey")))


class DynamoRunMembers:
    """The machines of a run, as the ingest function reads them (one GetItem)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def members(self, run_id: str) -> frozenset[str]:
        item = self._table.get_item(Key={"pk": f"RUN#{run_id}", "sk": MACHINES_SK}).get("Item")
        return frozenset(str(thing) for thing in (item or {}).get("things", ()))
