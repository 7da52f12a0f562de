"""Two runs on one fleet: the one that started first keeps it."""

from __future__ import annotations

from typing import Any

from commands.simulator.runner import fleet_owner


def _run(run_id: str, started: int, fleet: str | None) -> dict[str, Any]:
    return {"id": run_id, "startedAt": started, "params": {"fleet": fleet}}


def test_an_earlier_run_on_the_same_fleet_owns_it() -> None:
    first, second = _run("a" * 32, 100, "sim"), _run("b" * 32, 200, "sim")
    assert fleet_owner(second, [first, second]) == first
    assert fleet_owner(first, [first, second]) is None


def test_runs_started_in_the_same_millisecond_let_exactly_one_go_on() -> None:
    one, two = _run("a" * 32, 100, "sim"), _run("b" * 32, 100, "sim")
    owners = [fleet_owner(one, [one, two]), fleet_owner(two, [one, two])]
    assert owners == [None, one]


def test_other_fleets_and_runs_without_params_do_not_count() -> None:
    mine = _run("b" * 32, 200, "sim")
    others = [_run("a" * 32, 100, "other"), {"id": "c" * 32, "startedAt": 50, "params": None}]
    assert fleet_owner(mine, [*others, mine]) is None


def test_json_summary_carries_every_figure_and_ok() -> None:
    import json

    from commands.simulator.runner import SimulationSummary, summary_json

    summary = SimulationSummary(run_id="r", status="COMPLETED", published=3, acknowledged=3)
    summary.landed = summary.in_bucket = 3
    data = json.loads(json.dumps(summary_json(summary)))
    assert data["ok"] is True and data["published"] == 3 and data["lost_batches"] == 0
