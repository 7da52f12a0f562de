"""docs/field-install.md's troubleshooting table shows the agent's real events and messages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support.field_guide import ELLIPSIS, troubleshooting_rows

DEVICE = Path(__file__).resolve().parents[3] / "device"
HOLE = "\x00"  # where an f-string puts a value


def message_templates() -> list[str]:
    """Every string the agent's code can put in a message: literals and f-strings, with each
    value an f-string inserts left as a hole (adjacent literals are already one string)."""
    found = []
    for path in DEVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                found.append(
                    "".join(
                        part.value if isinstance(part, ast.Constant) else HOLE
                        for part in node.values
                    )
                )
    return found


def pieces(fragment: str) -> list[str]:
    """What must appear verbatim in the code: the text between `…` and between the `: ` that
    join a message to the cause it quotes."""
    parts = re.split(rf"{ELLIPSIS}|: ", fragment)
    return [p.strip(" :;,()%=") for p in parts if p.strip(" :;,()%=")]


def test_every_row_names_an_event_and_text_the_agent_has() -> None:
    rows = troubleshooting_rows()
    assert len(rows) >= 20
    templates = message_templates()
    segments = {segment for t in templates for segment in t.split(HOLE)}
    for row in rows:
        assert row.event in templates, f"no event {row.event!r} in device/"
        assert row.fragments, row
        for fragment in row.fragments:
            for piece in pieces(fragment):
                assert any(piece in s for s in segments), (row.event, fragment, piece)


def test_every_state_that_stops_data_has_a_row() -> None:
    events = {row.event for row in troubleshooting_rows()}
    assert {
        "connect-failed",
        "disconnected",
        "start-failed",
        "clock-not-synced",
        "sensor-error",
        "queue-filling",
        "readings-dropped",
        "disk-low",
        "queue-write-failed",
    } <= events
