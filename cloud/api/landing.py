"""Watches the raw bucket for a site's new objects and when they first appear (landing time).

S3 stamps objects to the second, too coarse for end-to-end latency, so the watcher polls
and records when it first sees each key; the error is at most one poll period.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
POLL_S = 0.1


@dataclass(frozen=True)
class Landed:
    key: str
    seen_ms: int
    sent_at_ms: int
    run_id: str | None
    readings: int

    @property
    def latency_ms(self) -> int:
        return self.seen_ms - self.sent_at_ms


class LandingWatcher:
    """Polls `raw/site=<site>/` in a background thread until stop()."""

    def __init__(self, s3: Any, bucket: str, site: str, poll_s: float = POLL_S) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = f"raw/site={site}/"
        self._poll_s = poll_s
        self._known: set[str] = set()
        self._seen: dict[str, int] = {}
        self._landed: dict[str, Landed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # Objects already there belong to earlier runs: remember them so they are not counted.
        self._known = set(self._list())
        self._thread = threading.Thread(target=self._loop, name="landing-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.poll()  # one last look, so nothing that landed before stop() is missed

    def _list(self) -> list[str]:
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def _loop(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.poll()
            except Exception:  # the watcher must not end the simulation; the summary tells
                log.exception("watching the raw bucket failed")

    def poll(self) -> None:
        now = int(time.time() * 1000)
        for key in self._list():
            if key in self._known or key in self._seen:
                continue
            self._seen[key] = now
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            try:
                batch = json.loads(body)
                landed = Landed(
                    key,
                    now,
                    int(batch["sentAt"]),
                    batch.get("runId"),
                    len(batch.get("readings", [])),
                )
            except (ValueError, KeyError, TypeError):
                continue
            with self._lock:
                self._landed[key] = landed

    def landed(self, run_id: str) -> list[Landed]:
        with self._lock:
            return [item for item in self._landed.values() if item.run_id == run_id]


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
