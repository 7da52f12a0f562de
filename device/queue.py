"""Durable queue of readings and formed batches: SQLite in WAL mode in the state directory."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chantier.telemetry import MAX_READINGS_PER_BATCH, MIN_EPOCH_MS, encode_message
from device.batcher import Envelope, build_batch, reading_dict

QUEUE_FILE = "queue.db"
SEQ_FLOOR_FILE = "seq.floor"
# Sequence numbers are reserved on disk in blocks, so a lost or set-aside queue file never
# makes the agent reuse one.
SEQ_BLOCK = 1000
PRIORITY_URGENT, PRIORITY_LIVE, PRIORITY_BACKLOG = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor TEXT NOT NULL,
    ts INTEGER,
    synced INTEGER NOT NULL DEFAULT 1,
    mono_ms INTEGER NOT NULL,
    os_boot TEXT NOT NULL,
    wall_ms INTEGER NOT NULL,
    temperature REAL NOT NULL,
    humidity REAL,
    pressure REAL,
    urgent INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE,
    priority INTEGER NOT NULL,
    payload BLOB NOT NULL,
    readings INTEGER NOT NULL,
    first_reading INTEGER NOT NULL,
    oldest_ts INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class QueueError(RuntimeError):
    """The queue cannot be opened or written, even after setting a bad file aside."""


@dataclass(frozen=True)
class NewReading:
    """A reading as sampled: wall time only when the clock was synced, monotonic always."""

    sensor: str
    ts: int | None
    mono_ms: int
    os_boot: str
    wall_ms: int
    temperature: float
    humidity: float | None = None
    pressure: float | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Batch:
    """A formed batch: its exact bytes, sent as they are until acknowledged."""

    id: int
    boot: str
    seq: int
    priority: int
    payload: bytes
    readings: int
    oldest_ts: int
    attempts: int


@dataclass(frozen=True)
class Pending:
    """Readings waiting to be batched, as seen by the batching decision."""

    count: int
    stamped: int
    bytes: int
    oldest_mono_ms: int | None
    urgent: int


class DurableQueue:
    """Readings are committed before they can be published; a batch leaves only on ack."""

    def __init__(self, state_dir: Path, max_readings: int = 200_000) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / QUEUE_FILE
        self.max_readings = max_readings
        self.set_aside: Path | None = None
        self.set_aside_reason: str | None = None
        self.dropped_since_open = 0
        self._lock = threading.RLock()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        self._total = self._count_total()

    # -- opening ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a reading acknowledged to the sampler survives a power cut, not only a crash.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA cache_size=-2048")
        db.executescript(_SCHEMA)
        row = db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            db.close()
            raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
        except sqlite3.DatabaseError as exc:
            self._set_aside(str(exc))
            try:
                db = self._connect()
            except sqlite3.DatabaseError as again:
                raise QueueError(f"{self.path}: cannot create a fresh queue: {again}") from again
        if self._meta(db, "next_seq") is None:
            # a fresh file: start above every number a lost file may have used
            floor = self._read_seq_floor()
            db.execute("INSERT INTO meta(key, value) VALUES ('next_seq', ?)", (str(floor),))
        return db

    def _set_aside(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{QUEUE_FILE}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                source.rename(Path(str(target) + suffix))
        self.set_aside = target
        self.set_aside_reason = reason

    # -- sequence numbers -------------------------------------------------------------------
    def _read_seq_floor(self) -> int:
        try:
            return int((self.state_dir / SEQ_FLOOR_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_seq_floor(self, value: int) -> None:
        target = self.state_dir / SEQ_FLOOR_FILE
        tmp = target.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{value}\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(target)

    def _take_seq(self) -> int:
        seq = int(self._meta(self._db, "next_seq") or 0)
        if seq >= self._read_seq_floor():
            self._write_seq_floor(seq + SEQ_BLOCK)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq + 1),))
        return seq

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _count_total(self) -> int:
        loose = self._db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        batched = self._db.execute("SELECT COALESCE(SUM(readings), 0) FROM batches").fetchone()[0]
        return int(loose) + int(batched)

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta(self._db, key)

    def set_meta(self, key: str, value: Any) -> None:
        """Keep a small JSON value (last publish, sensor status) for `chantier agent status`."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    # -- readings -----------------------------------------------------------------------------
    def add(self, readings: Sequence[NewReading]) -> None:
        """Commit readings to disk; when full, drop and count the oldest ones."""
        if not readings:
            return
        rows = [
            (
                r.sensor,
                r.ts,
                r.mono_ms,
                r.os_boot,
                r.wall_ms,
                r.temperature,
                r.humidity,
                r.pressure,
                int(r.urgent),
                _size(r),
            )
            for r in readings
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO readings(sensor, ts, mono_ms, os_boot, wall_ms, temperature,"
                " humidity, pressure, urgent, size) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._total += len(rows)
            if self._total > self.max_readings:
                self._drop_oldest(db, self._total - self.max_readings)

    def _drop_oldest(self, db: sqlite3.Connection, excess: int) -> None:
        dropped = 0
        while dropped < excess:
            first = db.execute("SELECT MIN(id) FROM readings").fetchone()[0]
            batch = db.execute(
                "SELECT id, readings, first_reading FROM batches ORDER BY first_reading LIMIT 1"
            ).fetchone()
            if batch is not None and (first is None or batch[2] < first):
                db.execute("DELETE FROM batches WHERE id = ?", (batch[0],))
                dropped += int(batch[1])
                continue
            if first is None:
                break
            n = db.execute(
                "DELETE FROM readings WHERE id IN (SELECT id FROM readings ORDER BY id LIMIT ?)",
                (excess - dropped,),
            ).rowcount
            dropped += n
        total = int(self._meta(db, "dropped_total") or 0) + dropped
        db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('dropped_total', ?)", (str(total),)
        )
        self._total -= dropped
        self.dropped_since_open += dropped

    def restamp(self, os_boot: str, offset_ms: int) -> int:
        """Give wall times to readings taken before the clock was synced, in this OS boot."""
        with self._tx() as db:
            return db.execute(
                "UPDATE readings SET ts = mono_ms + ?, synced = 1 WHERE ts IS NULL AND os_boot = ?",
                (offset_ms, os_boot),
            ).rowcount

    def stamp_orphans(self, os_boot: str) -> int:
        """Readings from an earlier OS boot never synced: their monotonic time is lost, so
        they keep the wall clock of the time and say so with clockSynced=false."""
        with self._tx() as db:
            return db.execute(
                "UPDATE readings SET ts = MAX(wall_ms, ?), synced = 0"
                " WHERE ts IS NULL AND os_boot != ?",
                (MIN_EPOCH_MS, os_boot),
            ).rowcount

    def pending(self, newer_than_id: int = 0) -> Pending:
        """Summary of readings not yet in a batch (those after `newer_than_id`)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COUNT(ts),"
                " COALESCE(SUM(CASE WHEN ts IS NOT NULL THEN size END), 0),"
                " MIN(CASE WHEN ts IS NOT NULL THEN mono_ms END),"
                " COALESCE(SUM(CASE WHEN ts IS NOT NULL THEN urgent END), 0)"
                " FROM readings WHERE id > ?",
                (newer_than_id,),
            ).fetchone()
        return Pending(int(row[0]), int(row[1]), int(row[2]), row[3], int(row[4]))

    # -- batches ------------------------------------------------------------------------------
    def form_batch(
        self,
        envelope: Envelope,
        sent_at: int,
        budget: int,
        *,
        priority: int = PRIORITY_LIVE,
        after_id: int = 0,
        up_to_id: int | None = None,
        urgent_only: bool = False,
        max_readings: int = MAX_READINGS_PER_BATCH,
    ) -> Batch | None:
        """Turn the oldest stamped readings into one batch, stored as its exact bytes."""
        where = "ts IS NOT NULL AND id > ?"
        args: list[Any] = [after_id]
        if up_to_id is not None:
            where += " AND id <= ?"
            args.append(up_to_id)
        if urgent_only:
            where += " AND urgent = 1"
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, sensor, ts, synced, temperature, humidity, pressure FROM readings"
                f" WHERE {where} ORDER BY id LIMIT ?",
                (*args, max_readings),
            ).fetchall()
            if not rows:
                return None
            seq = self._take_seq()
            # clockSynced describes the whole batch: do not mix in a last-resort stamp
            synced = bool(rows[0][3])
            rows = [r for r in rows if bool(r[3]) == synced]
            items = [reading_dict(r[1], r[2], r[4], r[5], r[6]) for r in rows]
            payload, count = build_batch(
                envelope, seq, sent_at, synced, items, budget, max_readings
            )
            used = rows[:count]
            cursor = db.execute(
                "INSERT INTO batches(boot, seq, priority, payload, readings, first_reading,"
                " oldest_ts, created_ms) VALUES (?,?,?,?,?,?,?,?)",
                (
                    envelope.boot,
                    seq,
                    priority,
                    payload,
                    count,
                    used[0][0],
                    min(r[2] for r in used),
                    sent_at,
                ),
            )
            db.executemany("DELETE FROM readings WHERE id = ?", [(r[0],) for r in used])
            return Batch(
                int(cursor.lastrowid or 0),
                envelope.boot,
                seq,
                priority,
                payload,
                count,
                min(r[2] for r in used),
                0,
            )

    def unsent(self, exclude: Sequence[int] = (), limit: int = 10) -> list[Batch]:
        """Batches waiting for an ack, most urgent first, then oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, boot, seq, priority, payload, readings, oldest_ts, attempts"
                " FROM batches ORDER BY priority, id LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        skip = set(exclude)
        out = [Batch(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], r[7]) for r in rows]
        return [b for b in out if b.id not in skip][:limit]

    def count_unsent(self, priority: int | None = None) -> int:
        with self._lock:
            if priority is None:
                row = self._db.execute("SELECT COUNT(*) FROM batches").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM batches WHERE priority = ?", (priority,)
                ).fetchone()
        return int(row[0])

    def max_reading_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0])

    def mark_attempt(self, batch_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE batches SET attempts = attempts + 1 WHERE id = ?", (batch_id,))

    def ack(self, batch_id: int) -> bool:
        """The broker acknowledged the batch: it leaves the queue."""
        with self._tx() as db:
            row = db.execute("SELECT readings FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
            self._total -= int(row[0])
            return True

    # -- inspection ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Readings on disk not yet acknowledged (loose or in batches)."""
        return self._total

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return queue_stats(self._db, self._total)

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._db.close()


def queue_stats(db: sqlite3.Connection, depth: int | None = None) -> dict[str, Any]:
    """Depth, batches, oldest reading and counters, readable from a read-only connection."""
    loose = db.execute("SELECT COUNT(*), MIN(COALESCE(ts, wall_ms)) FROM readings").fetchone()
    batched = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(readings), 0), MIN(oldest_ts) FROM batches"
    ).fetchone()
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    oldest = [v for v in (loose[1], batched[2]) if v is not None]
    return {
        "depth": depth if depth is not None else int(loose[0]) + int(batched[1]),
        "loose_readings": int(loose[0]),
        "batches": int(batched[0]),
        "oldest_reading_ms": min(oldest) if oldest else None,
        "dropped_total": int(meta.get("dropped_total", 0)),
        "next_seq": int(meta.get("next_seq", 0)),
        "meta": {k: v for k, v in meta.items() if k not in ("dropped_total", "next_seq")},
    }


def read_status(state_dir: Path) -> dict[str, Any]:
    """Queue figures from the state directory without disturbing a running agent."""
    path = Path(state_dir) / QUEUE_FILE
    if not path.exists():
        raise QueueError(f"{path}: no queue here: has the agent run with this state_dir?")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        stats = queue_stats(db)
    finally:
        db.close()
    decoded: dict[str, Any] = {}
    for key, value in stats.pop("meta").items():
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value
    stats.update(decoded)
    return stats


def _size(r: NewReading) -> int:
    ts = r.ts if r.ts is not None else max(r.wall_ms, MIN_EPOCH_MS)
    return (
        len(encode_message(reading_dict(r.sensor, ts, r.temperature, r.humidity, r.pressure))) + 1
    )
