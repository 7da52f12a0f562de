"""Wiring of the people's commands: which provisioning backend a command talks to."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provisioning.audit_log import AUDIT_LOG_NAME, AuditLog
from provisioning.backends import aws_backend
from provisioning.bundle import AgentSettings
from provisioning.errors import ProvisioningError
from provisioning.service import Provisioner

MODE_ENV = "CHANTIER_PROVISION_MODE"
DEFAULT_OUT = Path("certs")


def wants_aws(flag: bool) -> bool:
    """--aws, or CHANTIER_PROVISION_MODE=aws."""
    value = os.environ.get(MODE_ENV, "local").strip().lower() or "local"
    if value not in ("local", "aws"):
        raise ProvisioningError(
            f"{MODE_ENV}={value!r} is not a mode: expected 'local' or 'aws' (or unset it)"
        )
    return flag or value == "aws"


def open_provisioner(
    *,
    aws: bool = False,
    out_root: Path = DEFAULT_OUT,
    state_dir: Path | None = None,
    region: str | None = None,
    profile: str | None = None,
    settings: AgentSettings | None = None,
    iot: Any = None,
) -> Provisioner:
    """A Provisioner for the chosen mode; the audit log lives next to the bundles."""
    backend: Any
    if wants_aws(aws):
        backend = aws_backend(region=region, profile=profile, iot=iot)
        chosen = settings or AgentSettings()
    else:
        from cloud.local.provisioning import local_backend

        backend = local_backend(state_dir, iot=iot)
        chosen = settings or AgentSettings(driver="simulated")
    audit = AuditLog(Path(out_root) / AUDIT_LOG_NAME, backend.mode)
    return Provisioner(backend, out_root, audit=audit, settings=chosen)
