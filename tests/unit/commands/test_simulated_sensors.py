"""Simulated machines carry the sensors a provisioned bundle names, and faults land where
their alert rule looks."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from chantier.alerts.rules import load_rules
from commands.simulator.fleet import FLEET, Machine, agent_config
from device.config import FaultConfig
from provisioning.bundle import AgentSettings, BundleInfo, render_agent_toml

EQUIPMENT = [equipment for _, equipment in FLEET]


def _stack() -> SimpleNamespace:
    # agent_config reads only where the broker is and the stack's folder
    info = SimpleNamespace(broker_host="127.0.0.1", broker_port=18883, state_dir="/nowhere")
    return SimpleNamespace(info=info)


def _config(equipment: str, faults: tuple[FaultConfig, ...] = ()) -> object:
    machine = Machine("m-01", "site", equipment, Path("/nowhere/bundle"))
    return agent_config(machine, _stack(), seed=1, batch_age_s=None, faults=faults)  # type: ignore[arg-type]


def _bundle_sensors(equipment: str) -> list[str]:
    info = BundleInfo(
        "m-01", "site", equipment, None, "local", "c" * 64, "arn", 1,
        datetime.now(UTC), "127.0.0.1", 18883, False,
    )  # fmt: skip
    toml = tomllib.loads(render_agent_toml(info, AgentSettings(driver="simulated")))
    return [sensor["name"] for sensor in toml["sensors"]]


@pytest.mark.parametrize("equipment", EQUIPMENT)
def test_a_simulated_machine_has_the_sensors_its_bundle_names(equipment: str) -> None:
    names = [s.name for s in _config(equipment).sensors]  # type: ignore[attr-defined]
    assert names == _bundle_sensors(equipment)
    assert load_rules().unwatched(equipment, names) == ()


def _faults_by_sensor(equipment: str, *kinds: str) -> dict[str, list[str]]:
    faults = tuple(FaultConfig(kind=kind) for kind in kinds)
    config = _config(equipment, faults)
    return {s.name: [f.kind for f in s.faults] for s in config.sensors}  # type: ignore[attr-defined]


def test_a_fault_lands_on_the_sensor_its_rule_watches() -> None:
    assert _faults_by_sensor("concrete-mixer", "overheat", "freeze") == {
        "drum": ["freeze"],
        "engine": ["overheat"],
    }
    assert _faults_by_sensor("crane", "storm", "condensation") == {
        "cabin": ["storm", "condensation"]
    }
    assert _faults_by_sensor("generator", "condensation") == {
        "engine": [],
        "enclosure": ["condensation"],
    }


def test_a_sensor_fault_or_a_fault_without_a_rule_lands_on_the_first_sensor() -> None:
    assert _faults_by_sensor("generator", "dropout", "freeze") == {
        "engine": ["dropout", "freeze"],
        "enclosure": [],
    }
    assert _faults_by_sensor("site-cabin", "overheat") == {"ambient": ["overheat"]}
