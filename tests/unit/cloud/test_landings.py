"""The landing journal of the local stack, and the watcher that follows it for `simulate`."""

from __future__ import annotations

from pathlib import Path

from cloud.local.landings import JournalReader, LandingJournal, journal_path, landing_line
from commands.simulator.landings import LandingWatcher, percentile

BATCH = {
    "schema": 1,
    "thing": "exc-01",
    "site": "s1",
    "boot": "9c1e0f7a",
    "seq": 7,
    "runId": "run-1",
    "sentAt": 1_763_733_600_000,
    "readings": [{"sensorId": "engine"}, {"sensorId": "ambient"}],
}
KEY = "raw/site=s1/thing=exc-01/date=2025-11-21/9c1e0f7a-7.json"


def test_a_line_holds_the_key_the_time_and_the_batch_fields() -> None:
    assert landing_line(KEY, 1_763_733_600_200, 1_763_733_600_250, BATCH) == {
        "key": KEY,
        "receivedMs": 1_763_733_600_200,
        "storedMs": 1_763_733_600_250,
        "thing": "exc-01",
        "boot": "9c1e0f7a",
        "seq": 7,
        "sentAt": 1_763_733_600_000,
        "runId": "run-1",
        "readings": 2,
    }
    assert landing_line("errors/x.json", 4, 5, None) == {
        "key": "errors/x.json",
        "receivedMs": 4,
        "storedMs": 5,
    }


def test_the_reader_sees_only_complete_lines_written_after_it_opened(tmp_path: Path) -> None:
    path = journal_path(tmp_path)
    journal = LandingJournal(path)
    journal.record("raw/before.json", 0, 1, None)
    reader = JournalReader(path)
    assert reader.read_new() == []
    journal.record(KEY, 0, 2, BATCH)
    with path.open("a") as f:
        f.write('{"key": "raw/half')  # a line still being written
    assert [line["key"] for line in reader.read_new()] == [KEY]
    with path.open("a") as f:
        f.write('.json", "storedMs": 3}\n')
    assert reader.read_new() == [{"key": "raw/half.json", "storedMs": 3}]
    journal.close()
    journal.record("raw/after-close.json", 0, 4, None)  # an action ending while the stack stops
    assert reader.read_new() == []


def test_a_reader_from_the_start_and_a_missing_journal(tmp_path: Path) -> None:
    assert JournalReader(tmp_path / "none.jsonl").read_new() == []
    path = journal_path(tmp_path)
    journal = LandingJournal(path)
    journal.record(KEY, 0, 2, BATCH)
    journal.close()
    assert len(JournalReader(path, from_start=True).read_new()) == 1


def test_the_watcher_keeps_its_site_and_run_and_the_first_landing_of_a_key(tmp_path: Path) -> None:
    path = journal_path(tmp_path)
    journal = LandingJournal(path)
    watcher = LandingWatcher(path, "s1", poll_s=60)
    watcher.start()
    journal.record(KEY, 0, 1_763_733_600_180, BATCH)
    journal.record(KEY, 0, 1_763_733_609_000, BATCH)  # re-delivered: a new version, same key
    other_site = KEY.replace("site=s1", "site=s2")
    journal.record(other_site, 0, 1_763_733_600_100, {**BATCH, "site": "s2"})
    journal.record("raw/site=s1/thing=exc-01/date=2025-11-21/x-1.json", 0, 9, {"not": "a batch"})
    other_run = KEY.replace("-7.json", "-8.json")
    journal.record(other_run, 0, 1_763_733_600_300, {**BATCH, "seq": 8, "runId": "run-2"})
    watcher.stop()
    journal.close()
    (landed,) = watcher.landed("run-1")
    assert landed.key == KEY
    assert landed.latency_ms == 180
    assert landed.readings == 2
    assert landed.batch == ("exc-01", "9c1e0f7a", 7)
    assert [item.key for item in watcher.landed("run-2")] == [other_run]


def test_nearest_rank_percentile() -> None:
    assert percentile([], 0.5) is None
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100


def test_a_new_journal_continues_the_last_one_past_a_line_cut_by_a_kill(tmp_path: Path) -> None:
    path = journal_path(tmp_path)
    first = LandingJournal(path)
    first.record("raw/a", 1, 2, {"thing": "exc-01", "seq": 1})
    first.close()
    with path.open("a") as f:
        f.write('{"key": "raw/cut')  # the stack was killed in the middle of a line
    reader = JournalReader(path, from_start=True)
    again = LandingJournal(path)
    again.record("raw/b", 3, 4, {"thing": "exc-01", "seq": 2})
    again.close()
    assert [line["key"] for line in reader.read_new()] == ["raw/a", "raw/b"]


def test_the_watcher_polled_from_two_threads_misses_no_landing(tmp_path: Path) -> None:
    # simulate's settle loop polls while the watcher's own thread does: neither may skip lines.
    import threading

    path = journal_path(tmp_path)
    journal = LandingJournal(path)
    watcher = LandingWatcher(path, "s1", poll_s=0.0005)
    watcher.start()
    done = threading.Event()

    def write() -> None:
        for seq in range(3000):
            key = KEY.replace("-7.json", f"-{seq}.json")
            journal.record(key, 0, 1_763_733_600_180, {**BATCH, "seq": seq})
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        watcher.poll()
    writer.join(10)
    watcher.stop()
    journal.close()
    assert len(watcher.landed("run-1")) == 3000
