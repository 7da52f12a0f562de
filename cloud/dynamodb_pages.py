"""Every item a DynamoDB Query or Scan answers, page after page."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


def all_items(call: Callable[..., Mapping[str, Any]], **request: Any) -> Iterator[dict[str, Any]]:
    """Items of ``call(**request)`` (a Table's ``query`` or ``scan``), following
    ``LastEvaluatedKey`` until the last page; a consumer that stops early reads no more."""
    while True:
        response = call(**request)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
