"""DynamoDB answers of the local stack's moto server, written as JSON straight from its items.

moto 5 turns each answer into plain dictionaries (``dynamo_to_dict``) and then walks the
operation's output shape for every attribute value of every item it returns, a dozen Python
calls per value: under a fleet that was half of the DynamoDB server's time in moto. For the
item operations below, `direct_dynamodb_answers` writes the same JSON document (same keys,
values and types; the top-level keys may come in another order) with one ``json.dumps`` over
moto's stored values. Anything it does not know how to write, and every error, goes through
moto's own serializer unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from cloud.local.moto_patches import patched

# The operations whose answers are items, keys, counts and consumed capacity only.
DIRECT_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem"})
# The class moto's DynamoDB handlers wrap every answer in, looked up in their module each time.
RESULT_CLASS = "DynamoResult"


class NotDirectError(Exception):
    """A value the direct writer does not handle: moto's serializer writes this answer."""


def _blob(value: bytes | str) -> str:
    # moto keeps a binary as the bytes or as the base64 text it received; it answers with the
    # base64 of the bytes either way.
    raw = value if isinstance(value, bytes) else base64.b64decode(value)
    return base64.b64encode(raw).decode("ascii")


def _text(value: Any) -> str:
    return value if type(value) is str else str(value)


def attribute_writer() -> Callable[[Any], Any]:
    """``json.dumps``'s default for moto's stored values: what its serializer writes for each."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    def write(value: Any) -> Any:
        if isinstance(value, DynamoType):
            kind, inner = value.type, value.value
            if kind in ("S", "N"):
                return {kind: _text(inner)}
            if kind in ("SS", "NS"):
                return {kind: [_text(v) for v in inner]}
            if kind == "B":
                return {kind: _blob(inner)}
            if kind == "BS":
                return {kind: [_blob(v) for v in inner]}
            # M and L hold more DynamoTypes (json.dumps comes back here for each); BOOL and
            # NULL hold a bool.
            return {kind: inner}
        if isinstance(value, bytes):
            return _blob(value)  # a binary inside a map or list of an item's plain JSON
        raise NotDirectError(f"{type(value).__name__} in a DynamoDB answer")

    return write


def _has_plain_binary(attributes: Any) -> bool:
    """True when an item written as plain JSON (``Item.to_json``) has a binary at its top:
    moto's serializer encodes such a value as it finds it (bytes, or the base64 text a client
    sent), which is left to it."""
    if not isinstance(attributes, dict):
        return True
    return any(not isinstance(v, dict) or "B" in v or "BS" in v for v in attributes.values())


def direct_body(result: dict[str, Any], members: Any, write: Callable[[Any], Any]) -> str:
    """The JSON document moto's serializer writes for `result`, an item operation's answer
    (raises NotDirectError when it holds something this module does not write)."""
    # The serializer keeps only the output shape's members, and drops those set to None.
    kept = {k: v for k, v in result.items() if k in members and v is not None}
    if "Attributes" in kept and _has_plain_binary(kept["Attributes"]):
        raise NotDirectError("a binary attribute in ReturnValues")
    return json.dumps(kept, default=write)


@contextlib.contextmanager
def direct_dynamodb_answers() -> Iterator[bool]:
    """While active, moto answers GetItem, Query, Scan, PutItem, UpdateItem and DeleteItem
    without its shape-walking serializer; yields False when this moto release does not have
    the shape the change relies on (then nothing is changed)."""
    from moto import settings
    from moto.core.responses import ActionResult
    from moto.dynamodb import responses

    original = getattr(responses, RESULT_CLASS, None)
    to_dict = getattr(responses, "dynamo_to_dict", None)
    if original is None or to_dict is None or not issubclass(original, ActionResult):
        yield False
        return
    write = attribute_writer()
    convert: Callable[[Any], Any] = to_dict

    class DirectResult(original):  # type: ignore[misc, valid-type]
        """moto's result, converted only if moto's serializer is the one to write it."""

        def __init__(self, result: object) -> None:
            ActionResult.__init__(self, result)

        def execute_result(self, context: Any) -> Any:
            operation = context.operation_model
            raw = self._result
            if (
                operation.name in DIRECT_OPERATIONS
                and isinstance(raw, dict)
                and context.service_model.protocol == "json"
                and not settings.PRETTIFY_RESPONSES
            ):
                version = context.service_model.metadata.get("jsonVersion", "1.0")
                with contextlib.suppress(NotDirectError):
                    body = direct_body(raw, operation.output_shape.members, write)
                    headers = {"Content-Type": f"application/x-amz-json-{version}"}
                    return operation.http.get("responseCode", 200), headers, body
            return ActionResult(convert(raw)).execute_result(context)

    with patched(responses, **{RESULT_CLASS: DirectResult}):
        yield True
