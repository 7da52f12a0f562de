"""The troubleshooting table of docs/field-install.md, as (event, message pattern) rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "field-install.md"
ELLIPSIS = "…"


@dataclass(frozen=True)
class Row:
    """One line of the table: the event and the message fragments it shows."""

    event: str
    fragments: tuple[str, ...]

    def matches(self, event: str, message: str) -> bool:
        """Whether a log line (its event and message) is the one this row describes."""
        if event != self.event:
            return False
        return any(re.match(_pattern(f), message) for f in self.fragments)


def _pattern(fragment: str) -> str:
    return ".*?".join(re.escape(piece) for piece in fragment.split(ELLIPSIS))


def troubleshooting_rows() -> list[Row]:
    """Rows of the table under `## Troubleshooting`, first cell `event`: `message`."""
    section = GUIDE.read_text().split("## Troubleshooting", 1)[1]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split(" | ", 1)[0]
        event, *fragments = re.findall(r"`([^`]+)`", first_cell)
        rows.append(Row(event, tuple(fragments)))
    return rows


def row_for(event: str, message: str) -> Row | None:
    """The table row describing this log line, if any."""
    return next((r for r in troubleshooting_rows() if r.matches(event, message)), None)
