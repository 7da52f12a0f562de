"""Where certificates come from: the local CA (local stack) or AWS IoT, behind one interface."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioning.ca import CertificateAuthority, check_csr
from provisioning.csr import generate_key_and_csr
from provisioning.errors import ProvisioningError
from provisioning.policy import DEVICE_POLICY_NAME, device_policy_document
from provisioning.registry import CertificateRecord, Registry
from provisioning.rootca import amazon_root_ca_1


@dataclass(frozen=True)
class Issued:
    """A certificate registered in the registry, its key (if made here) in the work folder."""

    certificate_id: str
    certificate_arn: str
    certificate_pem: bytes = field(repr=False)
    key_path: Path | None
    serial: int
    not_after: datetime


@dataclass(frozen=True)
class CaStatus:
    """What the audit needs to know about the signing CA."""

    subject: str
    not_after: datetime
    crl_next_update: datetime | None
    revoked_serials: frozenset[int]


class Backend(Protocol):
    """The operations that differ between the local stack and AWS."""

    mode: str
    registry: Registry

    def endpoint(self) -> tuple[str, int]: ...

    def root_ca_pem(self) -> bytes: ...

    def ensure_device_policy(self) -> None: ...

    def issue(self, thing: str, csr_pem: bytes | None, workdir: Path) -> Issued: ...

    def revoke(self, certificate: CertificateRecord) -> None: ...

    def discard(self, issued: Issued) -> None: ...

    def after_change(self) -> str | None: ...

    def ca_status(self) -> CaStatus | None: ...


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


class AwsBackend:
    """AWS IoT Core signs from a CSR; the registry status cuts a revoked device off."""

    mode = "aws"

    def __init__(self, registry: Registry, *, root_ca: Callable[[], bytes] = amazon_root_ca_1):
        self.registry = registry
        self._root_ca = root_ca
        self._endpoint: str | None = None

    def endpoint(self) -> tuple[str, int]:
        if self._endpoint is None:
            data = self.registry.iot.describe_endpoint(endpointType="iot:Data-ATS")
            self._endpoint = str(data["endpointAddress"])
        return self._endpoint, 8883

    def root_ca_pem(self) -> bytes:
        return self._root_ca()

    def ensure_device_policy(self) -> None:
        if not self.registry.policy_exists(DEVICE_POLICY_NAME):
            raise ProvisioningError(
                f"IoT policy {DEVICE_POLICY_NAME!r} not found in this account/region: deploy "
                "cloud/template.yaml first (it defines the device policy)"
            )

    def issue(self, thing: str, csr_pem: bytes | None, workdir: Path) -> Issued:
        key_path: Path | None = None
        if csr_pem is None:
            # The key is made here only when the device cannot make its own (central bundle).
            key_path, csr_path = generate_key_and_csr(thing, workdir)
            csr_pem = csr_path.read_bytes()
            csr_path.unlink()
        else:
            check_csr(csr_pem, thing)
        certificate_id, arn, pem = self.registry.create_certificate_from_csr(csr_pem.decode())
        cert = x509.load_pem_x509_certificate(pem.encode())
        (workdir / f"{thing}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issued(
            certificate_id,
            arn,
            pem.encode(),
            key_path,
            cert.serial_number,
            cert.not_valid_after_utc,
        )

    def revoke(self, certificate: CertificateRecord) -> None:
        self.registry.set_certificate_status(certificate.certificate_id, "REVOKED")

    def discard(self, issued: Issued) -> None:
        self.registry.set_certificate_status(issued.certificate_id, "INACTIVE")
        self.registry.delete_certificate(issued.certificate_id)

    def after_change(self) -> str | None:
        return None

    def ca_status(self) -> CaStatus | None:
        return None


def load_policy_file(path: Path) -> dict[str, Any] | None:
    """The resolved device policy the local stack wrote for its broker, if there is one."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
