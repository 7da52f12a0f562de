"""`chantier provision` in local mode against the local stack (moto server + Mosquitto)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chantier.cli import main

pytestmark = [pytest.mark.functional, pytest.mark.timeout(240)]
RELOAD_S = 3.0


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    local_stack = pytest.importorskip("cloud.local.stack")
    state = tmp_path / "state"
    monkeypatch.setenv("CHANTIER_STATE_DIR", str(state))
    monkeypatch.delenv("CHANTIER_PROVISION_MODE", raising=False)
    monkeypatch.chdir(tmp_path)
    with local_stack.LocalStack(state) as running:
        yield running


def provision(*argv: str) -> int:
    return main(["provision", *argv])


def bundle_args(stack: Any, bundle: Path, thing: str) -> tuple[Any, ...]:
    return (
        stack.info.broker_port,
        bundle / f"{thing}.pem",
        bundle / f"{thing}.key",
        bundle / "root-ca.pem",
        thing,
    )


def test_issue_publish_revoke_refused_rotate(stack: Any, mqtt: Any, tmp_path: Path) -> None:
    assert provision("device", "exc-01", "--site", "lyon", "--equipment", "excavator",
                     "--new-site") == 0  # fmt: skip
    bundle = tmp_path / "certs" / "exc-01"
    session = mqtt.connect(*bundle_args(stack, bundle, "exc-01"))
    assert session.publish("dt/chantier/lyon/exc-01/health", b"{}") < 0x80
    session.close()

    assert provision("revoke", "exc-01") == 0
    # The stack signals Mosquitto (SIGHUP) without waiting for the reload: allow a moment.
    mqtt.refused(*bundle_args(stack, bundle, "exc-01"), within=RELOAD_S)

    assert provision("device", "crane-02", "--site", "lyon", "--equipment", "crane") == 0
    crane = tmp_path / "certs" / "crane-02"
    old = tmp_path / "old-crane-02"
    shutil.copytree(crane, old)
    assert provision("rotate", "crane-02") == 0
    mqtt.connect(*bundle_args(stack, crane, "crane-02")).close()
    mqtt.connect(*bundle_args(stack, old, "crane-02")).close()  # old one until --complete
    assert provision("rotate", "crane-02", "--complete") == 0
    mqtt.refused(*bundle_args(stack, old, "crane-02"), within=RELOAD_S)
    mqtt.connect(*bundle_args(stack, crane, "crane-02")).close()

    assert provision("audit", "--fail-on", "medium") == 0
