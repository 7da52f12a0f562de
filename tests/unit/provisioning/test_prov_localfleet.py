"""provision_local_fleet: what `chantier demo` calls to provision simulated machines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.local.provisioning import provision_local_fleet
from cloud.local.stackinfo import StackInfo
from provisioning.service import DeviceSpec

SPECS = [
    DeviceSpec("exc-01", "lyon", "excavator"),
    DeviceSpec("crane-01", "lyon", "crane"),
    DeviceSpec("gen-01", "paris", "generator"),
]


@pytest.fixture
def stack_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[int]]:
    state = tmp_path / "state"
    StackInfo(
        state_dir=str(state),
        aws_endpoint="http://127.0.0.1:9",  # unused: the registry client is injected
        broker_host="127.0.0.1",
        broker_port=18883,
        ca_file=str(state / "ca" / "ca.pem"),
        raw_bucket="raw",
        alerts_table="alerts",
        readings_table="readings",
        runs_table="runs",
        rule_name="chantier_telemetry",
    ).save()
    calls: list[int] = []
    monkeypatch.setattr(
        "cloud.local.provisioning._refresher", lambda _state: lambda: calls.append(1)
    )
    return state, calls


def test_provisions_every_machine_once_and_refreshes_the_broker_once(
    stack_state: tuple[Path, list[int]], iot: Any
) -> None:
    state, refreshes = stack_state
    devices = provision_local_fleet(SPECS, state_dir=state, iot=iot)
    assert [d.thing for d in devices] == ["exc-01", "crane-01", "gen-01"]
    assert not any(d.reused for d in devices)
    assert refreshes == [1]
    assert devices[0].bundle_dir == state / "certs" / "exc-01"
    toml = devices[0].agent_toml.read_text()
    assert 'driver = "simulated"' in toml
    assert f'state_dir = "{state / "agents" / "exc-01"}"' in toml
    assert (state / "ca" / "ca.pem").exists()

    again = provision_local_fleet(SPECS, state_dir=state, iot=iot)
    assert all(d.reused for d in again)
    assert [d.certificate_id for d in again] == [d.certificate_id for d in devices]
    assert len(iot.list_certificates()["certificates"]) == 3


def test_registry_lost_on_restart_is_provisioned_again(
    stack_state: tuple[Path, list[int]], iot: Any
) -> None:
    state, _ = stack_state
    first = provision_local_fleet(SPECS[:1], state_dir=state, iot=iot)
    # moto keeps its registry in memory: a restarted stack has none, the bundles remain.
    iot.detach_thing_principal(
        thingName="exc-01", principal=iot.list_thing_principals(thingName="exc-01")["principals"][0]
    )
    iot.delete_thing(thingName="exc-01")
    second = provision_local_fleet(SPECS[:1], state_dir=state, iot=iot)
    assert not second[0].reused
    assert second[0].certificate_id != first[0].certificate_id
