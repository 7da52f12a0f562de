"""Raw HTTP calls to the local API for tests: status and decoded JSON, nothing hidden."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from cloud.local.stackinfo import StackInfo


def call(
    info: StackInfo,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "stack",
    raw: bytes | None = None,
    timeout_s: float = 30.0,
) -> tuple[int, Any]:
    """One request; `token="stack"` uses the stack's token, None sends no Authorization."""
    parts = urlsplit(info.api_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {info.api_token if token == 'stack' else token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    try:
        decoded = json.loads(payload) if payload else None
    except ValueError:
        decoded = payload.decode(errors="replace")
    return response.status, decoded


def start_body(**overrides: Any) -> dict[str, Any]:
    return {"duration": 60, "interval": 1.0, "devices": 1, "params": {}, **overrides}


def interrupt_all(info: StackInfo) -> None:
    status, body = call(info, "POST", "/api/runs/interrupt-all")
    assert status == 200, body
