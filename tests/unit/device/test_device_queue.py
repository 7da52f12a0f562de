"""Durable queue: commit, batch once, ack, bound, sequence numbers, corrupt files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from device.batcher import Envelope
from device.queue import (
    PRIORITY_BACKLOG,
    PRIORITY_URGENT,
    SEQ_BLOCK,
    DurableQueue,
    NewReading,
    read_status,
)

ENV = Envelope("exc-01", "lyon-part-dieu", "excavator", "9c1e0f7a")
T0 = 1_763_733_600_000


def reading(i: int, stamped: bool = True, urgent: bool = False, os_boot: str = "b1") -> NewReading:
    return NewReading(
        sensor="engine",
        ts=T0 + i * 1000 if stamped else None,
        mono_ms=5_000 + i * 1000,
        os_boot=os_boot,
        wall_ms=T0 + i * 1000,
        temperature=20.0 + i / 10,
        humidity=50.0,
        pressure=1000.0,
        urgent=urgent,
    )


def test_batch_formed_once_kept_as_bytes_until_ack(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path)
    q.add([reading(i) for i in range(10)])
    assert q.depth == 10
    batch = q.form_batch(ENV, T0 + 20_000, 4800)
    assert batch is not None and batch.readings == 10 and batch.seq == 0
    assert q.form_batch(ENV, T0 + 21_000, 4800) is None  # readings are in the batch now
    q.close()

    q2 = DurableQueue(tmp_path)
    [again] = q2.unsent()
    assert again.payload == batch.payload  # byte-identical after a restart
    assert q2.depth == 10
    assert q2.ack(again.id)
    assert q2.depth == 0 and q2.unsent() == []
    q2.add([reading(20)])
    nxt = q2.form_batch(ENV, T0 + 30_000, 4800)
    assert nxt is not None and nxt.seq == 1
    message = json.loads(batch.payload)
    assert [r["ts"] for r in message["readings"]] == [T0 + i * 1000 for i in range(10)]


def test_sequence_never_reused_even_when_the_file_is_lost(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path)
    q.add([reading(0)])
    first = q.form_batch(ENV, T0, 4800)
    q.close()
    for name in ("queue.db", "queue.db-wal", "queue.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    q2 = DurableQueue(tmp_path)
    q2.add([reading(1)])
    second = q2.form_batch(ENV, T0, 4800)
    assert first is not None and second is not None
    assert second.seq > first.seq
    assert second.seq >= SEQ_BLOCK - 1


def test_full_queue_drops_oldest_and_counts(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path, max_readings=50)
    q.add([reading(i) for i in range(30)])
    batch = q.form_batch(ENV, T0, 4800, max_readings=10)  # readings 0-9 in a batch
    assert batch is not None
    q.add([reading(i) for i in range(30, 60)])  # 60 > 50: drop the oldest 10 = the batch
    assert q.depth == 50
    assert q.dropped_since_open == 10
    assert q.unsent() == []
    q.add([reading(60), reading(61)])
    assert q.dropped_since_open == 12
    nxt = q.form_batch(ENV, T0, 100_000)
    assert nxt is not None
    temps = [r["temperature"] for r in json.loads(nxt.payload)["readings"]]
    assert temps[0] == 20.0 + 12 / 10  # readings 10 and 11 went
    q.close()
    assert read_status(tmp_path)["dropped_total"] == 12


def test_unreadable_file_is_set_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "queue.db").write_bytes(b"this is not a database" * 100)
    q = DurableQueue(tmp_path)
    assert q.set_aside is not None and q.set_aside.exists()
    assert "corrupt" in q.set_aside.name
    q.add([reading(0)])
    assert q.depth == 1


def test_unstamped_readings_wait_for_sync_then_restamped(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path)
    q.add([reading(0, stamped=False), reading(1, stamped=False)])
    q.add([reading(2, stamped=False, os_boot="old-boot")])
    assert q.form_batch(ENV, T0, 4800) is None  # nothing stamped yet
    assert q.stamp_orphans("b1") == 1
    assert q.restamp("b1", offset_ms=T0 - 5_000 + 100) == 2
    batch = q.form_batch(ENV, T0, 4800)
    assert batch is not None
    message = json.loads(batch.payload)
    assert message["clockSynced"] is True
    assert [r["ts"] for r in message["readings"]] == [T0 + 100, T0 + 1100]
    # the orphan keeps its wall time and travels in its own batch, flagged unsynced
    orphan = q.form_batch(ENV, T0, 4800)
    assert orphan is not None
    m2 = json.loads(orphan.payload)
    assert m2["clockSynced"] is False
    assert [r["ts"] for r in m2["readings"]] == [T0 + 2000]


def test_priorities_and_urgent_only(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path)
    q.add([reading(0), reading(1, urgent=True), reading(2)])
    backlog = q.form_batch(ENV, T0, 4800, priority=PRIORITY_BACKLOG, up_to_id=1, max_readings=1)
    urgent = q.form_batch(ENV, T0, 4800, priority=PRIORITY_URGENT, urgent_only=True)
    assert backlog is not None and urgent is not None
    assert json.loads(urgent.payload)["readings"][0]["temperature"] == 20.1
    assert [b.id for b in q.unsent()] == [urgent.id, backlog.id]
    assert q.pending().count == 1


def test_status_readable_while_open(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path)
    q.add([reading(i) for i in range(5)])
    q.set_meta("agent", {"lastPublishMs": T0})
    status = read_status(tmp_path)
    assert status["depth"] == 5
    assert status["oldest_reading_ms"] == T0
    assert status["agent"] == {"lastPublishMs": T0}
    q.close()


def test_wal_mode(tmp_path: Path) -> None:
    DurableQueue(tmp_path).close()
    db = sqlite3.connect(tmp_path / "queue.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
