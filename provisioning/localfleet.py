"""Provisioning simulated machines on the local stack in one call (used by `chantier demo`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.auditlog import AUDIT_LOG_NAME, AuditLog
from provisioning.bundle import AGENT_TOML, AgentSettings, read_manifest
from provisioning.errors import ProvisioningError
from provisioning.modes import local_backend, local_state_dir
from provisioning.service import DeviceSpec, Provisioner


@dataclass(frozen=True)
class LocalDevice:
    """A provisioned simulated machine: where its bundle and agent.toml are."""

    thing: str
    site: str
    equipment: str
    bundle_dir: Path
    certificate_id: str
    reused: bool  # True when an earlier run had already provisioned it

    @property
    def agent_toml(self) -> Path:
        return self.bundle_dir / AGENT_TOML


def provision_local_fleet(
    specs: Sequence[DeviceSpec],
    *,
    state_dir: Path | None = None,
    out_root: Path | None = None,
    sensors: Sequence[str] = ("main",),
    iot: Any = None,
) -> list[LocalDevice]:
    """Register, certify and bundle each machine (idempotent); the broker is refreshed once.

    Bundles go to <state_dir>/certs/<thing>/ unless out_root is given; each agent.toml uses
    the simulated driver and its own state folder <state_dir>/agents/<thing>.
    """
    state = local_state_dir(state_dir)
    root = Path(out_root) if out_root is not None else state / "certs"
    backend = local_backend(state, iot=iot)
    provisioner = Provisioner(backend, root, audit=AuditLog(root / AUDIT_LOG_NAME, "local"))
    devices: list[LocalDevice] = []
    with backend.deferred_refresh() as warnings:
        for spec in specs:
            manifest = read_manifest(root / spec.thing)
            if manifest is not None and provisioner.registry.get_thing(spec.thing) is not None:
                devices.append(_device(spec, root, str(manifest.get("certificateId", "")), True))
                continue
            settings = AgentSettings(
                driver="simulated",
                sensors=tuple(sensors),
                state_dir=str(state / "agents" / spec.thing),
            )
            result = provisioner.provision(
                spec, create_site=True, force=manifest is not None, settings=settings
            )
            devices.append(_device(spec, root, result.certificate_id, False))
    if warnings:
        raise ProvisioningError(warnings[0])
    return devices


def _device(spec: DeviceSpec, root: Path, certificate_id: str, reused: bool) -> LocalDevice:
    return LocalDevice(
        spec.thing, spec.site, spec.equipment, root / spec.thing, certificate_id, reused
    )
