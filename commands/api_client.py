"""A small HTTP client of the API for the command line and the simulator (stdlib only)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

DEFAULT_TIMEOUT_S = 30.0


class ApiCallError(RuntimeError):
    """The API answered with an error status, or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})" if status else message)
        self.status = status
        self.message = message


class ApiConfigError(RuntimeError):
    """No URL or token to reach the API with."""


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    token: str
    timeout_s: float = DEFAULT_TIMEOUT_S

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request; returns the decoded JSON or raises ApiCallError."""
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return _decode(response.read())
        except urllib.error.HTTPError as exc:
            payload = _decode(exc.read())
            message = payload.get("message") if isinstance(payload, dict) else None
            raise ApiCallError(exc.code, str(message or exc.reason)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiCallError(0, f"cannot reach the API at {self.base_url}: {reason}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}


def client_from(url: str | None, token: str | None, state_dir: Any = None) -> ApiClient:
    """--url/--token, else CHANTIER_API_URL/CHANTIER_API_TOKEN, else the running local stack."""
    url = url or os.environ.get("CHANTIER_API_URL")
    token = token or os.environ.get("CHANTIER_API_TOKEN")
    if url and token:
        return ApiClient(url, token)
    from cloud.local.stackinfo import StackInfo, StackNotRunningError

    try:
        info = StackInfo.load(state_dir)
    except StackNotRunningError as exc:
        raise ApiConfigError(
            f"{exc}; or give --url and --token (or CHANTIER_API_URL and CHANTIER_API_TOKEN) "
            "for a deployed API"
        ) from None
    if not info.api_url:
        raise ApiConfigError(f"the local stack in {info.state_dir} does not serve the API")
    return ApiClient(url or info.api_url, token or info.api_token)
