"""Simulation runs: the rules (limit, statuses, expiry) with storage behind a small protocol."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from cloud.api.errors import ForbiddenError, RunConflictError, RunNotFoundError
from cloud.api.identity import Identity
from cloud.api.models import StartRunRequest

MAX_RUNNING = 5
# A client that finishes its run a little late should see COMPLETED by its own hand, so the
# system only closes a run this long after its planned end.
EXPIRY_GRACE_MS = 30_000
# A run's list of machines outlives it as long as a finished run stays listable: its machines'
# late batches (after a network cut) still find it.
MEMBERS_RETENTION_S = 400 * 24 * 3600
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"
STATUSES = (RUNNING, COMPLETED, FAILED, INTERRUPTED)


@dataclass(frozen=True)
class Run:
    """One simulation run as the API shows it."""

    id: str
    status: str
    username: str
    startedAt: int  # noqa: N815 - field names are the JSON contract
    endsAt: int  # noqa: N815
    duration: int
    interval: float
    devices: int
    params: dict[str, Any] = field(default_factory=dict)
    dashboardUrl: str = ""  # noqa: N815
    finishedAt: int | None = None  # noqa: N815
    finishedBy: str | None = None  # noqa: N815
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Page:
    """Some runs and the cursor of the next page (None on the last page)."""

    runs: list[Run]
    next_cursor: str | None


class RunRepository(Protocol):
    """Storage of runs; `create` and `close` keep the running count exact and atomic."""

    def create(self, run: Run, limit: int) -> None:
        """Store a RUNNING run unless `limit` runs already run; RunLimitError otherwise."""

    def close(self, run_id: str, status: str, finished_at: int, by: str, note: str) -> Run:
        """Move a RUNNING run to `status`; RunNotFoundError or RunConflictError otherwise."""

    def get(self, run_id: str) -> Run | None: ...

    def running(self) -> list[Run]: ...

    def running_count(self) -> int: ...

    def page(self, limit: int, cursor: str | None) -> Page: ...

    def set_members(self, run_id: str, things: frozenset[str], expires_at_s: int) -> None:
        """Record the things a run is started with (before the run itself)."""

    def members(self, run_id: str) -> frozenset[str]: ...


Clock = Callable[[], int]
DashboardUrl = Callable[[str], str]


class RunService:
    """What the endpoints do with runs, independent of HTTP and of DynamoDB."""

    def __init__(
        self,
        repository: RunRepository,
        clock: Clock,
        dashboard_url: DashboardUrl,
        max_running: int = MAX_RUNNING,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._dashboard_url = dashboard_url
        self.max_running = max_running
        self._new_id = new_id

    def can_start(self) -> dict[str, Any]:
        self.expire_overdue()  # an overdue run must not make the answer "no"
        running = self._repo.running_count()
        return {
            "canStart": running < self.max_running,
            "running": running,
            "limit": self.max_running,
        }

    def start(self, who: Identity, request: StartRunRequest) -> Run:
        # Overdue runs would otherwise hold slots until the next scheduled check.
        self.expire_overdue()
        now = self._clock()
        run_id = self._new_id()
        run = Run(
            id=run_id,
            status=RUNNING,
            username=who.username,
            startedAt=now,
            endsAt=now + request.duration * 1000,
            duration=request.duration,
            interval=request.interval,
            devices=request.devices,
            params=dict(request.params),
            dashboardUrl=self._dashboard_url(run_id),
        )
        # The machines first: a machine of the run must never find its run without its list.
        self._repo.set_members(
            run_id, frozenset(request.things or ()), run.endsAt // 1000 + MEMBERS_RETENTION_S
        )
        self._repo.create(run, self.max_running)
        return run

    def members(self, run_id: str) -> frozenset[str]:
        """The things the run was started with (none when it was started without a list)."""
        return self._repo.members(run_id)

    def get(self, run_id: str) -> Run:
        run = self._repo.get(run_id)
        if run is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist")
        return run

    def finish(self, who: Identity, run_id: str, status: str = COMPLETED, note: str = "") -> Run:
        run = self.get(run_id)
        if run.username != who.username and not who.admin:
            raise ForbiddenError(
                f"run {run_id} belongs to {run.username}: only its owner or an admin may finish it"
            )
        if run.status != RUNNING:
            raise RunConflictError(f"run {run_id} is already {run.status}: expected RUNNING")
        return self._repo.close(run_id, status, self._clock(), who.username, note)

    def interrupt_all(self, who: Identity) -> list[Run]:
        if not who.admin:
            raise ForbiddenError(
                f"user {who.username} may not interrupt every run: the admins group is required"
            )
        return self._close_each(self._repo.running(), INTERRUPTED, f"{who.username}", "")

    def expire_overdue(self) -> list[Run]:
        """Close every run past its end plus the grace period; returns the runs closed."""
        now = self._clock()
        overdue = [r for r in self._repo.running() if r.endsAt + EXPIRY_GRACE_MS <= now]
        return self._close_each(overdue, COMPLETED, "system", "closed after its duration")

    def _close_each(self, runs: list[Run], status: str, by: str, note: str) -> list[Run]:
        closed = []
        for run in runs:
            try:
                closed.append(self._repo.close(run.id, status, self._clock(), by, note))
            except (RunConflictError, RunNotFoundError):
                continue  # closed meanwhile by someone else: nothing left to do
        return closed

    def running(self) -> list[Run]:
        return sorted(self._repo.running(), key=lambda r: (r.startedAt, r.id))

    def page(self, limit: int, cursor: str | None) -> Page:
        return self._repo.page(limit, cursor)

    def all(self, cap: int = 10_000) -> list[Run]:
        """Every run, newest first, up to `cap` (a guard, not a page size)."""
        out: list[Run] = []
        cursor: str | None = None
        while len(out) < cap:
            page = self._repo.page(min(100, cap - len(out)), cursor)
            out.extend(page.runs)
            cursor = page.next_cursor
            if cursor is None:
                break
        return out


def closed(run: Run, status: str, finished_at: int, by: str, note: str) -> Run:
    """The run as it is once closed."""
    return replace(run, status=status, finishedAt=finished_at, finishedBy=by, note=note)
