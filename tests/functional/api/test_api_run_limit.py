"""The limit of 5 running runs holds when 50 clients start runs at the same instant."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from support.api_http import call, interrupt_all, start_body

from cloud.local.stack import LocalStack

pytestmark = pytest.mark.functional
CLIENTS = 50


def test_fifty_simultaneous_starts_make_exactly_five_runs(stack: LocalStack) -> None:
    info = stack.info
    assert info is not None
    interrupt_all(info)
    barrier = threading.Barrier(CLIENTS, timeout=30)
    statuses: list[int] = []
    created: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        barrier.wait()
        status, body = call(info, "POST", "/api/runs/start", start_body(), timeout_s=60)
        with lock:
            statuses.append(status)
            if status == 201:
                created.append(body["id"])

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(t.is_alive() for t in threads), "a client did not finish in 90 s"
    assert Counter(statuses) == Counter({201: 5, 400: CLIENTS - 5})
    status, running = call(info, "GET", "/api/runs/running")
    assert status == 200 and sorted(r["id"] for r in running["items"]) == sorted(created)
    assert call(info, "GET", "/api/runs/can-start")[1]["running"] == 5

    # Closing frees the slots exactly: the counter follows the runs.
    status, result = call(info, "POST", "/api/runs/interrupt-all")
    assert status == 200 and result["count"] == 5
    assert call(info, "GET", "/api/runs/can-start")[1] == {
        "canStart": True,
        "running": 0,
        "limit": 5,
    }
