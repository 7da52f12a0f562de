"""Watches a site's batches land in the raw bucket, and when (landing time), for `simulate`.

The local stack journals every object its rules engine stores (cloud/local/landings.py), with
the time the S3 put returned and the batch's sentAt: following that journal times each batch to
the millisecond and costs moto nothing, where polling the bucket cost a listing of every
object stored, ten times a second. `bucket_keys` checks the bucket itself, once, at the end.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.local.landings import JournalReader

log = logging.getLogger(__name__)
POLL_S = 0.1


@dataclass(frozen=True)
class Landed:
    key: str
    seen_ms: int
    sent_at_ms: int
    run_id: str | None
    readings: int
    batch: tuple[str, str, int] = ("", "", -1)  # (thing, boot, seq) of the message

    @property
    def latency_ms(self) -> int:
        return self.seen_ms - self.sent_at_ms


class LandingWatcher:
    """Follows the stack's landing journal for `raw/site=<site>/` keys until stop()."""

    def __init__(self, journal: Path, site: str, poll_s: float = POLL_S) -> None:
        self._journal = journal
        self._reader: JournalReader | None = None
        self._prefix = f"raw/site={site}/"
        self._poll_s = poll_s
        self._landed: dict[str, Landed] = {}
        self._lock = threading.Lock()
        # The reader keeps an offset and a partial line: two polls at once (the watcher's
        # thread and a caller's) would skip or split lines.
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # Lines already there belong to earlier runs: only what lands from now on counts.
        self._reader = JournalReader(self._journal)
        self._thread = threading.Thread(target=self._loop, name="landing-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.poll()  # one last look, so nothing that landed before stop() is missed

    def _loop(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.poll()
            except Exception:  # the watcher must not end the simulation; the summary tells
                log.exception("following the landing journal %s failed", self._journal)

    def poll(self) -> None:
        if self._reader is None:
            return
        with self._read_lock:
            for line in self._reader.read_new():
                landed = _landed(line, self._prefix)
                if landed is None:
                    continue
                with self._lock:
                    # A re-delivered batch lands on the same key again: its first landing
                    # counts.
                    self._landed.setdefault(landed.key, landed)

    def landed(self, run_id: str) -> list[Landed]:
        with self._lock:
            return [item for item in self._landed.values() if item.run_id == run_id]


def _landed(line: dict[str, Any], prefix: str) -> Landed | None:
    key = line.get("key")
    if not isinstance(key, str) or not key.startswith(prefix):
        return None
    try:
        return Landed(
            key,
            int(line["storedMs"]),
            int(line["sentAt"]),
            line.get("runId"),
            int(line.get("readings", 0)),
            (str(line.get("thing", "")), str(line.get("boot", "")), int(line.get("seq", -1))),
        )
    except (KeyError, TypeError, ValueError):
        return None  # not a telemetry batch (an unreadable one is kept under errors/)


def bucket_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    """Every key under `prefix`, listed once."""
    keys: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
