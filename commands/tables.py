"""The one table style of every `chantier` command: upper-case headers, aligned columns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

GAP = "  "


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "") -> str:
    """Rows under their headers, columns aligned; `empty` (or the headers alone) when no row."""
    body = [["-" if cell is None or cell == "" else str(cell) for cell in row] for row in rows]
    if not body and empty:
        return empty
    head = [h.upper() for h in headers]
    widths = [len(h) for h in head]
    for row in body:
        if len(row) != len(head):
            raise ValueError(f"a row has {len(row)} cells: expected {len(head)}, one per header")
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [head, *body]
    return "\n".join(
        GAP.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def pairs(rows: Iterable[tuple[str, Any]]) -> str:
    """One `name  value` line per row, values aligned: the detail view of one thing."""
    items = [(name, "-" if value is None or value == "" else str(value)) for name, value in rows]
    width = max((len(name) for name, _ in items), default=0)
    return "\n".join(f"{name.ljust(width)}{GAP}{value}" for name, value in items)


def utc(ms: Any) -> str:
    """Epoch milliseconds as `YYYY-MM-DD HH:MM:SSZ`; `-` for none."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
