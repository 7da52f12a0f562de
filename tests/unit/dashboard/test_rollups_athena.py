"""The rollups' Athena engine: waits for the query, types the rows, reports a failure's reason."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.analytics.athena import AthenaQueryEngine, QueryFailedError


class FakeAthena:
    """Answers like Athena: a query id, a few RUNNING polls, then its state and result pages."""

    def __init__(self, states: list[str], pages: list[dict[str, Any]], reason: str = "") -> None:
        self.states = states
        self.pages = pages
        self.reason = reason
        self.started: list[dict[str, Any]] = []
        self.stopped: list[str] = []

    def start_query_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        status = {"State": state, "StateChangeReason": self.reason}
        return {"QueryExecution": {"Status": status}}

    def stop_query_execution(self, QueryExecutionId: str) -> None:  # noqa: N803
        self.stopped.append(QueryExecutionId)

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"
        pages = self.pages

        class Paginator:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return pages

        return Paginator()


COLUMNS = [
    {"Name": "thing", "Type": "varchar"},
    {"Name": "readings", "Type": "bigint"},
    {"Name": "temperature_avg", "Type": "double"},
]


def page(*rows: list[str | None]) -> dict[str, Any]:
    return {
        "ResultSet": {
            "ResultSetMetadata": {"ColumnInfo": COLUMNS},
            "Rows": [
                {"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows
            ],
        }
    }


def test_rows_come_typed_after_the_query_succeeds() -> None:
    athena = FakeAthena(
        ["QUEUED", "RUNNING", "SUCCEEDED"],
        [
            page(["thing", "readings", "temperature_avg"], ["exc-01", "17280", "61.5"]),
            page(["crane-01", "3", None]),
        ],
    )
    slept: list[float] = []
    engine = AthenaQueryEngine(athena, "wg", "db", sleep=slept.append)
    rows = engine.rows("SELECT 1")
    assert rows == [
        {"thing": "exc-01", "readings": 17280, "temperature_avg": 61.5},
        {"thing": "crane-01", "readings": 3, "temperature_avg": None},
    ]
    assert athena.started == [
        {"QueryString": "SELECT 1", "WorkGroup": "wg", "QueryExecutionContext": {"Database": "db"}}
    ]
    assert slept == [0.5, 1.0]


def test_a_failed_query_names_its_reason() -> None:
    athena = FakeAthena(["FAILED"], [], reason="Query exhausted resources")
    with pytest.raises(QueryFailedError, match="q-1 FAILED: Query exhausted resources"):
        AthenaQueryEngine(athena, "wg", "db", sleep=lambda _: None).rows("SELECT 1")


def test_a_query_past_its_deadline_is_stopped() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    athena = FakeAthena(["RUNNING"], [])
    engine = AthenaQueryEngine(athena, "wg", "db", sleep=sleep, clock=lambda: now[0])
    with pytest.raises(QueryFailedError, match="still RUNNING after 10 s: stopped"):
        engine.rows("SELECT 1", timeout_s=10)
    assert athena.stopped == ["q-1"]
