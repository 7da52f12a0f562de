"""The local API server in front of a handler: one event at a time, as a Lambda container."""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from cloud.local.api_server import ApiServer

pytestmark = pytest.mark.functional
TOKEN = "test-token"


def _get(url: str, path: str) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_concurrent_requests_reach_the_handler_one_at_a_time() -> None:
    lock = threading.Lock()
    inside = [0]
    most = [0]

    def handler(event: Any, context: Any) -> dict[str, Any]:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        with lock:
            inside[0] -= 1
        return {"statusCode": 200, "body": "{}"}

    server = ApiServer(TOKEN)
    server.start(handler)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda i: _get(server.url, f"/api/runs?i={i}"), range(40)))
    finally:
        server.stop()
    assert statuses == [200] * 40
    assert most[0] == 1, f"{most[0]} requests were inside the handler at once"
