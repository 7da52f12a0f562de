"""The thing registry (IoT Core's, or moto's on the local stack) as the ingest function reads it."""

from __future__ import annotations

from typing import Any

from cloud.ingest.identity import ThingInfo

_NOT_FOUND = ("ResourceNotFoundException", "NotFoundException")


class IotThingDirectory:
    """`DescribeThing` of one thing: its site and equipment attributes, None if unknown."""

    def __init__(self, iot_client: Any) -> None:
        self._iot = iot_client

    def lookup(self, thing: str) -> ThingInfo | None:
        try:
            described = self._iot.describe_thing(thingName=thing)
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
            if code in _NOT_FOUND:
                return None
            raise
        attributes = described.get("attributes") or {}
        return ThingInfo(
            thing, str(attributes.get("site", "")), str(attributes.get("equipment", ""))
        )
