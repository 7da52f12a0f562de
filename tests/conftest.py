"""Shared test helpers: paths of the contract examples."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "chantier" / "contracts" / "examples"


@pytest.fixture
def valid_examples() -> list[Path]:
    return sorted((EXAMPLES / "valid").glob("*.json"))


@pytest.fixture
def invalid_examples() -> list[Path]:
    return sorted((EXAMPLES / "invalid").glob("*.json"))
