"""Runs a query with Athena and returns its rows, typed (the rollups' query engine in AWS)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_INTEGER = {"tinyint", "smallint", "integer", "bigint"}
_FLOAT = {"real", "double", "float", "decimal"}
POLL_S = (0.5, 1.0, 2.0)  # then every 2 s


class QueryFailedError(RuntimeError):
    """Athena ended a query in FAILED or CANCELLED, or it outlived its deadline."""


def _typed(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    if kind in _INTEGER:
        return int(value)
    if kind in _FLOAT:
        return float(value)
    return value


class AthenaQueryEngine:
    """One query at a time in a workgroup (which fixes where results go and a scan cutoff)."""

    def __init__(
        self,
        athena: Any,
        workgroup: str,
        database: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._athena = athena
        self._workgroup = workgroup
        self._database = database
        self._sleep = sleep
        self._clock = clock

    def rows(self, sql: str, timeout_s: float = 600.0) -> list[dict[str, Any]]:
        started = self._athena.start_query_execution(
            QueryString=sql,
            WorkGroup=self._workgroup,
            QueryExecutionContext={"Database": self._database},
        )
        query_id = started["QueryExecutionId"]
        deadline = self._clock() + timeout_s
        polls = 0
        while True:
            status = self._athena.get_query_execution(QueryExecutionId=query_id)
            state = status["QueryExecution"]["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                reason = status["QueryExecution"]["Status"].get("StateChangeReason", "")
                raise QueryFailedError(f"Athena query {query_id} {state}: {reason}")
            if self._clock() > deadline:
                self._athena.stop_query_execution(QueryExecutionId=query_id)
                raise QueryFailedError(
                    f"Athena query {query_id} still {state} after {timeout_s:.0f} s: stopped"
                )
            self._sleep(POLL_S[min(polls, len(POLL_S) - 1)])
            polls += 1
        return self._results(query_id)

    def _results(self, query_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        columns: list[tuple[str, str]] = []
        pages = self._athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        for page in pages:
            result = page["ResultSet"]
            if not columns:
                columns = [
                    (c["Name"], c["Type"].lower())
                    for c in result["ResultSetMetadata"]["ColumnInfo"]
                ]
            rows = result["Rows"]
            if (
                not out
                and rows
                and [d.get("VarCharValue") for d in rows[0]["Data"]]
                == [name for name, _ in columns]
            ):
                rows = rows[1:]  # the first page starts with the header row
            for row in rows:
                values = [d.get("VarCharValue") for d in row["Data"]]
                out.append(
                    {name: _typed(v, kind) for (name, kind), v in zip(columns, values, strict=True)}
                )
        return out
