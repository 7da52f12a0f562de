"""Provisioning on the local stack: its backend (local CA, moto's registry, Mosquitto), and
simulated machines provisioned in one call (used by `chantier demo` and `chantier simulate`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from cloud.local.stackinfo import ACCOUNT_ID, REGION, StackInfo, StackNotRunningError
from cloud.local.stackinfo import state_dir as default_state_dir
from provisioning.audit_log import AUDIT_LOG_NAME, AuditLog
from provisioning.backends import CaStatus, Issued
from provisioning.bundle import AGENT_TOML, AgentSettings, read_manifest
from provisioning.ca import CertificateAuthority
from provisioning.errors import ProvisioningError
from provisioning.policy import DEVICE_POLICY_NAME, device_policy_document
from provisioning.registry import CertificateRecord, Registry
from provisioning.service import DeviceSpec, Provisioner


class LocalBackend:
    """Local CA signs; moto's registry records; the broker's CRL and ACL enforce."""

    mode = "local"

    def __init__(
        self,
        ca: CertificateAuthority,
        registry: Registry,
        broker: tuple[str, int],
        *,
        refresh: Callable[[], None] | None = None,
        policy_document: dict[str, Any] | None = None,
        region: str = "eu-west-3",
        account_id: str = "123456789012",
        cert_days: int = 365,
    ) -> None:
        self.ca = ca
        self.registry = registry
        self._broker = broker
        self._refresh = refresh
        self._policy = policy_document or device_policy_document(region, account_id)
        self._cert_days = cert_days
        self._deferred = False
        self._dirty = False

    def endpoint(self) -> tuple[str, int]:
        return self._broker

    def root_ca_pem(self) -> bytes:
        return self.ca.cert_path.read_bytes()

    def ensure_device_policy(self) -> None:
        self.registry.ensure_policy(DEVICE_POLICY_NAME, self._policy)

    def issue(self, thing: str, csr_pem: bytes | None, workdir: Path) -> Issued:
        made = self.ca.issue_client_certificate(
            thing, workdir, csr_pem=csr_pem, days=self._cert_days
        )
        pem = made.cert_path.read_bytes()
        try:
            certificate_id, arn = self.registry.register_certificate(pem.decode())
        except BaseException:
            # Signed but never registered: put it on the CRL so it is worth nothing.
            self.ca.revoke(made.serial)
            raise
        return Issued(certificate_id, arn, pem, made.key_path, made.serial, made.not_after)

    def adopt(self, thing: str, pem: bytes) -> tuple[str, str]:
        """Register again a certificate this CA issued earlier (the registry lost it)."""
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificate(pem)
            cert.verify_directly_issued_by(self.ca.certificate)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ProvisioningError(
                f"the certificate of {thing} was not issued by the local CA {self.ca.cert_path} "
                f"({exc or 'bad signature'}): re-provision it with --force"
            ) from None
        if self.ca.is_revoked(cert.serial_number):
            raise ProvisioningError(
                f"the certificate of {thing} is revoked (on the local CA's CRL): re-provision it "
                "with --force"
            )
        if cert.not_valid_after_utc <= datetime.now(UTC):
            raise ProvisioningError(
                f"the certificate of {thing} expired on {cert.not_valid_after_utc:%Y-%m-%d}: "
                "re-provision it with --force"
            )
        return self.registry.register_certificate(pem.decode())

    def revoke(self, certificate: CertificateRecord) -> None:
        if certificate.serial is not None:
            self.ca.revoke(certificate.serial)
        self.registry.set_certificate_status(certificate.certificate_id, "REVOKED")

    def discard(self, issued: Issued) -> None:
        self.ca.revoke(issued.serial)
        self.registry.set_certificate_status(issued.certificate_id, "REVOKED")
        self.registry.delete_certificate(issued.certificate_id)

    @contextlib.contextmanager
    def deferred_refresh(self) -> Iterator[list[str]]:
        """Refresh the broker once at the end of a batch instead of after every device."""
        warnings: list[str] = []
        self._deferred, self._dirty = True, False
        try:
            yield warnings
        finally:
            self._deferred = False
            if self._dirty:
                warning = self.after_change()
                if warning:
                    warnings.append(warning)

    def after_change(self) -> str | None:
        """Reload the broker's ACL and CRL; a warning to show when that was not possible."""
        if self._deferred:
            self._dirty = True
            return None
        if self._refresh is None:
            return "the broker was not refreshed (no local stack running): restart it to apply"
        try:
            self._refresh()
        except Exception as exc:
            return f"the broker could not be refreshed ({exc}): restart the local stack to apply it"
        return None

    def ca_status(self) -> CaStatus | None:
        crl = self.ca.load_crl()
        return CaStatus(
            subject=self.ca.subject,
            not_after=self.ca.not_after,
            crl_next_update=crl.next_update_utc,
            revoked_serials=frozenset(self.ca.revoked_serials()),
        )


def load_policy_file(path: Path) -> dict[str, Any] | None:
    """The resolved device policy the local stack wrote for its broker, if there is one."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def local_state_dir(state_dir: Path | None = None) -> Path:
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
    state = local_state_dir(state_dir)
    try:
        info = StackInfo.load(state)
    except StackNotRunningError as exc:
        raise ProvisioningError(str(exc)) from None
    if iot is None:
        import boto3

        iot = boto3.client("iot", **info.boto3_kwargs("iot"))
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


# Where the local stack's own commands write bundles: `chantier simulate` (certs/) and
# `chantier demo` (devices/). Bundles elsewhere come back with `chantier provision restore`.
BUNDLE_FOLDERS = ("certs", "devices")


@dataclass
class RegistryRestore:
    """What a stack starting in a used state folder put back in its (empty) registry."""

    restored: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (thing, why)


def restore_registry(
    state_dir: Path,
    ca: CertificateAuthority,
    iot: Any,
    broker: tuple[str, int],
    policy_document: dict[str, Any],
) -> RegistryRestore:
    """Register again every thing whose bundle is in the state folder, with its certificate.

    moto keeps the registry in memory, the bundles and the CA are on disk: a stack started
    again (after a stop or a crash) gets its things back before devices reconnect. A revoked
    or expired certificate stays out (the broker then refuses that device).
    """
    # The broker is not running yet: it reads the registry when it starts.
    backend = LocalBackend(
        ca, Registry(iot), broker, refresh=lambda: None, policy_document=policy_document
    )
    report = RegistryRestore()
    for folder in BUNDLE_FOLDERS:
        root = Path(state_dir) / folder
        provisioner = Provisioner(backend, root, audit=AuditLog(root / AUDIT_LOG_NAME, "local"))
        for thing in provisioner.bundles():
            try:
                if provisioner.restore(thing) is not None:
                    report.restored.append(thing)
            except Exception as exc:  # one bad bundle must not keep the stack from starting
                report.skipped.append((thing, str(exc)))
    return report


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
    sensors: Sequence[str] = (),
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
