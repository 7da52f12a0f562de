"""Where certificates come from: one interface, with AWS IoT's backend here (the local stack's
lives in cloud/local/provisioning.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chantier.keys import generate_key_and_csr
from provisioning.ca import check_csr
from provisioning.errors import CredentialsMissingError, ProvisioningError
from provisioning.policy import DEVICE_POLICY_NAME
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
