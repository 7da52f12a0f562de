"""Wiring: a Provisioner for the running local stack, or for AWS, from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provisioning.auditlog import AUDIT_LOG_NAME, AuditLog
from provisioning.backends import AwsBackend, LocalBackend, load_policy_file
from provisioning.bundle import AgentSettings
from provisioning.ca import CertificateAuthority
from provisioning.errors import CredentialsMissingError, ProvisioningError
from provisioning.policy import device_policy_document
from provisioning.registry import Registry
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


def local_state_dir(state_dir: Path | None = None) -> Path:
    from cloud.local.stackinfo import state_dir as default_state_dir

    return Path(state_dir) if state_dir is not None else default_state_dir()


def local_ca(state_dir: Path | None = None) -> CertificateAuthority:
    """The local stack's CA, in <state_dir>/ca (created on first use)."""
    return CertificateAuthority.create_or_load(local_state_dir(state_dir) / "ca")


def _refresher(state: Path) -> Any:
    try:
        from cloud.local.broker import refresh_broker
    except ImportError:
        return None
    return lambda: refresh_broker(state)


def local_backend(state_dir: Path | None = None, *, iot: Any = None) -> LocalBackend:
    """Backend for the running local stack (moto registry, local CA, Mosquitto)."""
    from cloud.local.stackinfo import ACCOUNT_ID, REGION, StackInfo, StackNotRunningError

    state = local_state_dir(state_dir)
    try:
        info = StackInfo.load(state)
    except StackNotRunningError as exc:
        raise ProvisioningError(str(exc)) from None
    if iot is None:
        import boto3

        iot = boto3.client("iot", **info.boto3_kwargs())
    return LocalBackend(
        local_ca(state),
        Registry(iot),
        (info.broker_host, info.broker_port),
        refresh=_refresher(state),
        # The stack writes the template's policy (resolved) for its broker; the built-in
        # equivalent is only for a stack that did not.
        policy_document=load_policy_file(state / "broker" / "device-policy.json")
        or device_policy_document(REGION, ACCOUNT_ID, _ingest_rules(info.rule_name)),
    )


def _ingest_rules(telemetry_rule: str) -> list[str]:
    # The template names its rules <prefix>_telemetry and <prefix>_health.
    health_rule = telemetry_rule.removesuffix("_telemetry") + "_health"
    return sorted({telemetry_rule, health_rule})


def aws_backend(
    *, region: str | None = None, profile: str | None = None, iot: Any = None
) -> AwsBackend:
    """Backend for AWS IoT Core with the default credential chain (or an injected client)."""
    if iot is None:
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.Session(profile_name=profile, region_name=region)
        except ProfileNotFound:
            raise CredentialsMissingError(
                f"AWS profile {profile!r} not found: check ~/.aws/config or drop --profile"
            ) from None
        if session.get_credentials() is None:
            raise CredentialsMissingError(
                "no AWS credentials found: run `aws configure` or `aws sso login`, set "
                "AWS_PROFILE, or drop --aws to use the local stack"
            )
        if not session.region_name:
            raise CredentialsMissingError(
                "no AWS region set: pass --region or set AWS_REGION (e.g. eu-west-3)"
            )
        iot = session.client("iot")
    return AwsBackend(Registry(iot))


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
    backend: LocalBackend | AwsBackend
    if wants_aws(aws):
        backend = aws_backend(region=region, profile=profile, iot=iot)
        chosen = settings or AgentSettings()
    else:
        backend = local_backend(state_dir, iot=iot)
        chosen = settings or AgentSettings(driver="simulated")
    audit = AuditLog(Path(out_root) / AUDIT_LOG_NAME, backend.mode)
    return Provisioner(backend, out_root, audit=audit, settings=chosen)
