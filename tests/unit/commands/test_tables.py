"""The one table style shared by runs, alerts and provision."""

from __future__ import annotations

import pytest

from commands.tables import pairs, table, utc


def test_headers_upper_case_and_columns_aligned() -> None:
    text = table(("thing", "status"), [("exc-01", "ACTIVE"), ("crane-001", None)])
    assert text.splitlines() == [
        "THING      STATUS",
        "exc-01     ACTIVE",
        "crane-001  -",
    ]


def test_empty_text_or_headers_alone() -> None:
    assert table(("a", "b"), [], empty="no runs") == "no runs"
    assert table(("a", "b"), []) == "A  B"


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        table(("a", "b"), [("1",)])


def test_pairs_align_values() -> None:
    assert pairs([("run", "abc"), ("status", None)]).splitlines() == [
        "run     abc",
        "status  -",
    ]


def test_utc_times() -> None:
    assert utc(0) == "-" and utc(None) == "-"
    assert utc(1_763_733_600_123) == "2025-11-21 14:00:00Z"
