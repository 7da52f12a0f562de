"""A running local stack for functional tests, stopped at the end whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.localstack import Tap

from chantier.names import OBSERVER_IDENTITY
from cloud.local.mqtt_bridge import MqttBridge
from cloud.local.stack import LocalStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def tap(stack: LocalStack) -> Iterator[Tap]:
    """An observer beside the rules engine, with the stack's read-only observer identity."""
    info = stack.info
    assert info is not None
    recorder = Tap()
    observer_dir = Path(info.state_dir) / "observer"
    bridge = MqttBridge(
        host=info.broker_host,
        port=info.broker_port,
        client_id=OBSERVER_IDENTITY,
        cert=observer_dir / f"{OBSERVER_IDENTITY}.pem",
        key=observer_dir / f"{OBSERVER_IDENTITY}.key",
        ca=Path(info.ca_file),
        handler=recorder,
        workers=1,
        persistent=False,
    )
    assert stack.engine is not None
    bridge.start(stack.engine.subscriptions())
    try:
        yield recorder
    finally:
        bridge.stop()
