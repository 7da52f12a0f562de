"""Opaque pagination cursors: a page's last key, encoded so clients cannot depend on its shape."""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any

from cloud.api.errors import BadRequestError

_VERSION = 1
MAX_CURSOR_CHARS = 1024

Key = dict[str, str | int]


def _plain(value: Any) -> str | int:
    # DynamoDB returns numbers as Decimal; keys only ever hold integers or strings.
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"cursor key values must be strings or integers, not {type(value)}")
    return value


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    """Cursor for the page after `key`, or None when there is no further page."""
    if not key:
        return None
    body = {"v": _VERSION, "k": {name: _plain(value) for name, value in sorted(key.items())}}
    # UTF-8 rather than \u escapes: a key of non-ASCII text (12 characters per astral one
    # when escaped) made cursors longer than decode_cursor accepts.
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected: frozenset[str]) -> Key | None:
    """The key a cursor stands for; BadRequestError when it was not made by encode_cursor."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadRequestError(f"cursor is {len(cursor)} characters: expected at most 1024")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequestError(
            "cursor is not valid: expected the nextCursor value of a previous page"
        ) from None
    key = body.get("k") if isinstance(body, dict) and body.get("v") == _VERSION else None
    if (
        not isinstance(key, dict)
        or set(key) != expected
        or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in key.values())
    ):
        raise BadRequestError(
            "cursor is not valid for this listing: expected the nextCursor value of a "
            "previous page of the same request"
        )
    return key
