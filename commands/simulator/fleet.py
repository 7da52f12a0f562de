"""Simulated machines on the local stack: provisioning them and building their agent config."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.local.stack import LocalStack

# Equipment of a simulated site, in the order machines are added.
FLEET = (
    ("exc", "excavator"),
    ("crane", "crane"),
    ("gen", "generator"),
    ("mixer", "concrete-mixer"),
    ("comp", "compressor"),
    ("cabin", "site-cabin"),
)
BASIC_INGEST_PREFIX = "$aws/rules/chantier_{kind}/"
# A RAM-backed folder on Linux: the machines' queues there are durable in the same code, and
# their fsyncs cost nothing (each simulated machine stands for a Pi with a card of its own).
RAM_FOLDER = Path("/dev/shm")


def ram_folder() -> Path | None:
    """The host's RAM-backed folder when it has a writable one, else None."""
    return RAM_FOLDER if RAM_FOLDER.is_dir() and os.access(RAM_FOLDER, os.W_OK) else None


@dataclass(frozen=True)
class Machine:
    """A provisioned machine and where its bundle is."""

    thing: str
    site: str
    equipment: str
    bundle: Path

    @property
    def cert(self) -> Path:
        return self.bundle / f"{self.thing}.pem"

    @property
    def key(self) -> Path:
        return self.bundle / f"{self.thing}.key"

    @property
    def ca(self) -> Path:
        return self.bundle / "root-ca.pem"


def fleet_names(count: int) -> list[tuple[str, str]]:
    """Thing names and equipment for `count` machines: exc-01, crane-01, gen-01, ..."""
    out = []
    for index in range(count):
        prefix, equipment = FLEET[index % len(FLEET)]
        out.append((f"{prefix}-{index // len(FLEET) + 1:02d}", equipment))
    return out


def provisioner(stack: LocalStack) -> Any:
    """The provisioning service in local mode, bound to this running stack."""
    from cloud.local.provisioning import LocalBackend
    from provisioning.registry import Registry
    from provisioning.service import Provisioner

    info = stack.info
    assert info is not None, "stack not started"
    backend = LocalBackend(
        stack.ca,
        Registry(stack.client("iot")),
        (info.broker_host, info.broker_port),
        refresh=stack.refresh_broker,
        policy_document=stack.template.iot_policy_document("chantier-device"),
    )
    return Provisioner(backend, Path(info.state_dir) / "devices")


def provision_machine(
    stack: LocalStack, thing: str, site: str, equipment: str, service: Any = None
) -> tuple[Machine, str]:
    """Register the thing, issue its certificate, write its bundle; returns it and the cert id."""
    from provisioning.service import DeviceSpec

    service = service or provisioner(stack)
    result = service.provision(DeviceSpec(thing, site, equipment), force=True, create_site=True)
    return Machine(thing, site, equipment, result.bundle_dir), result.certificate_id


def sensor_names(equipment: str) -> tuple[str, ...]:
    """The sensors a provisioned bundle lists for this equipment (provisioning/bundle.py), so
    a simulated machine carries the sensors its alert rules watch: a crane's `cabin`, a
    generator's `engine` and `enclosure`, a mixer's `drum` and `engine`..."""
    from provisioning.bundle import AgentSettings

    return AgentSettings(driver="simulated").sensor_names(equipment)


# The alert rule each fault kind is meant to show; the fault goes on the sensors that rule
# watches. The other kinds (stuck, dropout, spikes) are sensor faults any sensor can have.
FAULT_RULES = {
    "overheat": "engine-overheat",
    "freeze": "freeze-risk",
    "condensation": "condensation",
    "storm": "storm-risk",
}


def faults_for(equipment: str, sensor: str, faults: tuple[Any, ...]) -> tuple[Any, ...]:
    """The faults of `faults` that land on this sensor of a machine of this equipment.

    A fault goes on the sensors its rule watches on this equipment (an overheat on the
    engine, a freeze on a mixer's drum); when the equipment has no such rule, or for a
    sensor fault, on the machine's first sensor, so every injected fault shows somewhere.
    """
    from chantier.alerts.rules import load_rules

    if not faults:
        return ()
    rules = {rule.id: rule for rule in load_rules().rules_for(equipment)}
    first = sensor_names(equipment)[0]
    chosen = []
    for fault in faults:
        rule = rules.get(FAULT_RULES.get(fault.kind, ""))
        if rule.matches(sensor) if rule is not None else sensor == first:
            chosen.append(fault)
    return tuple(chosen)


def agent_config(
    machine: Machine,
    stack: LocalStack,
    *,
    seed: int,
    batch_age_s: float | None,
    faults: tuple[Any, ...] = (),
    run_id: str | None = None,
    reporting: str = "default",
) -> Any:
    """Agent settings for a simulated machine publishing through Basic Ingest, as in AWS.

    `batch_age_s` None: the agent's own cadence for its `reporting` profile (batch age and
    health interval, deadbands and budget as shipped); a number: batches at most that old and
    health every three of them (at least 5 s), the simulator's short-run cadence.
    """
    from device.config import REPORTING_PROFILES, AgentConfig, SensorConfig

    info = stack.info
    assert info is not None, "stack not started"
    names = sensor_names(machine.equipment)
    sensors = tuple(
        SensorConfig(name=name, seed=seed, faults=faults_for(machine.equipment, name, faults))
        for name in names
    )
    return AgentConfig(
        thing=machine.thing,
        site=machine.site,
        equipment=machine.equipment,
        endpoint=info.broker_host,
        port=info.broker_port,
        cert=machine.cert,
        key=machine.key,
        ca=machine.ca,
        topic_prefix=BASIC_INGEST_PREFIX,
        state_dir=Path(info.state_dir) / "devices" / machine.thing / "agent",
        profile=reporting,
        batch_max_age_s=REPORTING_PROFILES[reporting][0] if batch_age_s is None else batch_age_s,
        health_interval_s=(
            REPORTING_PROFILES[reporting][1] if batch_age_s is None else max(5.0, batch_age_s * 3)
        ),
        clock_sync="assume-synced",
        run_id=run_id,
        sensors=sensors,
        source=f"simulated:{machine.thing}",
    )
