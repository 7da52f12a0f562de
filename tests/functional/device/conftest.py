"""Fixtures: a throwaway CA, a TLS Mosquitto on a free port, a collecting subscriber."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from functional.device.device_broker import Broker, Collector, Pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    b = Broker(tmp_path, pki)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def collector(broker: Broker, pki: Pki) -> Iterator[Collector]:
    cert, key = pki.issue("collector")
    c = Collector(broker, cert, key)
    c.start()
    try:
        yield c
    finally:
        c.stop()
