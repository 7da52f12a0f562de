"""`chantier runs`: short ids as the dashboard shows them, and the shared table."""

from __future__ import annotations

from typing import Any

import pytest

from commands.runs import RunIdError, resolve_run_id, run_row
from commands.tables import table

IDS = ["3f2a9c1e" + "0" * 24, "3f2a9c1f" + "1" * 24, "b7" + "2" * 30]


class FakeApi:
    """Answers GET /api/runs/all with three runs and counts the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(f"{method} {path}")
        return {"items": [{"id": run_id} for run_id in IDS]}


def test_a_full_id_needs_no_lookup() -> None:
    api = FakeApi()
    assert resolve_run_id(api, IDS[2].upper()) == IDS[2]  # type: ignore[arg-type]
    assert api.calls == []


@pytest.mark.parametrize(("text", "expected"), [("3f2a9c1e", IDS[0]), ("b722", IDS[2])])
def test_a_prefix_names_its_run(text: str, expected: str) -> None:
    assert resolve_run_id(FakeApi(), text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [("3f2a9c1", "2 runs start with"), ("ffff", "no run id starts"), ("ab", "at least its")],
)
def test_ambiguous_unknown_or_too_short(text: str, message: str) -> None:
    with pytest.raises(RunIdError, match=message):
        resolve_run_id(FakeApi(), text)  # type: ignore[arg-type]


def test_list_rows_show_the_short_id_under_headers() -> None:
    run = {
        "id": IDS[0],
        "status": "RUNNING",
        "username": "ana",
        "startedAt": 1_763_733_600_000,
        "duration": 60,
        "devices": 4,
        "params": {"site": "simulation"},
    }
    lines = table(("run", "status", "user"), [run_row(run)[:3]]).splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "USER"]
    assert lines[1].split() == ["3f2a9c1e", "RUNNING", "ana"]
