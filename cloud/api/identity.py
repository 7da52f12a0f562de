"""Who calls the API, taken from the JWT claims the authorizer put in the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.api.errors import UnauthorizedError

ADMIN_GROUP = "admins"


@dataclass(frozen=True)
class Identity:
    username: str
    admin: bool


def _groups(value: Any) -> list[str]:
    # API Gateway HTTP APIs pass array claims as one string, "[admins other]".
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [part for part in value.strip("[]").replace(",", " ").split() if part]
    return []


def identity_from_event(event: dict[str, Any]) -> Identity:
    """The caller's identity; UnauthorizedError when the event carries no user."""
    context = event.get("requestContext") or {}
    claims = (((context.get("authorizer") or {}).get("jwt") or {}).get("claims")) or {}
    username = claims.get("cognito:username") or claims.get("username")
    if not isinstance(username, str) or not username:
        raise UnauthorizedError(
            "no identity on the request: expected a bearer token accepted by the authorizer"
        )
    return Identity(username=username, admin=ADMIN_GROUP in _groups(claims.get("cognito:groups")))
