"""The ingest service on in-memory collaborators: raw bucket, error archive, stores, registry."""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aws_lambda_powertools import Logger, Metrics

from chantier.alerts.rules import load_rules
from cloud.alerts.engine import AlertEngine
from cloud.alerts.store import InMemoryAlertStore
from cloud.ingest.error_archive import ErrorArchive
from cloud.ingest.identity import ThingInfo
from cloud.ingest.raw_archive import S3RawArchive
from cloud.ingest.readings_store import ReadingsStore
from cloud.ingest.service import IngestService

_KITS = itertools.count()


class PreconditionFailedError(Exception):
    """What botocore raises for S3's 412, as far as the archive looks at it."""

    response: ClassVar[dict[str, Any]] = {"Error": {"Code": "PreconditionFailed"}}


class MemoryS3:
    """put_object (with IfNoneMatch) and get_object on a dict, versions counted."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}

    def put_object(self, *, Key: str, Body: bytes, IfNoneMatch: str = "", **_: Any) -> Any:  # noqa: N803 - boto3's names
        if IfNoneMatch == "*" and Key in self.objects:
            raise PreconditionFailedError(Key)
        self.objects[Key] = Body
        self.versions[Key] = self.versions.get(Key, 0) + 1
        return {"VersionId": str(self.versions[Key])}

    def get_object(self, *, Key: str, **_: Any) -> Any:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key]), "VersionId": str(self.versions[Key])}

    def under(self, prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in self.objects.items() if k.startswith(prefix)}

    def errors(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.under("errors/").values()]


class MemoryTable:
    """put_item / batch_writer of a DynamoDB table resource, items by (pk, sk)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def put_item(self, Item: dict[str, Any], **_: Any) -> None:  # noqa: N803
        self.items[(Item["pk"], Item["sk"])] = Item

    def batch_writer(self, **_: Any) -> Any:
        table = self

        class Writer:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: Any) -> None:
                return None

            def put_item(self, Item: dict[str, Any]) -> None:  # noqa: N803
                table.put_item(Item)

        return Writer()


class Registry:
    """ThingDirectory over a dict; counts lookups."""

    def __init__(self, *things: ThingInfo) -> None:
        self.things = {t.thing: t for t in things}
        self.lookups = 0

    def lookup(self, thing: str) -> ThingInfo | None:
        self.lookups += 1
        return self.things.get(thing)


class Runs:
    """RunMembers over a dict."""

    def __init__(self, members: dict[str, set[str]] | None = None) -> None:
        self.machines = {run: frozenset(things) for run, things in (members or {}).items()}

    def members(self, run_id: str) -> frozenset[str]:
        return self.machines.get(run_id, frozenset())


class HealthMemory:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def put(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


@dataclass
class IngestKit:
    """A service and everything it wrote to."""

    service: IngestService
    s3: MemoryS3
    readings: MemoryTable
    alerts: InMemoryAlertStore
    health: HealthMemory
    registry: Registry
    runs: Runs
    clock: dict[str, int] = field(default_factory=dict)


def make_ingest(
    *things: ThingInfo, runs: dict[str, set[str]] | None = None, now_ms: int = 0
) -> IngestKit:
    s3, table, store, health = MemoryS3(), MemoryTable(), InMemoryAlertStore(), HealthMemory()
    registry, members = Registry(*things), Runs(runs)
    clock = {"now": now_ms}
    service = IngestService(
        readings=ReadingsStore(table),
        errors=ErrorArchive(s3, "raw-bucket"),
        raw=S3RawArchive(s3, "raw-bucket"),
        alerts=AlertEngine(load_rules(), store, clock=lambda: clock["now"], seen_refresh_ms=0),
        # A service name of its own: Powertools shares one formatter per name in a process.
        logger=Logger(
            service=f"ingest-{next(_KITS)}", logger_handler=logging.StreamHandler(io.StringIO())
        ),
        metrics=Metrics(namespace="Chantier"),
        health=health,
        things=registry,
        runs=members,
        clock=lambda: clock["now"],
    )
    return IngestKit(service, s3, table, store, health, registry, members, clock)


def rule_event(site: str, thing: str, kind: str, payload: bytes, received_ms: int) -> dict:
    """What the topic rule hands the function for a message published on the thing's topic."""
    return {
        "payload": base64.b64encode(payload).decode(),
        "site": site,
        "thing": thing,
        "kind": kind,
        "receivedAt": received_ms,
    }
