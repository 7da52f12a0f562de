"""Run rules: the limit (also under threads), statuses, ownership, expiry, listing."""

from __future__ import annotations

import threading

import pytest
from support.api_fakes import FakeClock, MemoryRuns

from cloud.api.errors import ForbiddenError, RunConflictError, RunLimitError, RunNotFoundError
from cloud.api.identity import Identity
from cloud.api.models import StartRunRequest
from cloud.api.runs import EXPIRY_GRACE_MS, RunService

ALICE = Identity("alice", admin=False)
BOB = Identity("bob", admin=False)
ADMIN = Identity("root", admin=True)


def _service(clock: FakeClock | None = None) -> tuple[RunService, MemoryRuns, FakeClock]:
    repo, clock = MemoryRuns(), clock or FakeClock()
    return RunService(repo, clock, lambda i: f"https://dash/{i}"), repo, clock


def _request(duration: int = 60) -> StartRunRequest:
    return StartRunRequest(duration=duration, interval=1.0, devices=2)


def test_start_fills_the_run() -> None:
    service, _, clock = _service()
    run = service.start(ALICE, _request(30))
    assert run.status == "RUNNING" and run.username == "alice"
    assert run.startedAt == clock.now_ms and run.endsAt == clock.now_ms + 30_000
    assert run.dashboardUrl == f"https://dash/{run.id}"


def test_at_most_five_running() -> None:
    service, _, _ = _service()
    for _ in range(5):
        service.start(ALICE, _request())
    assert service.can_start() == {"canStart": False, "running": 5, "limit": 5}
    with pytest.raises(RunLimitError):
        service.start(BOB, _request())
    service.finish(ALICE, service.running()[0].id)
    assert service.can_start()["canStart"] is True
    service.start(BOB, _request())


def test_limit_holds_under_threads() -> None:
    service, repo, _ = _service()
    barrier = threading.Barrier(40, timeout=10)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            service.start(ALICE, _request())
            outcomes.append("ok")
        except RunLimitError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert outcomes.count("ok") == 5 and repo.counter == 5


def test_finish_rules() -> None:
    service, _, _ = _service()
    run = service.start(ALICE, _request())
    with pytest.raises(ForbiddenError, match="owner or an admin"):
        service.finish(BOB, run.id)
    assert service.finish(ALICE, run.id, "FAILED", "broke").status == "FAILED"
    with pytest.raises(RunConflictError, match="already FAILED"):
        service.finish(ALICE, run.id)
    with pytest.raises(RunNotFoundError):
        service.finish(ALICE, "0" * 32)
    other = service.start(ALICE, _request())
    assert service.finish(ADMIN, other.id).finishedBy == "root"


def test_interrupt_all_needs_an_admin() -> None:
    service, repo, _ = _service()
    for _ in range(3):
        service.start(ALICE, _request())
    with pytest.raises(ForbiddenError, match="admins"):
        service.interrupt_all(ALICE)
    closed = service.interrupt_all(ADMIN)
    assert len(closed) == 3 and {r.status for r in closed} == {"INTERRUPTED"}
    assert repo.counter == 0


def test_overdue_runs_are_closed_by_the_system() -> None:
    service, repo, clock = _service()
    short = service.start(ALICE, _request(10))
    long = service.start(ALICE, _request(3600))
    clock.now_ms += 10_000 + EXPIRY_GRACE_MS - 1
    assert service.expire_overdue() == []
    clock.now_ms += 1
    [closed] = service.expire_overdue()
    assert closed.id == short.id and closed.status == "COMPLETED" and closed.finishedBy == "system"
    assert repo.get(long.id).status == "RUNNING"  # type: ignore[union-attr]


def test_overdue_runs_do_not_block_a_start() -> None:
    service, _, clock = _service()
    for _ in range(5):
        service.start(ALICE, _request(10))
    clock.now_ms += 3_600_000
    assert service.can_start()["canStart"] is True
    service.start(BOB, _request())


def test_pages_cover_every_run_once_newest_first() -> None:
    service, _, clock = _service()
    made = []
    for _ in range(7):
        clock.now_ms += 1
        run = service.start(ADMIN, _request())
        service.finish(ADMIN, run.id)
        made.append(run.id)
    seen, cursor = [], None
    while True:
        page = service.page(3, cursor)
        seen.extend(r.id for r in page.runs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert [r.id for r in service.all()] == seen
