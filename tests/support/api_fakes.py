"""In-memory stand-ins for the API's storage, with the same atomicity as the DynamoDB adapter."""

from __future__ import annotations

import threading
from typing import Any

from cloud.api.cursor import decode_cursor, encode_cursor
from cloud.api.errors import RunConflictError, RunLimitError, RunNotFoundError
from cloud.api.runs import RUNNING, Page, Run, closed

_KEYS = frozenset({"listSk"})


class MemoryRuns:
    """RunRepository in memory; one lock plays the part of a DynamoDB transaction."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.machines: dict[str, frozenset[str]] = {}
        self.counter = 0
        self._lock = threading.Lock()

    def create(self, run: Run, limit: int) -> None:
        with self._lock:
            if self.counter >= limit:
                raise RunLimitError(f"{limit} runs are already running")
            self.counter += 1
            self.runs[run.id] = run

    def close(self, run_id: str, status: str, finished_at: int, by: str, note: str) -> Run:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if run.status != RUNNING:
                raise RunConflictError(run_id)
            self.counter -= 1
            self.runs[run_id] = closed(run, status, finished_at, by, note)
            return self.runs[run_id]

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def set_members(self, run_id: str, things: frozenset[str], expires_at_s: int) -> None:
        if things:
            self.machines[run_id] = things

    def members(self, run_id: str) -> frozenset[str]:
        return self.machines.get(run_id, frozenset())

    def running(self) -> list[Run]:
        return [r for r in self.runs.values() if r.status == RUNNING]

    def running_count(self) -> int:
        return self.counter

    def page(self, limit: int, cursor: str | None) -> Page:
        ordered = sorted(self.runs.values(), key=lambda r: (r.startedAt, r.id), reverse=True)
        start = decode_cursor(cursor, _KEYS)
        if start is not None:
            ordered = [r for r in ordered if f"{r.startedAt:013d}#{r.id}" < str(start["listSk"])]
        chunk = ordered[:limit]
        more = len(ordered) > limit
        last: dict[str, Any] | None = (
            {"listSk": f"{chunk[-1].startedAt:013d}#{chunk[-1].id}"} if more else None
        )
        return Page(chunk, encode_cursor(last))


class FakeClock:
    def __init__(self, now_ms: int = 1_800_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms
