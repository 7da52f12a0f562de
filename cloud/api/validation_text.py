"""Readable one-line messages from pydantic validation errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


def describe_errors(errors: Iterable[Mapping[str, Any]], limit: int = 3) -> str:
    """`where: what` for the first errors, with a count of the rest."""
    items = list(errors)
    parts = []
    for error in items[:limit]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(parts) + more if parts else "request is not valid"


def describe(exc: ValidationError) -> str:
    return describe_errors(exc.errors())
